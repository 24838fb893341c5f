package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/servertest"
)

// writeMaildir makes a Maildir (the INBOX at its root) holding msgs, in
// cur/ with the \Seen flag, one file each.
func writeMaildir(t *testing.T, msgs [][]byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range msgs {
		if err := os.WriteFile(filepath.Join(dir, "cur", fmt.Sprintf("%d.M%d.test:2,S", 1600000000+i, i)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func sortedSHA(bodies [][]byte) []string {
	var out []string
	for _, b := range bodies {
		out = append(out, sha(b))
	}
	sort.Strings(out)
	return out
}

// Issue 11 item 1: a message holding NUL is stored on Cyrus (mailferry
// writes it there with a literal8 APPEND), and Cyrus then sends its BODY[]
// as a literal8 (`BODY[] ~{n}`), which go-imap's FETCH parser cannot read:
// the whole folder failed, on every rerun. Every message, single-part and
// multipart, must come from Cyrus to Dovecot and to a Maildir archive with
// the bytes Cyrus stored.
func TestCyrusNULMessagesCopied(t *testing.T) {
	cy := servertest.StartCyrus(t, servertest.Options{})
	var bodies [][]byte
	for _, m := range nulMessages {
		bodies = append(bodies, []byte(m.body))
	}
	plain := []byte("Message-ID: <plain@binary.test>\r\nSubject: plain\r\n\r\nplain\r\n")
	bodies = append(bodies, plain)
	t.Setenv("MAILFERRY_DST_PASSWORD", cy.Users[cy.User])
	code, out, errOut := mailferry(t, "migrate", "maildir:"+writeMaildir(t, bodies), serverURL(cy),
		"--dst-tls", "none", "--state-dir", t.TempDir(), "--progress", "never")
	if code != 0 {
		t.Fatalf("maildir -> cyrus: exit %d\n%s\n%s", code, out, errOut)
	}
	stored := cy.CyrusStored(t, cy.User, "INBOX")
	if len(stored) != len(bodies) {
		t.Fatalf("cyrus stored %d messages, want %d", len(stored), len(bodies))
	}
	nuls := 0
	for _, b := range stored {
		if bytes.IndexByte(b, 0) >= 0 {
			nuls++
		}
	}
	if nuls < 2 {
		t.Fatalf("cyrus stored %d messages holding NUL: the test needs a single-part and a multipart one", nuls)
	}
	want := sortedSHA(stored)

	dir := filepath.Join(t.TempDir(), "archive")
	t.Setenv("MAILFERRY_SRC_PASSWORD", cy.Users[cy.User])
	code, out, errOut = mailferry(t, "archive", serverURL(cy), dir, "--src-tls", "none",
		"--state-dir", t.TempDir(), "--progress", "never")
	if code != 0 {
		t.Fatalf("cyrus -> maildir archive: exit %d\n%s\n%s", code, out, errOut)
	}
	got := manifestSHA256(t, dir)
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("archive holds\n%v\nwant what cyrus stored\n%v", got, want)
	}

	dc := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	code, out, errOut, report := migrateBetween(t, serverURL(cy), dovecotURL(dc), cy.Users[cy.User], dc.Users["alice"], t.TempDir())
	if code != 0 {
		t.Fatalf("cyrus -> dovecot: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := readReport(t, report); r.Totals.Copied != len(bodies) {
		t.Errorf("cyrus -> dovecot copied %d, want %d", r.Totals.Copied, len(bodies))
	}
	// Dovecot stores the bytes (BINARY[] of what we sent); its BODY[]
	// serves a NUL as 0x80, so compare BODY[] with that change.
	var wantServed [][]byte
	for _, b := range stored {
		wantServed = append(wantServed, bytes.ReplaceAll(b, []byte{0}, []byte{0x80}))
	}
	var gotServed []string
	for _, m := range dc.Snapshot(t, "alice")["INBOX"] {
		gotServed = append(gotServed, m.SHA256)
	}
	sort.Strings(gotServed)
	if w := sortedSHA(wantServed); fmt.Sprint(gotServed) != fmt.Sprint(w) {
		t.Errorf("dovecot serves\n%v\nwant\n%v", gotServed, w)
	}
}

// Issue 11 item 8: Courier POP3 advertises UTF8 (RFC 6856) in CAPA, and
// without the UTF8 command it replaces every message with 8-bit bytes in
// its header by a "Cannot display Unicode content" wrapper. mailferry must
// send UTF8 where offered: the archived bytes are the stored ones.
func TestCourierPOP3EightBitHeaders(t *testing.T) {
	co := servertest.StartCourier(t, servertest.Options{})
	msgs := [][]byte{
		[]byte("From: J\xc3\xbcrgen <j@example.com>\r\nTo: alice@example.com\r\nSubject: Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\nMessage-ID: <u8-1@example.com>\r\nDate: Mon, 2 Jan 2023 03:04:05 +0000\r\n\r\nHallo \xc3\xa4\r\n"),
		[]byte("From: s@example.com\r\nTo: alice@example.com\r\nSubject: ascii\r\nMessage-ID: <u8-2@example.com>\r\n\r\nplain\r\n"),
		[]byte("From: \xe6\x9d\x8e <li@example.com>\r\nTo: alice@example.com\r\nSubject: \xe4\xbd\xa0\xe5\xa5\xbd\r\nMessage-ID: <u8-3@example.com>\r\n\r\n\xe4\xbd\xa0\xe5\xa5\xbd\r\n"),
	}
	co.WriteMaildir(t, co.User, msgs)
	want := sortedSHA(msgs)
	dir := filepath.Join(t.TempDir(), "archive")
	t.Setenv("MAILFERRY_SRC_PASSWORD", co.Users[co.User])
	code, out, errOut := mailferry(t, "archive", "pop3://"+co.User+"@"+co.POP3Addr(), dir, "--src-tls", "none",
		"--state-dir", t.TempDir(), "--progress", "never")
	if code != 0 {
		t.Fatalf("courier pop3 -> archive: exit %d\n%s\n%s", code, out, errOut)
	}
	bodies := archivedBodies(t, dir)
	if got := sortedSHA(bodies); fmt.Sprint(got) != fmt.Sprint(want) {
		for _, b := range bodies {
			t.Logf("archived: %.200q", b)
		}
		t.Errorf("archive holds\n%v\nwant the stored bytes\n%v", got, want)
	}
}

// Issue 11 item 7: for a folder with nothing to do (the no-op rerun's
// fast path) the summary and the report named the destination folder
// without the destination's "INBOX." prefix; and behind the size-limit
// wrapper (--max-message-size) a --dry-run did not see the destination's
// naming either. On Cyrus and Courier every name carries the prefix.
func TestPrefixedDestinationNamesOnRerun(t *testing.T) {
	for _, kind := range []servertest.Kind{servertest.Cyrus, servertest.Courier} {
		t.Run(string(kind), func(t *testing.T) {
			dst := servertest.Start(t, kind, servertest.Options{})
			dc := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
			date := time.Date(2023, 4, 5, 6, 7, 8, 0, time.UTC)
			dc.Seed(t, "alice", []dovecottest.SeedMessage{
				{Folder: "INBOX", Body: simpleMessage(21, "inbox"), Date: date},
				{Folder: "Work", Body: simpleMessage(22, "work"), Date: date},
				{Folder: "Work/Sub", Body: simpleMessage(23, "sub"), Date: date},
			})
			want := map[string]string{"INBOX": "INBOX", "Work": "INBOX.Work", "Work/Sub": "INBOX.Work.Sub"}
			st := t.TempDir()
			check := func(what string, extra ...string) {
				t.Helper()
				code, out, errOut, report := migrateBetween(t, dovecotURL(dc), serverURL(dst), dc.Users["alice"], dst.Users[dst.User], st, extra...)
				if code != 0 {
					t.Fatalf("%s: exit %d\n%s\n%s", what, code, out, errOut)
				}
				r := readReport(t, report)
				if len(r.Folders) != len(want) {
					t.Errorf("%s: report has %d folders, want %d", what, len(r.Folders), len(want))
				}
				for _, f := range r.Folders {
					if f.Destination != want[f.Source] {
						t.Errorf("%s: report: %s -> %q, want %q", what, f.Source, f.Destination, want[f.Source])
					}
					if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(f.Source) + ` +` + regexp.QuoteMeta(want[f.Source]) + ` `).MatchString(out) {
						t.Errorf("%s: the summary does not show %s -> %s:\n%s", what, f.Source, want[f.Source], out)
					}
				}
			}
			check("dry run behind the size limit", "--dry-run", "--max-message-size", "10M")
			check("first run")
			check("rerun")
			check("rerun behind the size limit", "--max-message-size", "10M")
		})
	}
}
