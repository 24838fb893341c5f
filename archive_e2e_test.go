package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// roundTrip archives the source Dovecot into dir in the given format, then
// migrates the archive into the destination Dovecot, and checks that the
// destination serves what the source served: bytes, flags, dates.
func roundTrip(t *testing.T, format string) {
	p := newPair(t)
	msgs := testMessages(t, 0)
	p.src.Seed(t, "alice", msgs)
	before := p.src.Snapshot(t, "alice")
	dir := filepath.Join(t.TempDir(), "archive")

	args := []string{"archive", "imap://alice@" + p.src.IMAPAddr(), dir, "--format", format,
		"--src-tls", "none", "--state-dir", p.state, "--progress", "never"}
	code, out, errOut := mailferry(t, args...)
	if code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "manifest chain head: ") {
		t.Errorf("archive did not print the chain head:\n%s", out)
	}
	if code, out, errOut := mailferry(t, "verify", dir); code != 0 {
		t.Fatalf("verify of a fresh archive: exit %d\n%s\n%s", code, out, errOut)
	}
	// A rerun adds nothing.
	report := filepath.Join(t.TempDir(), "again.json")
	if code, out, errOut := mailferry(t, append(args, "--report", report)...); code != 0 {
		t.Fatalf("archive rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := readReport(t, report); r.Totals.Copied != 0 {
		t.Errorf("archive rerun copied %d, want 0", r.Totals.Copied)
	}

	report = filepath.Join(t.TempDir(), "back.json")
	back := []string{"migrate", format + ":" + dir, "imap://alice@" + p.dst.IMAPAddr(),
		"--dst-tls", "none", "--state-dir", p.state, "--progress", "never", "--report", report}
	if code, out, errOut := mailferry(t, back...); code != 0 {
		t.Fatalf("migrate back: exit %d\n%s\n%s", code, out, errOut)
	}
	rep := readReport(t, report)
	after := p.dst.Snapshot(t, "alice")
	sameContent(t, before, after, rep)
	if total(after) != len(msgs) {
		t.Errorf("after the round trip the destination holds %d messages, want %d", total(after), len(msgs))
	}
}

func TestRoundTripThroughMaildir(t *testing.T) { roundTrip(t, "maildir") }
func TestRoundTripThroughMbox(t *testing.T)    { roundTrip(t, "mbox") }

func TestVerifyFindsDamage(t *testing.T) {
	p := newPair(t)
	p.src.Seed(t, "alice", testMessages(t, 30))
	dir := filepath.Join(t.TempDir(), "archive")
	code, out, errOut := mailferry(t, "archive", "imap://alice@"+p.src.IMAPAddr(), dir,
		"--src-tls", "none", "--state-dir", p.state, "--progress", "never")
	if code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out, errOut)
	}
	var files []string
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && strings.Contains(path, "/cur/") {
			files = append(files, path)
		}
		return nil
	})
	if len(files) < 2 {
		t.Fatalf("found %d message files", len(files))
	}
	b, _ := os.ReadFile(files[0])
	b[len(b)/2] ^= 0x01
	os.WriteFile(files[0], b, 0o600)
	code, out, _ = mailferry(t, "verify", dir)
	if code == 0 || !strings.Contains(out, filepath.Base(files[0])) {
		t.Errorf("a flipped bit: exit %d, output does not name %s:\n%s", code, filepath.Base(files[0]), out)
	}
}

var _ = dovecottest.SeedMessage{}
