package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Free page reporting (virtio-balloon's VIRTIO_BALLOON_F_REPORTING) hands
// the guest's free memory back to its host, and the host then drops it: the
// next time the guest uses such a page, the host must find it and zero it
// again, inside whatever instruction touched it first. On this kind of VM
// that made a 1 KB file on a tmpfs cost 22.7-23.8 µs to create once the files
// outgrew the memory used in the minutes before, against 11.0-12.5 µs within
// it (a scratch program creating 3,000,000 files in 12 directories: the step
// came at 1.2 million files, and at 2.0 million when run again at once),
// and flat 11.3 µs throughout with reporting paused and the memory touched
// first. A million-message copy needs gigabytes of new page cache (each
// copied message's file, and for IMAP->IMAP the destination Dovecot's), a
// 20k copy a few megabytes that the runs before it just let go of; so the
// copy at 1M paid that cost and the one at 20k did not (perf: the kernel's
// copy into a new tmpfs page, copy_folio_from_iter_atomic, 12% of
// mailferry's cycles at 1M against 1% at 20k), and the linear-time ratio
// measured the host as much as the program.
//
// With MAILFERRY_BENCH_HOLD_MEMORY=1 the benchmark pauses reporting for the
// run (page_reporting_order above the largest order the buddy allocator
// has, so that no free block qualifies; restored when the benchmark ends)
// and touches the free memory once, so that every size runs on memory the
// host backs. It needs root, and a kernel that reports free pages (nothing
// to hold otherwise, and it says so).
const (
	bpHoldMemoryEnv   = "MAILFERRY_BENCH_HOLD_MEMORY"
	bpTouchHelperEnv  = "MAILFERRY_BENCH_TOUCH_HELPER"
	bpReportingOrder  = "/sys/module/page_reporting/parameters/page_reporting_order"
	bpNoReportOrder   = "11"    // MAX_PAGE_ORDER is 10 on x86-64 and arm64 with 4 KB pages
	bpTouchLeaveBytes = 2 << 30 // left untouched, for the kernel and the run itself
)

// bpHoldMemory pauses free page reporting until the benchmark ends and
// touches what is free, when MAILFERRY_BENCH_HOLD_MEMORY=1.
func bpHoldMemory(e *bpEnv) {
	if os.Getenv(bpHoldMemoryEnv) != "1" {
		return
	}
	old, err := os.ReadFile(bpReportingOrder)
	if os.IsNotExist(err) {
		e.logf("%s: this kernel reports no free pages to a host (no %s): nothing to hold", bpHoldMemoryEnv, bpReportingOrder)
		return
	}
	if err != nil {
		e.b.Fatalf("%s: %v", bpHoldMemoryEnv, err)
	}
	was := strings.TrimSpace(string(old))
	if err := os.WriteFile(bpReportingOrder, []byte(bpNoReportOrder+"\n"), 0o644); err != nil {
		e.b.Fatalf("%s: pausing free page reporting: %v (needs root)", bpHoldMemoryEnv, err)
	}
	e.b.Cleanup(func() {
		if err := os.WriteFile(bpReportingOrder, []byte(was+"\n"), 0o644); err != nil {
			e.logf("could not restore page_reporting_order %s: %v (restore it by hand: echo %s > %s)", was, err, was, bpReportingOrder)
		}
	})
	e.logf("paused free page reporting (page_reporting_order %s -> %s, restored at the end; were this run killed: echo %s > %s)",
		was, bpNoReportOrder, was, bpReportingOrder)

	avail, err := bpMemAvailable()
	if err != nil {
		e.b.Fatalf("%s: %v", bpHoldMemoryEnv, err)
	}
	n := avail - bpTouchLeaveBytes
	if n <= 0 {
		e.logf("%s: %d MB available: nothing to touch", bpHoldMemoryEnv, avail>>20)
		return
	}
	// In a child of its own: touched here, the benchmark's high-water RSS
	// would pass into every tool it starts (see bpHelperEnv), and the
	// memory is freed at once when the child exits.
	start := time.Now()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), bpTouchHelperEnv+"="+strconv.FormatInt(n, 10))
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		e.b.Fatalf("%s: touching %d MB: %v", bpHoldMemoryEnv, n>>20, err)
	}
	e.logf("touched %.1f GB of free memory in %.1f s, so that the host backs it", float64(n)/(1<<30), time.Since(start).Seconds())
}

// bpMemAvailable reads MemAvailable from /proc/meminfo, in bytes.
func bpMemAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10, err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/meminfo has no MemAvailable")
}

// bpTouchHelper maps the given number of bytes, writes one byte to each
// page and exits; the kernel frees the pages as it does.
func bpTouchHelper(s string) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "bench touch helper: bad size %q\n", s)
		os.Exit(2)
	}
	mem, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE|syscall.MAP_NORESERVE)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench touch helper: %v\n", err)
		os.Exit(1)
	}
	page := os.Getpagesize()
	for i := 0; i < len(mem); i += page {
		mem[i] = 1
	}
	os.Exit(0)
}
