package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// The corpus through the paths the other tests do not take: POP3 straight
// into IMAP (the size is unknown until the end: the sink spools), POP3
// into mbox, and local to local (Maildir -> mbox -> Maildir).
func TestCorpusThroughEveryOtherPath(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := testMessages(t, 0)
	for i := range msgs {
		msgs[i].Folder = "INBOX"
	}
	p.src.Seed(t, "alice", msgs)
	work := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		args = append(args, "--state-dir", p.state, "--progress", "never")
		if code, out, errOut := mailferry(t, args...); code != 0 {
			t.Fatalf("%q: exit %d\n%s\n%s", args[:3], code, out, errOut)
		}
	}
	pop3 := "pop3://alice@" + p.src.POP3Addr()

	// POP3 -> IMAP: what the destination serves is what POP3 sent.
	run("migrate", pop3, "imap://alice@"+p.dst.IMAPAddr(), "--src-tls", "none", "--dst-tls", "none")
	var imapSums []string
	for _, m := range p.dst.Snapshot(t, "alice")["INBOX"] {
		imapSums = append(imapSums, m.SHA256)
	}
	if len(imapSums) != len(msgs) {
		t.Fatalf("POP3 -> IMAP: %d of %d messages", len(imapSums), len(msgs))
	}

	// POP3 -> mbox and POP3 -> Maildir hold the same bytes.
	mbox, maildir := filepath.Join(work, "mbox"), filepath.Join(work, "maildir")
	run("archive", pop3, mbox, "--format", "mbox", "--src-tls", "none")
	run("archive", pop3, maildir, "--src-tls", "none")
	fromPOP3 := sorted(manifestSHA256(t, maildir))
	// What the IMAP destination serves is what POP3 sent (messages with
	// NUL bytes went as literal8; Dovecot serves a NUL as 0x80 in BODY[]).
	nulTo80 := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte{0}, []byte{0x80}) }
	if want := sumsOf(archivedBodies(t, maildir), nulTo80); strings.Join(sorted(imapSums), ",") != strings.Join(want, ",") {
		t.Errorf("POP3 -> IMAP changed messages: %s", firstDiff(want, sorted(imapSums)))
	}
	if got := sorted(manifestSHA256(t, mbox)); strings.Join(got, ",") != strings.Join(fromPOP3, ",") {
		t.Errorf("POP3 -> mbox and POP3 -> Maildir differ: %s", firstDiff(fromPOP3, got))
	}

	// Maildir -> mbox -> Maildir, all local.
	mbox2, maildir2 := filepath.Join(work, "mbox2"), filepath.Join(work, "maildir2")
	run("archive", "maildir:"+maildir, mbox2, "--format", "mbox")
	run("archive", "mbox:"+mbox2, maildir2)
	if got := sorted(manifestSHA256(t, maildir2)); strings.Join(got, ",") != strings.Join(fromPOP3, ",") {
		t.Errorf("Maildir -> mbox -> Maildir changed messages: %s", firstDiff(fromPOP3, got))
	}
	for _, dir := range []string{mbox, maildir, mbox2, maildir2} {
		if code, out, _ := mailferry(t, "verify", dir); code != 0 {
			t.Errorf("verify %s: exit %d\n%s", filepath.Base(dir), code, out)
		}
	}
}

func sorted(s []string) []string { sort.Strings(s); return s }

// A 50 MB message streams through IMAP -> IMAP, IMAP -> Maildir, IMAP ->
// mbox and POP3 -> IMAP byte for byte. (Its memory is measured by
// BenchmarkLargeMessage, not asserted here.)
func TestFiftyMegabyteMessageEveryPath(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: moves 50 MB through four paths")
	}
	p := newPair(t)
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Folder: "INBOX", Body: bigMessage(50 << 20), Date: time.Unix(1700000000, 0)}})
	want := p.src.Snapshot(t, "alice")["INBOX"][0].SHA256
	work := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		args = append(args, "--state-dir", t.TempDir(), "--progress", "never")
		if code, out, errOut := mailferry(t, args...); code != 0 {
			t.Fatalf("%q: exit %d\n%s\n%s", args[:3], code, out, errOut)
		}
	}
	src := "imap://alice@" + p.src.IMAPAddr()
	run("migrate", src, "imap://alice@"+p.dst.IMAPAddr(), "--src-tls", "none", "--dst-tls", "none", "--prefix", "FromIMAP")
	run("migrate", "pop3://alice@"+p.src.POP3Addr(), "imap://alice@"+p.dst.IMAPAddr(), "--src-tls", "none", "--dst-tls", "none", "--prefix", "FromPOP3")
	snap := p.dst.Snapshot(t, "alice")
	for _, f := range []string{"FromIMAP.INBOX", "FromPOP3.INBOX"} {
		if ms := snap[f]; len(ms) != 1 || ms[0].SHA256 != want {
			t.Errorf("%s: %d messages, or the bytes differ", f, len(ms))
		}
	}
	for _, format := range []string{"maildir", "mbox"} {
		dir := filepath.Join(work, format)
		run("archive", src, dir, "--format", format, "--src-tls", "none")
		if got := manifestSHA256(t, dir); len(got) != 1 || got[0] != want {
			t.Errorf("%s: manifest %v, want [%s]", format, got, want)
		}
		if code, out, _ := mailferry(t, "verify", dir); code != 0 {
			t.Errorf("verify %s: exit %d\n%s", format, code, out)
		}
	}
}

// bigMessage is a CRLF message of about n bytes with a base64-like body.
func bigMessage(n int) []byte {
	var b strings.Builder
	b.WriteString("Message-ID: <big@mailferry.test>\r\nSubject: big\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	line := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 3)[:76] + "\r\n"
	for i := 0; b.Len() < n; i++ {
		if i%1000 == 0 {
			fmt.Fprintf(&b, "%076d\r\n", i)
			continue
		}
		b.WriteString(line)
	}
	return []byte(b.String())
}
