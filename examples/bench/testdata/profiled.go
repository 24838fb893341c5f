package main

// This file is not part of mailferry. The peer benchmark (examples/bench,
// MAILFERRY_BENCH_PROFILE) adds it to package main with go build -overlay,
// because a main package cannot be imported and the profiles must be taken
// in the process that runs mailferry. When MAILFERRY_BENCH_PROFILE_BASE is
// set, it takes the process over before main: it runs the program's run
// function once under the CPU profiler and the execution tracer, writes
// BASE.cpu.pprof, BASE.trace, BASE.allocs.pprof (with BASE.allocs.base.pprof
// taken just before the run, for -diff_base) and BASE.heap.pprof (the heap
// at its highest in use), reports "SECONDS PEAK-HEAP-BYTES" on fd 3 and
// exits with run's status.

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"
)

func init() {
	base := os.Getenv("MAILFERRY_BENCH_PROFILE_BASE")
	if base == "" {
		return
	}
	os.Unsetenv("MAILFERRY_BENCH_PROFILE_BASE")
	os.Exit(benchProfiled(base))
}

func benchProfiled(base string) int {
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "bench profile: %s: %v\n", what, err)
		return 1
	}
	runtime.GC()
	if f, err := os.Create(base + ".allocs.base.pprof"); err == nil {
		pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	f, err := os.Create(base + ".cpu.pprof")
	if err != nil {
		return fail("CPU profile", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return fail("CPU profile", err)
	}
	tf, err := os.Create(base + ".trace")
	if err != nil {
		return fail("execution trace", err)
	}
	if err := trace.Start(tf); err != nil {
		return fail("execution trace", err)
	}
	stop, peak := benchWatchHeap(base + ".heap.pprof")
	start := time.Now()
	code := run(context.Background(), os.Args[1:], strings.NewReader(""), os.Stdout, os.Stderr)
	secs := time.Since(start).Seconds()
	close(stop)
	trace.Stop()
	tf.Close()
	pprof.StopCPUProfile()
	f.Close()
	if f, err := os.Create(base + ".allocs.pprof"); err == nil {
		pprof.Lookup("allocs").WriteTo(f, 0)
		f.Close()
	}
	report := os.NewFile(3, "report")
	fmt.Fprintf(report, "%g %d\n", secs, <-peak)
	report.Close()
	return code
}

// benchWatchHeap samples the heap every 20 ms until stop is closed and
// writes a heap profile to path each time the heap in use reaches a new
// high, so that the file shows what held the memory at the peak. peak then
// gives the highest HeapInuse seen.
func benchWatchHeap(path string) (stop chan struct{}, peak chan uint64) {
	stop, peak = make(chan struct{}), make(chan uint64, 1)
	go func() {
		var high uint64
		var ms runtime.MemStats
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- high
				return
			case <-tick.C:
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > high+high/20 { // 5 % above the last one written
				high = ms.HeapInuse
				if f, err := os.Create(path); err == nil {
					pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
		}
	}()
	return stop, peak
}
