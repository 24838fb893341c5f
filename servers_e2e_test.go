package main

import (
	"bytes"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
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
// state headers first (holds, in matrix_test.go, does that).
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

func keysOf(s dovecottest.Snapshot) []string {
	var k []string
	for n := range s {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
