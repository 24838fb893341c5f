package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// seedDated puts n messages into INBOX with internal dates one day apart
// from 2024-01-01.
func seedDated(t *testing.T, s *dovecottest.Server, n int) {
	t.Helper()
	msgs := testMessages(t, n)
	for i := range msgs {
		msgs[i].Folder = "INBOX"
		msgs[i].Date = time.Date(2024, 1, 1+i, 12, 0, 0, 0, time.UTC)
	}
	s.Seed(t, "alice", msgs)
}

func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	seedDated(t, p.src, 20)
	srcBefore, dstBefore := p.src.Snapshot(t, "alice"), p.dst.Snapshot(t, "alice")
	report := filepath.Join(t.TempDir(), "r.json")
	code, out, errOut := mailferry(t, p.args("--dry-run", "--report", report)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if r := readReport(t, report); !r.DryRun || r.Totals.Copied != 20 {
		t.Errorf("dry run report: dry_run=%v would copy %d, want 20", r.DryRun, r.Totals.Copied)
	}
	if !sameSnapshot(srcBefore, p.src.Snapshot(t, "alice")) || !sameSnapshot(dstBefore, p.dst.Snapshot(t, "alice")) {
		t.Error("--dry-run changed a server")
	}
	// And it left no state behind: a real run then copies everything.
	code, _, _ = mailferry(t, p.args("--report", report)...)
	if r := readReport(t, report); code != 0 || r.Totals.Copied != 20 {
		t.Errorf("real run after dry run: exit %d, copied %d", code, r.Totals.Copied)
	}
}

// A dry run into a local destination that does not exist yet creates
// nothing there (it used to make the directory, cur/new/tmp and the
// manifest), for migrate and archive, Maildir and mbox, and says what a
// real run would copy.
func TestDryRunCreatesNoLocalDestination(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "src")
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	msg := "From: a@example.com\r\nSubject: x\r\nMessage-ID: <dry@x>\r\n\r\nhi\r\n"
	if err := os.WriteFile(filepath.Join(src, "cur", "1.host:2,S"), []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, c := range []struct{ name, cmd, dst string }{
		{"migrate maildir", "migrate", "maildir:" + filepath.Join(dir, "md")},
		{"migrate mbox", "migrate", "mbox:" + filepath.Join(dir, "mb")},
		{"migrate one mbox", "migrate", "mbox:" + filepath.Join(dir, "one.mbox")},
		{"archive", "archive", filepath.Join(dir, "arc")},
	} {
		report := filepath.Join(t.TempDir(), "r.json")
		code, out, errOut := mailferry(t, c.cmd, "maildir:"+src, c.dst, "--include", "INBOX", "--dry-run",
			"--state-dir", t.TempDir(), "--progress", "never", "--report", report)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", c.name, code, out, errOut)
		}
		if r := readReport(t, report); r.Totals.Copied != 1 {
			t.Errorf("%s: would copy %d, want 1", c.name, r.Totals.Copied)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%s: the dry run created %v", c.name, ents)
		}
	}
}

func TestSinceBeforeSelectByInternalDate(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	seedDated(t, p.src, 20) // 2024-01-01 .. 2024-01-20
	report := filepath.Join(t.TempDir(), "r.json")
	code, out, errOut := mailferry(t, p.args("--since", "2024-01-05", "--before", "2024-01-10", "--report", report)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if n := len(p.dst.Snapshot(t, "alice")["INBOX"]); n != 5 {
		t.Errorf("copied %d messages dated 2024-01-05..09, want 5", n)
	}
	code, _, errOut = mailferry(t, p.args("--since", "2024-13-01")...)
	if code != 2 {
		t.Errorf("a bad date: exit %d, want 2 (%s)", code, errOut)
	}
}

func TestDeleteSourceRemovesOnlyWhatWasCopied(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	seedDated(t, p.src, 12)
	before := p.src.Snapshot(t, "alice")
	report := filepath.Join(t.TempDir(), "r.json")
	code, out, errOut := mailferry(t, p.args("--delete-source", "--since", "2024-01-07", "--report", report)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	after := p.src.Snapshot(t, "alice")
	if n := len(after["INBOX"]); n != 6 {
		t.Errorf("source INBOX has %d messages after --delete-source of 6 of 12, want 6", n)
	}
	// What remains is exactly the messages outside the range.
	left := map[string]bool{}
	for _, m := range after["INBOX"] {
		left[m.SHA256] = true
		if !m.Date.Before(time.Date(2024, 1, 7, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("a message dated %s in range is still at the source", m.Date)
		}
	}
	copied := p.dst.Snapshot(t, "alice")["INBOX"]
	if len(copied) != 6 {
		t.Errorf("destination has %d, want 6", len(copied))
	}
	if len(before["INBOX"]) != 12 {
		t.Fatal("seed")
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"migrate", "imap://a@h"},
		{"migrate", "ftp://a@h", "imap://b@h"},
		{"migrate", "imap://a:secret@h", "imap://b@h"},
		{"migrate", "imap://a@h", "imap://b@h", "--dedup", "sometimes"},
		{"migrate", "imap://a@h", "imap://b@h", "--no-such-flag"},
		{"frobnicate"},
	} {
		code, _, errOut := mailferry(t, args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errOut)
		}
		if strings.Contains(errOut, "secret") {
			t.Errorf("%q: the password shows: %s", args, errOut)
		}
	}
}

// A run with another --prefix copies into the new place: what was handled
// is recorded per source folder and destination, not per source folder.
func TestChangedPrefixCopiesIntoTheNewPlace(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	seedDated(t, p.src, 10)
	for _, prefix := range []string{"One", "Two"} {
		if code, out, errOut := mailferry(t, p.args("--prefix", prefix)...); code != 0 {
			t.Fatalf("--prefix %s: exit %d\n%s\n%s", prefix, code, out, errOut)
		}
	}
	snap := p.dst.Snapshot(t, "alice")
	if len(snap["One.INBOX"]) != 10 || len(snap["Two.INBOX"]) != 10 {
		t.Errorf("One.INBOX has %d, Two.INBOX %d; want 10 each", len(snap["One.INBOX"]), len(snap["Two.INBOX"]))
	}
}

func TestFoldersCommandListsFoldersWithCounts(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.src.Seed(t, "alice", testMessages(t, 14))
	code, out, errOut := mailferry(t, "folders", "imap://alice@"+p.src.IMAPAddr(), "--src-tls", "none")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"INBOX ", "Sent ", `\Sent`, "Archive/2024/Q1", "Entwürfe/Über"} {
		if !strings.Contains(out, want) {
			t.Errorf("folders output lacks %q:\n%s", want, out)
		}
	}
}
