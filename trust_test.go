package main

// The promises of --delete-source and of a rerun, on real Dovecot: the
// source and the destination must be two mailboxes; a match by identity key
// alone is never a reason to delete; a destination that lost mail gets it
// again.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

func plainMessages(n int, tag string) []dovecottest.SeedMessage {
	base := time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)
	var out []dovecottest.SeedMessage
	for i := 0; i < n; i++ {
		folder := "INBOX"
		if i%2 == 1 {
			folder = "Work"
		}
		body := fmt.Sprintf("Message-ID: <%s-%d@trust.test>\r\nDate: Mon, 2 May 2022 10:00:%02d +0000\r\nFrom: a@b.test\r\nSubject: %s %d\r\n\r\nbody %d of %s\r\n", tag, i, i%60, tag, i, i, tag)
		out = append(out, dovecottest.SeedMessage{Folder: folder, Body: []byte(body), Flags: []string{`\Seen`}, Date: base.Add(time.Duration(i) * time.Hour)})
	}
	return out
}

func hashCount(s dovecottest.Snapshot) map[string]int {
	out := map[string]int{}
	for _, ms := range s {
		for _, m := range ms {
			out[m.SHA256]++
		}
	}
	return out
}

// TestSameMailboxIsRefused: the same account as source and destination,
// through identical URLs, through STARTTLS and implicit TLS, or through a
// second name for the host, is refused with exit 2 before anything happens
// (it used to "skip" every message as already there and then expunge it).
func TestSameMailboxIsRefused(t *testing.T) {
	t.Parallel()
	s := dovecottest.Start(t, dovecottest.Options{Separator: '/', TLS: true})
	s.Seed(t, "alice", plainMessages(20, "same"))
	before := s.Snapshot(t, "alice")
	setenv(t, "MAILFERRY_SRC_PASSWORD", s.Users["alice"])
	setenv(t, "MAILFERRY_DST_PASSWORD", s.Users["alice"])
	plain := "imap://alice@" + s.IMAPAddr()
	implicit := "imaps://alice@" + net.JoinHostPort("localhost", strconv.Itoa(s.IMAPSPort))
	cases := []struct{ name, src, dst string }{
		{"identical URLs", plain, plain},
		{"STARTTLS and implicit TLS", plain, implicit},
		{"implicit TLS and STARTTLS", implicit, plain},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := mailferry(t, "migrate", c.src, c.dst, "--delete-source", "--ca-file", s.CAFile,
				"--state-dir", t.TempDir(), "--progress", "never")
			if code != 2 {
				t.Fatalf("exit %d, want 2 (usage)\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if !strings.Contains(errOut, "same mailbox") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("want one line naming the same mailbox, got %q", errOut)
			}
			if after := s.Snapshot(t, "alice"); !sameSnapshot(before, after) {
				t.Fatalf("the mailbox changed: %d -> %d messages", total(before), total(after))
			}
		})
	}
	// No probe folder is left behind.
	for _, f := range s.Folders(t, "alice") {
		if strings.Contains(f.Mailbox, "mailferry-probe") {
			t.Errorf("probe folder %q left at the server", f.Mailbox)
		}
	}
}

