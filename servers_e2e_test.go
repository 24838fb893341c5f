package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/servertest"
)

// serverURL is imap://LOGIN@host:port for alice on s (a mailutils login
// holds '@', which the URL escapes).
func serverURL(s *servertest.Server) string {
	return "imap://" + url.User(s.User).String() + "@" + s.IMAPAddr()
}

func dovecotURL(s *dovecottest.Server) string { return "imap://alice@" + s.IMAPAddr() }

// migrateBetween runs mailferry migrate src dst with the two passwords and
// returns exit code, output and the report.
func migrateBetween(t *testing.T, src, dst, srcPW, dstPW, state string, extra ...string) (int, string, string, string) {
	t.Helper()
	setenv(t, "MAILFERRY_SRC_PASSWORD", srcPW)
	setenv(t, "MAILFERRY_DST_PASSWORD", dstPW)
	report := filepath.Join(t.TempDir(), "report.json")
	args := append([]string{"migrate", src, dst, "--src-tls", "none", "--dst-tls", "none",
		"--state-dir", state, "--progress", "never", "--report", report}, extra...)
	code, out, errOut := mailferry(t, args...)
	return code, out, errOut, report
}

// roundTripMessages is a small set over three folders: CRLF messages,
// one whose last line has no CRLF, one with 8-bit bytes in a header and
// the body; system flags only, distinct dates.
// For mailutils the nested folder is a sibling instead: with mbox storage a
// folder holding messages cannot have subfolders (CREATE "Work/Sub" gets
// NO Cannot create mailbox once Work is an mbox file).
func roundTripMessages(kind servertest.Kind) []dovecottest.SeedMessage {
	sub := "Work/Sub"
	if kind == servertest.Mailutils {
		sub = "Work-Sub"
	}
	base := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	body := func(i int, subject, text string) []byte {
		return []byte(fmt.Sprintf("From: Sender %d <s%d@example.com>\r\nTo: alice@example.com\r\nSubject: %s\r\n"+
			"Message-ID: <rt%d@example.com>\r\nDate: Mon, 2 Jan 2023 03:04:05 +0000\r\n\r\n%s", i, i, subject, i, text))
	}
	return []dovecottest.SeedMessage{
		{Folder: "INBOX", Body: body(1, "one", "first\r\n"), Flags: []string{`\Seen`}, Date: base},
		{Folder: "INBOX", Body: body(2, "two", "second\r\n"), Flags: []string{`\Flagged`, `\Seen`}, Date: base.Add(time.Hour)},
		{Folder: "Work", Body: body(3, "gr\xc3\xbc\xc3\x9fe", "8-bit body \xc3\xa4\r\n"), Flags: []string{`\Answered`}, Date: base.Add(2 * time.Hour)},
		{Folder: "Work", Body: body(4, "no final newline", "last line without CRLF"), Flags: nil, Date: base.Add(3 * time.Hour)},
		{Folder: sub, Body: body(5, "deep", "nested\r\n"), Flags: []string{`\Draft`}, Date: base.Add(4 * time.Hour)},
	}
}

