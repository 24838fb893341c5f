package main

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// killRuns starts the binary with args several times, killing each run
// with SIGKILL after a random delay, and returns how many runs were killed.
func killRuns(t *testing.T, bin string, args []string, runs int) int {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills := 0
	for i := 0; i < runs; i++ {
		cmd := mailferryCmd(t, bin, args...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		delay := time.Duration(30+rng.IntN(400)) * time.Millisecond
		select {
		case err := <-done:
			t.Logf("run %d ended before its kill at %s (%v)", i+1, delay, err)
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
		}
	}
	return kills
}

// An archive killed with SIGKILL at random moments (in the middle of Maildir
// writes and mbox appends), then run to the end, holds every message once,
// with no partial message, and verifies.
func TestArchiveSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: the kill test runs the corpus several times")
	}
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			p := newPair(t)
			msgs := testMessages(t, 0)
			p.src.Seed(t, "alice", msgs)
			before := p.src.Snapshot(t, "alice")
			dir := filepath.Join(t.TempDir(), "archive")
			args := []string{"archive", "imap://alice@" + p.src.IMAPAddr(), dir, "--format", format,
				"--src-tls", "none", "--state-dir", p.state, "--progress", "never"}
			bin := binary(t)
			kills := killRuns(t, bin, args, 3)
			final := mailferryCmd(t, bin, args...)
			out, err := final.CombinedOutput()
			if err != nil {
				t.Fatalf("final run: %v\n%s", err, out)
			}
			if out, err := mailferryCmd(t, bin, "verify", dir).CombinedOutput(); err != nil {
				t.Fatalf("verify after %d kills: %v\n%s", kills, err, out)
			}
			// Every source message is in the archive exactly once.
			want := map[string]int{}
			for _, ms := range before {
				for _, m := range ms {
					want[m.SHA256]++
				}
			}
			// (verify has just checked each manifest line against the bytes)
			got := map[string]int{}
			for _, h := range manifestSHA256(t, dir) {
				got[h]++
			}
			for h, n := range want {
				if got[h] != n {
					t.Errorf("message %s: %d in the archive, %d at the source", h[:12], got[h], n)
				}
			}
			if len(got) != len(want) {
				t.Errorf("archive has %d distinct messages, source %d", len(got), len(want))
			}
			t.Logf("%s: %d kills survived, %d messages", format, kills, len(msgs))
		})
	}
}
