package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
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
		cmd := exec.Command(bin, p.args("--jobs", "4")...)
		cmd.Env = os.Environ()
		b.StartTimer()
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		b.ReportMetric(float64(len(msgs))/d.Seconds(), "msg/s")
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MB")
		b.StartTimer()
	}
}