// TestSameLocalStoreIsRefused: a local store given as both sides, or one
// inside the other, is a usage error (it was refused only by the accident of
// a lock).
func TestSameLocalStoreIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	md := filepath.Join(dir, "mail")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	msg := "Message-ID: <local@trust.test>\r\nSubject: x\r\n\r\nbody\r\n"
	if err := os.WriteFile(filepath.Join(md, "cur", "1.host:2,S"), []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(md, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	cases := [][]string{
		{"migrate", "maildir:" + md, "maildir:" + md},
		{"migrate", "maildir:" + md, "maildir:" + md + "/"},
		{"migrate", "maildir:" + md, "maildir:" + filepath.Join(dir, "link")},
		{"migrate", "maildir:" + md, "maildir:" + filepath.Join(md, ".Sub")},
		{"migrate", "maildir:" + md, "mbox:" + md},
		{"migrate", "maildir:" + filepath.Join(md, ".Sub"), "maildir:" + md},
		{"archive", "maildir:" + md, md},
	}
	for _, args := range cases {
		code, out, errOut := mailferry(t, append(args, "--delete-source", "--state-dir", t.TempDir(), "--progress", "never")...)
		if code != 2 || !strings.Contains(errOut, "same") {
			t.Errorf("%v: exit %d, want 2 naming the same store\nstdout: %s\nstderr: %s", args, code, out, errOut)
		}
	}
	b, err := os.ReadFile(filepath.Join(md, "cur", "1.host:2,S"))
	if err != nil || string(b) != msg {
		t.Fatalf("the message changed or vanished: %v", err)
	}
}

// collidingPair returns A (already at the destination) and A', a different
// message with the same Message-ID, Date, From and Subject.
func collidingPair() (a, a2 []byte) {
	head := "Message-ID: <statement-7@bank.test>\r\nDate: Tue, 3 May 2022 09:00:00 +0000\r\nFrom: bank@bank.test\r\nSubject: Your statement\r\n\r\n"
	return []byte(head + "Balance: 100\r\n"), []byte(head + "Balance: 250 (corrected)\r\n")
}

// TestDeleteSourceNeverDeletesAKeyOnlyMatch: A' is skipped as already
// there (its key is), but it is not what the destination holds, so it must
// stay at the source; the messages mailferry copied are deleted, and the
// report counts and names both kinds.
func TestDeleteSourceNeverDeletesAKeyOnlyMatch(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	a, a2 := collidingPair()
	p.dst.Seed(t, "alice", []dovecottest.SeedMessage{{Body: a}})
	others := plainMessages(6, "collide")
	p.src.Seed(t, "alice", append([]dovecottest.SeedMessage{{Body: a2}}, others...))
	report := filepath.Join(t.TempDir(), "report.json")
	code, out, errOut := mailferry(t, p.args("--delete-source", "--report", report)...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	src := p.src.Snapshot(t, "alice")
	left := hashCount(src)
	if len(left) != 1 || left[sha(a2)] != 1 {
		t.Fatalf("the source should keep exactly A' (%s), holds %v", sha(a2)[:12], left)
	}
	dst := hashCount(p.dst.Snapshot(t, "alice"))
	for _, m := range others {
		if dst[sha(m.Body)] != 1 {
			t.Errorf("a deleted message is not at the destination exactly once: %s", m.Body[:40])
		}
	}
	rep := readReport(t, report)
	var deleted int
	for _, f := range rep.Folders {
		deleted += f.DeletedAtSource
	}
	if deleted != len(others) {
		t.Errorf("report counts %d deleted at the source, want %d", deleted, len(others))
	}
	if !strings.Contains(string(mustRead(t, report)), "statement-7@bank.test") {
		t.Errorf("the report does not name the message kept at the source")
	}
}

// TestDeleteSourceKeyOnlyMatchPOP3IntoArchive: the same over POP3 into an
// archive that already holds A from another source.
func TestDeleteSourceKeyOnlyMatchPOP3IntoArchive(t *testing.T) {
	t.Parallel()
	first := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	a, a2 := collidingPair()
	first.Seed(t, "alice", []dovecottest.SeedMessage{{Body: a}})
	others := plainMessages(4, "pop")
	for i := range others {
		others[i].Folder = "INBOX"
	}
	src.Seed(t, "alice", append([]dovecottest.SeedMessage{{Body: a2}}, others...))
	arc := filepath.Join(t.TempDir(), "arc")
	state := t.TempDir()
	setenv(t, "MAILFERRY_SRC_PASSWORD", first.Users["alice"])
	if code, out, errOut := mailferry(t, "archive", "imap://alice@"+first.IMAPAddr(), arc, "--src-tls", "none", "--state-dir", state, "--progress", "never"); code != 0 {
		t.Fatalf("first archive: exit %d\n%s\n%s", code, out, errOut)
	}
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["alice"])
	code, out, errOut := mailferry(t, "archive", "pop3://alice@"+src.POP3Addr(), arc, "--src-tls", "none", "--state-dir", state, "--progress", "never", "--delete-source")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	left := hashCount(src.Snapshot(t, "alice"))
	if len(left) != 1 || left[sha(a2)] != 1 {
		t.Fatalf("the POP3 box should keep exactly A', holds %d distinct messages", len(left))
	}
}

// TestRerunHealsDestinationLosses: messages, and a whole folder, deleted at
// the destination after a run are copied again by a rerun with the same
// state (they used to be "skipped" for ever).
func TestRerunHealsDestinationLosses(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := plainMessages(20, "heal")
	for i := range msgs {
		if i%5 == 4 {
			msgs[i].Folder = "Projects/Old"
		}
	}
	p.src.Seed(t, "alice", msgs)
	report := filepath.Join(t.TempDir(), "report.json")
	if code, out, errOut := mailferry(t, p.args("--report", report)...); code != 0 {
		t.Fatalf("first run: exit %d\n%s\n%s", code, out, errOut)
	}
	// Three messages of INBOX and the whole of Projects.Old go.
	c := p.dst.Client(t, "alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1, 2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Projects.Old").Wait(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := mailferry(t, p.args("--report", report)...)
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	rep := readReport(t, report)
	if rep.Totals.Copied != 3+4 {
		t.Errorf("rerun copied %d, want 7 (3 lost messages and a lost folder of 4)\n%s", rep.Totals.Copied, out)
	}
	sameContent(t, p.src.Snapshot(t, "alice"), p.dst.Snapshot(t, "alice"), rep)
	// And a third run has nothing to do.
	if code, out, errOut := mailferry(t, p.args("--report", report)...); code != 0 || readReport(t, report).Totals.Copied != 0 {
		t.Fatalf("third run: exit %d, copied %d\n%s\n%s", code, readReport(t, report).Totals.Copied, out, errOut)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
