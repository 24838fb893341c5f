package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// A message the source server cannot read ends the connection: Dovecot
// answers its FETCH with "* 3 FETCH (UID 3)" and "* BYE FETCH failed:
// Internal error occurred" (here: its file's mode is 000). Before, every
// retry died at it until the retries were spent (31 s), the run ended with
// exit 1, Work2's messages after it were never copied, and every rerun
// ended the same way. Now a second death in a row at one message leaves
// it out: the run copies the rest and names it as failed (exit 3); a rerun
// tries it again, and once the server can read it, copies it, and nothing
// else.
func TestSourceMessageThatEndsTheConnection(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	threeFolders(t, p.src, "Work2") // vanished_test.go
	before := p.src.Snapshot(t, "alice")
	files, err := filepath.Glob(filepath.Join(p.src.Dir, "mail", "alice", "Work2", "cur", "*"))
	if err != nil {
		t.Fatal(err)
	}
	bad := ""
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte("Subject: Work2 2\n")) {
			bad = f
		}
	}
	if bad == "" {
		t.Fatalf("no file holds Work2's third message among %v", files)
	}
	if err := os.Chmod(bad, 0); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	args := p.args("--report", report)
	for run := 1; run <= 2; run++ {
		code, out, errOut := mailferry(t, args...)
		if code != 3 {
			t.Fatalf("run %d: exit %d, want 3\n%s\n%s", run, code, out, errOut)
		}
		rep := readReport(t, report)
		if len(rep.Failures) != 1 || rep.Failures[0].Folder != "Work2" || rep.Failures[0].UID != 3 ||
			!strings.Contains(rep.Failures[0].Error, "ended the connection") {
			t.Fatalf("run %d: failures %+v, want Work2's UID 3", run, rep.Failures)
		}
		if want := []int{14, 0}[run-1]; rep.Totals.Copied != want {
			t.Errorf("run %d: copied %d, want %d", run, rep.Totals.Copied, want)
		}
		want := dovecottest.Snapshot{}
		for f, ms := range before {
			for _, m := range ms {
				if f != "Work2" || m.UID != 3 {
					want[f] = append(want[f], m)
				}
			}
		}
		sameContent(t, want, p.dst.Snapshot(t, "alice"), rep)
	}
	if err := os.Chmod(bad, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := mailferry(t, args...)
	rep := readReport(t, report)
	if code != 0 || rep.Totals.Copied != 1 {
		t.Fatalf("once readable: exit %d, copied %d, want 0 and 1\n%s\n%s", code, rep.Totals.Copied, out, errOut)
	}
	sameContent(t, before, p.dst.Snapshot(t, "alice"), rep)
}
