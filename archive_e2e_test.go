package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/archive"
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
	t.Parallel()
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

// archiveRepair archives a Dovecot account, damages the archive with
// damage (which returns the manifest entry of the message it lost), and
// checks that verify names the damage, that a rerun of the same command
// copies the lost message again and records the repair in the manifest,
// and that verify then passes with every source message in the archive,
// byte for byte.
func archiveRepair(t *testing.T, format string, damage func(dir string, lines []archive.ManifestEntry) archive.ManifestEntry) {
	p := newPair(t)
	msgs := testMessages(t, 30)
	p.src.Seed(t, "alice", msgs)
	before := p.src.Snapshot(t, "alice")
	dir := filepath.Join(t.TempDir(), "archive")
	args := []string{"archive", "imap://alice@" + p.src.IMAPAddr(), dir, "--format", format,
		"--src-tls", "none", "--state-dir", p.state, "--progress", "never"}
	if code, out, errOut := mailferry(t, args...); code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out, errOut)
	}
	lost := damage(dir, manifestEntries(t, dir))
	code, out, _ := mailferry(t, "verify", dir)
	if code == 0 || !strings.Contains(out, lost.File) {
		t.Fatalf("verify of the damaged archive: exit %d, %s not named:\n%s", code, lost.File, out)
	}

	report := filepath.Join(t.TempDir(), "rerun.json")
	if code, out, errOut := mailferry(t, append(args, "--report", report)...); code != 0 {
		t.Fatalf("archive rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := readReport(t, report); r.Totals.Copied != 1 {
		t.Errorf("the rerun copied %d messages, want the 1 lost", r.Totals.Copied)
	}
	if code, out, errOut := mailferry(t, "verify", dir); code != 0 {
		t.Errorf("verify after the rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	entries := manifestEntries(t, dir)
	last := entries[len(entries)-1]
	if last.Repairs != lost.Seq || last.SHA256 != lost.SHA256 || last.Repair == "" {
		t.Errorf("the manifest's last line does not record the repair of seq %d: %+v", lost.Seq, last)
	}
	// Every source message is in the archive once, by SHA-256: the live
	// entries (verify has re-hashed each of them against its file).
	want := map[string]int{}
	for _, ms := range before {
		for _, m := range ms {
			want[m.SHA256]++
		}
	}
	superseded := map[uint64]bool{}
	for _, e := range entries {
		if e.Repairs != 0 {
			superseded[e.Repairs] = true
		}
	}
	for _, e := range entries {
		if !superseded[e.Seq] {
			want[e.SHA256]--
		}
	}
	for sum, n := range want {
		if n != 0 {
			t.Errorf("message %.12s…: %d more in the source than in the archive", sum, n)
		}
	}
}

func manifestEntries(t *testing.T, dir string) []archive.ManifestEntry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, archive.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []archive.ManifestEntry
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		var e archive.ManifestEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// A message file deleted from a Maildir archive is copied again by the
// next run (issue 9, item 4).
func TestArchiveRepairsDeletedMaildirFile(t *testing.T) {
	t.Parallel()
	archiveRepair(t, "maildir", func(dir string, e []archive.ManifestEntry) archive.ManifestEntry {
		if err := os.Remove(filepath.Join(dir, e[4].File)); err != nil {
			t.Fatal(err)
		}
		return e[4]
	})
}

// Three messages of INBOX share a Message-ID (the corpus has such mail:
// one message with different footers) and so an identity key; the file of
// the first is deleted. The rerun must copy that one again: the engine,
// matching by key, copied the last of the three instead (the archive then
// held it twice and the deleted one not at all), which
// TestArchiveRepairsDeletedMaildirFile hit whenever the manifest's fifth
// entry was one of them.
func TestArchiveRepairsTheLostOfSameKeyMessages(t *testing.T) {
	t.Parallel()
	for _, dedup := range []string{"folder", "account"} {
		t.Run("dedup "+dedup, func(t *testing.T) {
			t.Parallel()
			archiveRepairsTheLostOfSameKey(t, dedup)
		})
	}
}

func archiveRepairsTheLostOfSameKey(t *testing.T, dedup string) {
	p := newPair(t)
	var msgs []dovecottest.SeedMessage
	for i, footer := range []string{"first", "second, longer footer", "third"} {
		msgs = append(msgs, dovecottest.SeedMessage{Folder: "INBOX", Flags: []string{`\Seen`},
			Date: time.Date(2021, 3, 4, 5, 6, 7+i, 0, time.UTC),
			Body: []byte("From: a@example.org\r\nTo: b@example.org\r\nSubject: same\r\n" +
				"Date: Thu, 04 Mar 2021 05:06:07 +0000\r\nMessage-ID: <same@example.org>\r\n\r\nbody -- " + footer + "\r\n")})
	}
	p.src.Seed(t, "alice", msgs)
	before := p.src.Snapshot(t, "alice")
	dir := filepath.Join(t.TempDir(), "archive")
	args := []string{"archive", "imap://alice@" + p.src.IMAPAddr(), dir,
		"--src-tls", "none", "--state-dir", p.state, "--progress", "never", "--dedup", dedup}
	if code, out, errOut := mailferry(t, args...); code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out, errOut)
	}
	var lost archive.ManifestEntry
	for _, e := range manifestEntries(t, dir) {
		if e.ID == "1" {
			lost = e
		}
	}
	if lost.File == "" {
		t.Fatalf("no manifest entry for UID 1")
	}
	if err := os.Remove(filepath.Join(dir, lost.File)); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := mailferry(t, args...); code != 0 {
		t.Fatalf("archive rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := mailferry(t, "verify", dir); code != 0 {
		t.Errorf("verify after the rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	entries := manifestEntries(t, dir)
	last := entries[len(entries)-1]
	if last.Repairs != lost.Seq || last.SHA256 != lost.SHA256 || last.ID != "1" {
		t.Errorf("the last entry does not repair UID 1 (seq %d): %+v", lost.Seq, last)
	}
	live := map[string]int{}
	superseded := map[uint64]bool{}
	for _, e := range entries {
		superseded[e.Repairs] = true
	}
	for _, e := range entries {
		if !superseded[e.Seq] {
			live[e.SHA256]++
		}
	}
	for _, ms := range before {
		for _, m := range ms {
			if live[m.SHA256] != 1 {
				t.Errorf("message %.12s… is in the archive %d times, want once", m.SHA256, live[m.SHA256])
			}
		}
	}
}

// An mbox archive file cut short inside its last message: the message is
// copied again by the next run.
func TestArchiveRepairsTruncatedMbox(t *testing.T) {
	t.Parallel()
	archiveRepair(t, "mbox", func(dir string, e []archive.ManifestEntry) archive.ManifestEntry {
		m := e[len(e)-1]
		if err := os.Truncate(filepath.Join(dir, m.File), *m.Offset+m.Size/2); err != nil {
			t.Fatal(err)
		}
		return m
	})
}

// A message appended by hand to an archive's .mbox file: verify names it,
// and the next archive run (with new mail to add) refuses to append to
// that file instead of making those bytes part of its recorded length
// (issue 9, item 5).
func TestArchiveMboxAppendedByHand(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := testMessages(t, 14)
	p.src.Seed(t, "alice", msgs[:12])
	dir := filepath.Join(t.TempDir(), "archive")
	args := []string{"archive", "imap://alice@" + p.src.IMAPAddr(), dir, "--format", "mbox",
		"--src-tls", "none", "--state-dir", p.state, "--progress", "never"}
	if code, out, errOut := mailferry(t, args...); code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out, errOut)
	}
	mbox := filepath.Join(dir, "mail", "inbox")
	f, err := os.OpenFile(mbox, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("From someone@example.org Thu Jan  1 00:00:00 2015\nSubject: added by hand\n\nhello\n\n")
	f.Close()
	lenBefore, _ := os.ReadFile(filepath.Join(dir, "mail", ".inbox.len.lock"))
	if code, out, _ := mailferry(t, "verify", dir); code == 0 || !strings.Contains(out, "mail/inbox") {
		t.Errorf("verify: exit %d, mail/inbox not named:\n%s", code, out)
	}
	var inbox []dovecottest.SeedMessage
	for _, m := range msgs[12:] {
		m.Folder = "INBOX"
		inbox = append(inbox, m)
	}
	p.src.Seed(t, "alice", inbox)
	code, out, errOut := mailferry(t, args...)
	if code == 0 || !strings.Contains(out+errOut, "mail/inbox") {
		t.Errorf("archive rerun: exit %d, mail/inbox not named\n%s\n%s", code, out, errOut)
	}
	if lenAfter, _ := os.ReadFile(filepath.Join(dir, "mail", ".inbox.len.lock")); string(lenAfter) != string(lenBefore) {
		t.Errorf("the rerun made the hand-appended bytes part of the recorded length: %q -> %q", lenBefore, lenAfter)
	}
	if code, out, _ := mailferry(t, "verify", dir); code == 0 || !strings.Contains(out, "mail/inbox") {
		t.Errorf("verify after the rerun: exit %d, mail/inbox not named:\n%s", code, out)
	}
}

// Issue 12, keywords in an mbox archive served by Dovecot: Dovecot shows a
// message's X-Keywords only when the file's first message declares them in
// an X-IMAPbase line. The first message of the folder carries no keyword,
// later ones do: the pass declares, before it writes the first message,
// every keyword of the messages it is about to copy.
func TestArchiveMboxDeclaresKeywordsOfTheWholePass(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := testMessages(t, 3)
	for i := range msgs {
		msgs[i].Folder, msgs[i].Flags = "INBOX", nil
	}
	msgs[1].Flags = []string{"$Label1"}
	msgs[2].Flags = []string{`\Seen`, "Work"}
	p.src.Seed(t, "alice", msgs)
	dir := filepath.Join(t.TempDir(), "archive")
	if code, out, errOut := mailferry(t, "archive", "imap://alice@"+p.src.IMAPAddr(), dir, "--format", "mbox",
		"--src-tls", "none", "--state-dir", p.state, "--progress", "never"); code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(filepath.Join(dir, "mail", "inbox"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := bytes.Cut(b, []byte("\n"))
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	words := strings.Fields(string(line))
	if len(words) != 5 || words[0] != "X-IMAPbase:" || !slices.Contains(words, "$Label1") || !slices.Contains(words, "Work") {
		t.Errorf("the first message's line after From_ is %q, want an X-IMAPbase line declaring $Label1 and Work", line)
	}
	if code, out, _ := mailferry(t, "verify", dir); code != 0 {
		t.Errorf("verify: exit %d\n%s", code, out)
	}
}