// serverChange is what kind itself does to the bytes of a message it
// stores and serves back (see servertest's package doc): the expected
// BODY[] for an APPENDed body. For mailutils the comparison strips its
// state headers first (expectServed does that).
func serverChange(kind servertest.Kind, b []byte) []byte {
	switch kind {
	case servertest.Cyrus, servertest.CyrusAlt:
		// munge8bit: every 8-bit byte in the header becomes 'X'.
		end := bytes.Index(b, []byte("\r\n\r\n"))
		if end < 0 {
			end = len(b)
		}
		out := append([]byte(nil), b...)
		for i := 0; i < end; i++ {
			if out[i] >= 0x80 {
				out[i] = 'X'
			}
		}
		return out
	case servertest.Courier, servertest.Mailutils:
		// A message whose last line has no CRLF gets one.
		if !bytes.HasSuffix(b, []byte("\r\n")) {
			return append(append([]byte(nil), b...), "\r\n"...)
		}
	}
	return b
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// served returns folder -> sorted "sha flags date" of what s serves, with
// mailutils' state headers stripped (and checked: exactly X-UID and Status
// on every message, X-IMAPbase on the first of a folder).
func served(t *testing.T, s *servertest.Server, folders []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	snap := s.Snapshot(t, s.User)
	for _, f := range folders {
		name := s.Name(f)
		bodies := s.Bodies(t, s.User, name)
		states := snap[name]
		if len(bodies) != len(states) {
			t.Fatalf("%s %q: %d bodies, %d messages", s.Kind, name, len(bodies), len(states))
		}
		for i, b := range bodies {
			if s.Kind == servertest.Mailutils {
				var added []string
				b, added = servertest.StripMailutilsHeaders(b)
				// X-IMAPbase on the first message of a folder, X-UID on
				// each, Status on each that has a flag.
				want := []string{"X-UID"}
				if i == 0 {
					want = []string{"X-IMAPbase", "X-UID"}
				}
				if len(states[i].Flags) > 0 {
					want = append(want, "Status")
				}
				if fmt.Sprint(added) != fmt.Sprint(want) {
					t.Errorf("mailutils %q message %d: added headers %v, want %v", name, i, added, want)
				}
			}
			out[f] = append(out[f], fmt.Sprintf("%s %s %s", sha256hex(b), strings.Join(states[i].Flags, ","), states[i].Date.UTC().Format(time.RFC3339)))
		}
		sort.Strings(out[f])
	}
	return out
}

func expected(kind servertest.Kind, msgs []dovecottest.SeedMessage) map[string][]string {
	out := map[string][]string{}
	for _, m := range msgs {
		flags := append([]string{}, m.Flags...)
		sort.Strings(flags)
		out[m.Folder] = append(out[m.Folder], fmt.Sprintf("%s %s %s", sha256hex(serverChange(kind, m.Body)), strings.Join(flags, ","), m.Date.UTC().Format(time.RFC3339)))
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// TestServersMigrateDovecotRoundTrip: for every server of servertest,
// mailferry migrates a Dovecot account into it and from it into a fresh
// Dovecot: every message arrives with its flags and date, byte for byte
// except the change the server itself makes (Cyrus: munge8bit; mailutils:
// its state headers, which then travel on as part of the message; Courier
// and mailutils: a final CRLF where the message had none), in the
// same folders; a rerun copies nothing.
func TestServersMigrateDovecotRoundTrip(t *testing.T) {
	for _, kind := range servertest.Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			mid := servertest.Start(t, kind, servertest.Options{})
			src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
			back := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
			msgs := roundTripMessages(kind)
			src.Seed(t, "alice", msgs)
			folders := []string{"INBOX", "Work", msgs[len(msgs)-1].Folder}
			state := t.TempDir()

			code, out, errOut, _ := migrateBetween(t, dovecotURL(src), serverURL(mid), src.Users["alice"], mid.Users[mid.User], state)
			if code != 0 {
				t.Fatalf("dovecot -> %s: exit %d\n%s\n%s\nserver log:\n%s", kind, code, out, errOut, mid.LogTail(20))
			}
			want := expected(kind, msgs)
			if got := served(t, mid, folders); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s holds\n%v\nwant\n%v", kind, got, want)
			}

			code, out, errOut, report := migrateBetween(t, serverURL(mid), dovecotURL(back), mid.Users[mid.User], back.Users["alice"], state)
			if code != 0 {
				t.Fatalf("%s -> dovecot: exit %d\n%s\n%s", kind, code, out, errOut)
			}
			if r := readReport(t, report); r.Totals.Copied != len(msgs) || r.Totals.Failed != 0 {
				t.Errorf("%s -> dovecot copied %d of %d, failed %d", kind, r.Totals.Copied, len(msgs), r.Totals.Failed)
			}
			backSnap := back.Snapshot(t, "alice")
			got := map[string][]string{}
			for _, f := range folders {
				for _, m := range backSnap[f] {
					got[f] = append(got[f], fmt.Sprintf("%s %s %s", m.SHA256, strings.Join(m.Flags, ","), m.Date.UTC().Format(time.RFC3339)))
				}
				sort.Strings(got[f])
			}
			if kind != servertest.Mailutils { // mailutils' headers travel on: checked below
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("back on dovecot:\n%v\nwant\n%v", got, want)
				}
			} else {
				// What arrives is what mailutils served, its headers included.
				midSnap := mid.Snapshot(t, mid.User)
				want := map[string][]string{}
				for _, f := range folders {
					for _, m := range midSnap[f] {
						want[f] = append(want[f], fmt.Sprintf("%s %s %s", m.SHA256, strings.Join(m.Flags, ","), m.Date.UTC().Format(time.RFC3339)))
					}
					sort.Strings(want[f])
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("back on dovecot:\n%v\nwant what mailutils served:\n%v", got, want)
				}
			}
			if len(backSnap) != len(folders) {
				t.Errorf("back on dovecot: folders %v, want %v", keysOf(backSnap), folders)
			}

			code, out, errOut, report = migrateBetween(t, serverURL(mid), dovecotURL(back), mid.Users[mid.User], back.Users["alice"], state)
			if code != 0 {
				t.Fatalf("rerun %s -> dovecot: exit %d\n%s\n%s", kind, code, out, errOut)
			}
			if r := readReport(t, report); r.Totals.Copied != 0 {
				t.Errorf("rerun copied %d, want 0", r.Totals.Copied)
			}
		})
	}
}

func keysOf(s dovecottest.Snapshot) []string {
	var k []string
	for n := range s {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
