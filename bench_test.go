package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// BenchmarkCorpusMigration migrates the dev corpus (985 real and broken
// messages over nested folders) between the two Dovecots with the built
// binary, and reports messages per second and the peak RSS of the process.
//
//	go test -run '^$' -bench CorpusMigration -benchtime 3x .
func BenchmarkCorpusMigration(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		p := newPair(b)
		msgs := testMessages(b, 0)
		p.src.Seed(b, "alice", msgs)
		bin := binary(b)
		b.StartTimer()
		d, rssMB := measured(b, bin, p.args("--jobs", "4")...)
		b.StopTimer()
		b.ReportMetric(float64(len(msgs))/d.Seconds(), "msg/s")
		b.ReportMetric(rssMB, "peak-RSS-MB")
		b.StartTimer()
	}
}

// BenchmarkLargeMessage moves one 50 MB message IMAP -> IMAP, IMAP ->
// Maildir and IMAP -> mbox with the built binary and reports the peak RSS
// of each: memory stays flat whatever the message size.
//
//	go test -run '^$' -bench LargeMessage -benchtime 1x .
func BenchmarkLargeMessage(b *testing.B) {
	p := newPair(b)
	p.src.Seed(b, "alice", []dovecottest.SeedMessage{{Folder: "INBOX", Body: bigMessage(50 << 20), Date: time.Unix(1700000000, 0)}})
	bin := binary(b)
	src := "imap://alice@" + p.src.IMAPAddr()
	jobs := map[string][]string{
		"imap":    {"migrate", src, "imap://alice@" + p.dst.IMAPAddr(), "--dst-tls", "none"},
		"maildir": {"archive", src, filepath.Join(b.TempDir(), "md")},
		"mbox":    {"archive", src, filepath.Join(b.TempDir(), "mb"), "--format", "mbox"},
	}
	for i := 0; i < b.N; i++ {
		for name, args := range jobs {
			args = append(args, "--src-tls", "none", "--state-dir", b.TempDir(), "--progress", "never")
			_, rssMB := measured(b, bin, args...)
			b.ReportMetric(rssMB, "peak-RSS-MB-"+name)
		}
	}
}

// measured runs the binary and returns its wall time and peak RSS in MB.
//
// The peak comes from GNU time (/usr/bin/time -f %M), which forks a small
// process of its own to exec the binary: the rusage of a process started
// straight from this (large) test process would report the test's own RSS,
// because Linux carries the pre-exec peak of a vfork'd child over the exec.
func measured(b *testing.B, bin string, args ...string) (time.Duration, float64) {
	b.Helper()
	gnuTime, err := exec.LookPath("/usr/bin/time")
	if err != nil {
		b.Skip("peak RSS needs GNU time (apt-get install time)")
	}
	rssFile := filepath.Join(b.TempDir(), "rss")
	cmd := exec.Command(gnuTime, append([]string{"-f", "%M", "-o", rssFile, bin}, args...)...)
	cmd.Env = environFor(b)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	raw, err := os.ReadFile(rssFile)
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Fields(string(raw))
	kb, err := strconv.ParseFloat(lines[len(lines)-1], 64)
	if err != nil {
		b.Fatalf("GNU time said %q", raw)
	}
	return d, kb / 1024
}
