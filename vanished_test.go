package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
)

// threeFolders seeds INBOX, name and Work with five messages each.
func threeFolders(t *testing.T, srv *dovecottest.Server, name string) {
	t.Helper()
	var seed []dovecottest.SeedMessage
	for i, f := range []string{"INBOX", name, "Work"} {
		for j := range 5 {
			seed = append(seed, dovecottest.SeedMessage{Folder: f, Flags: []string{`\Seen`},
				Body: []byte(fmt.Sprintf("Message-ID: <%d.%d@vanished.example>\r\nSubject: %s %d\r\n\r\nbody %d of %s\r\n", i, j, f, j, j, f))})
		}
	}
	srv.Seed(t, "alice", seed)
}

// A source folder deleted after the run listed it, before its pass opened
// it: the run skips it with a warning and a note, copies the other folders
// and ends with exit 0. It ended the whole run with exit 1 before, the
// other folders not copied ("folder Gone: ... select Gone: NO Mailbox
// doesn't exist"); imapsync warns and goes on. The folder is deleted through
// a second connection while the source's answer to the first listing is
// held back, so that the listing names it and every later command finds it
// gone. One worker (--jobs 1) so that no other connection opens it first.
func TestSourceFolderVanishedDuringRun(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	threeFolders(t, p.src, "Gone")
	var deleted atomic.Bool
	proxy, err := faultproxy.New(p.src.IMAPAddr(), faultproxy.Faults{Tap: func(_ int, dir faultproxy.Dir, b []byte) {
		if dir != faultproxy.ServerToClient || !bytes.Contains(b, []byte("STATUS Gone")) || deleted.Load() {
			return
		}
		c := p.src.Client(t, "alice")
		defer c.Close()
		if err := c.Delete("Gone").Wait(); err != nil {
			t.Errorf("deleting Gone at the source: %v", err)
			return
		}
		deleted.Store(true)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	report := filepath.Join(t.TempDir(), "report.json")
	args := []string{"migrate", "imap://alice@" + proxy.Addr(), "imap://alice@" + p.dst.IMAPAddr(),
		"--src-tls", "none", "--dst-tls", "none", "--state-dir", p.state, "--progress", "never",
		"--jobs", "1", "--report", report}
	code, out, errOut := mailferry(t, args...)
	if !deleted.Load() {
		t.Fatalf("the listing never named Gone: the test deleted nothing\n%s\n%s", out, errOut)
	}
	if code != 0 {
		t.Fatalf("exit %d, want 0: a folder gone from the source ended the run\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "warning: folder Gone:") || !strings.Contains(errOut, "the source no longer lists it: skipped") {
		t.Errorf("no warning names the folder gone:\n%s", errOut)
	}
	rep := readReport(t, report)
	notes := 0
	for _, f := range rep.Folders {
		if strings.Contains(f.Note, "vanished from the source") {
			notes++
			if f.Source != "Gone" {
				t.Errorf("folder %s noted as vanished", f.Source)
			}
		}
	}
	if notes != 1 {
		t.Errorf("%d folders noted as vanished, want Gone only: %+v", notes, rep.Folders)
	}
	if rep.Totals.Copied != 10 {
		t.Errorf("copied %d, want the 10 of INBOX and Work", rep.Totals.Copied)
	}
	sameContent(t, p.src.Snapshot(t, "alice"), p.dst.Snapshot(t, "alice"), rep)

	code, out, errOut = mailferry(t, args...)
	if code != 0 || strings.Contains(out+errOut, "vanished") {
		t.Errorf("rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	if rep := readReport(t, report); rep.Totals.Copied != 0 {
		t.Errorf("rerun copied %d, want 0", rep.Totals.Copied)
	}
}

// A source folder the server still lists but cannot open is not taken for
// one that vanished, and fails alone: the other folders are copied, and
// the run ends with exit 1 naming it. Dovecot cannot read the folder's
// directory (mode 000) and, once a SELECT failed, lists it as \Noselect; a
// first version of the vanished check took that for gone and ended with
// exit 0, the folder's five messages not copied. Before the folder failed
// alone, its NO ended the whole run: with one worker, in plan order, Work
// (after Locked) was not copied.
func TestUnopenableSourceFolderFailsAlone(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	threeFolders(t, p.src, "Locked")
	before := p.src.Snapshot(t, "alice")
	dir := filepath.Join(p.src.Dir, "mail", "alice", "Locked")
	if _, err := os.Stat(filepath.Join(dir, "cur")); err != nil {
		t.Fatalf("the folder's Maildir is not where the test looks: %v", err)
	}
	if err := os.Chmod(dir, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	report := filepath.Join(t.TempDir(), "report.json")
	code, out, errOut := mailferry(t, p.args("--jobs", "1", "--report", report)...)
	if code != 1 || !strings.Contains(errOut, "mailferry: folder Locked:") || strings.Contains(out+errOut, "vanished") ||
		strings.Contains(errOut, "no longer lists it") {
		t.Errorf("exit %d, want 1 with an error naming Locked and no vanished folder\n%s\n%s", code, out, errOut)
	}
	rep := readReport(t, report)
	for _, f := range rep.Folders {
		if got := strings.Contains(f.Note, "could not be opened"); got != (f.Source == "Locked") {
			t.Errorf("folder %s: note %q", f.Source, f.Note)
		}
	}
	delete(before, "Locked") // not copied, and its destination folder is empty
	sameContent(t, before, p.dst.Snapshot(t, "alice"), rep)
	if rep.Totals.Copied != 10 {
		t.Errorf("copied %d, want the 10 of INBOX and Work", rep.Totals.Copied)
	}
}
