package conformance

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// Message is one message to seed or to store.
type Message struct {
	Name  string // for test output
	Body  []byte
	Flags []string // system flags and keywords, IMAP spelling
	Date  time.Time
}

// Folder is a folder with the messages to seed into it, in order.
type Folder struct {
	Path     []string
	Messages []Message
}

// Keeps says what an endpoint keeps of a message besides its bytes.
type Keeps struct {
	SystemFlags bool // \Seen, \Answered, \Flagged, \Draft
	Keywords    bool // $Forwarded, $Label1 (compared case-insensitively)
	Date        bool // the internal date, to the second
}

// BigSize is the size of the large standard message: above the IMAP
// appender's spool threshold (256 KiB), so that it is streamed.
const BigSize = 300 << 10

// zone is not UTC, so that an endpoint that keeps only the instant is
// compared with time.Time.Equal, never by zone.
var zone = time.FixedZone("conformance", 2*3600)

// Messages returns the standard message set: fresh slices on every call.
func Messages() []Message {
	date := func(day int) time.Time { return time.Date(2023, 3, day, 10, 11, 12, 0, zone) }
	crlf := func(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }
	return []Message{
		{
			Name: "crlf",
			Body: crlf("From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: plain\n" +
				"Date: Wed, 01 Mar 2023 10:11:12 +0200\nMessage-ID: <plain@example.org>\n\nHello Bob.\n"),
			Flags: []string{formats.FlagSeen},
			Date:  date(1),
		},
		{
			Name: "no-final-newline",
			Body: crlf("From: Alice <alice@example.org>\nSubject: unterminated\n" +
				"Message-ID: <unterminated@example.org>\n\nno newline at the end"),
			Flags: []string{formats.FlagFlagged, formats.FlagAnswered, "$Forwarded"},
			Date:  date(2),
		},
		{
			Name: "8bit-header",
			Body: crlf("From: Jürgen Größe <jg@example.org>\nSubject: Grüße aus Köln – ½ €\n" +
				"Message-ID: <umlaut@example.org>\nContent-Type: text/plain; charset=utf-8\n" +
				"Content-Transfer-Encoding: 8bit\n\nSchöne Grüße\n"),
			Date: date(3),
		},
		{
			Name: "lf-no-message-id",
			Body: []byte("From: carol@example.org\nSubject: bare LF, no Message-ID\n" +
				"\nFrom me\n>From the start\n.\nend\n"),
			Flags: []string{formats.FlagDraft, "$Label1"},
			Date:  date(4),
		},
		{
			Name:  "big",
			Body:  bigMessage(),
			Flags: []string{formats.FlagSeen},
			Date:  date(5),
		},
	}
}

func bigMessage() []byte {
	var b bytes.Buffer
	b.WriteString("From: Dave <dave@example.org>\r\nSubject: big\r\nMessage-ID: <big@example.org>\r\n\r\n")
	for i := 0; b.Len() < BigSize-80; i++ {
		fmt.Fprintf(&b, "line %06d From the archive, .dot and >From quoting stay as they are\r\n", i)
	}
	for b.Len() < BigSize-2 {
		b.WriteByte('x')
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// SourceFolders is the standard folder set for a source with folders:
// INBOX with the standard messages, an empty folder, and a folder two
// levels deep whose parent holds nothing of its own (it may not exist at
// all except as a tree node).
func SourceFolders() []Folder {
	msgs := Messages()
	return []Folder{
		{Path: []string{"INBOX"}, Messages: msgs},
		{Path: []string{"Empty"}},
		{Path: []string{"Work", "Reports"}, Messages: []Message{msgs[3], msgs[0]}},
	}
}

// CRLF is a Served function for a server that stores bare LF and serves
// every LF as CRLF (Dovecot): each LF not preceded by CR gets one.
func CRLF(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/40)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// CompareIDs is the default order of stable IDs: numerically when both are
// decimal numbers (IMAP UIDs, mbox offsets), else bytewise (Maildir unique
// names, POP3 UIDLs).
func CompareIDs(a, b string) int {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	if errA == nil && errB == nil {
		return cmp.Compare(x, y)
	}
	return strings.Compare(a, b)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// wantFlags is the part of flags an endpoint that keeps k must give back,
// lowercased and sorted.
func wantFlags(flags []string, k Keeps) []string {
	var out []string
	for _, f := range formats.CleanFlags(flags) {
		system := strings.HasPrefix(f, `\`)
		if system && k.SystemFlags || !system && k.Keywords {
			out = append(out, strings.ToLower(f))
		}
	}
	slices.Sort(out)
	return out
}

// gotFlags is the part of flags that k covers, lowercased and sorted: an
// endpoint may report more than it keeps (a foreign file's own headers).
func gotFlags(flags []string, k Keeps) []string { return wantFlags(flags, k) }

func pathKey(p []string) string { return strings.Join(p, "\x00") }

// HeaderCRLF is a Served function for a server that rewrites the header
// block, and the empty line after it, with CRLF line endings but keeps the
// body as it was (go-imap's imapmemserver).
func HeaderCRLF(b []byte) []byte {
	h := formats.HeaderBlock(b)
	rest := b[len(h):]
	out := CRLF(h)
	switch {
	case bytes.HasPrefix(rest, []byte("\r\n")):
		out = append(out, "\r\n"...)
		rest = rest[2:]
	case bytes.HasPrefix(rest, []byte("\n")):
		out = append(out, "\r\n"...)
		rest = rest[1:]
	}
	return append(out, rest...)
}
