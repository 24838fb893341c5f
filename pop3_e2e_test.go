package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/archive"
	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// dotAndLongLines are messages POP3 clients get wrong: lines starting with
// "." (dot-stuffed on the wire) and lines longer than 4096 bytes.
func dotAndLongLines() []dovecottest.SeedMessage {
	var out []dovecottest.SeedMessage
	for i, body := range []string{
		"Subject: dots\r\nMessage-ID: <dots@t>\r\n\r\n.\r\n..\r\n.leading dot\r\n...three\r\n. \r\nend\r\n",
		"Subject: long\r\nMessage-ID: <long@t>\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n" + strings.Repeat(".y", 70000) + "\r\n",
		"Subject: long header\r\nMessage-ID: <lh@t>\r\nX-Long: " + strings.Repeat("z", 9000) + "\r\n\r\nbody\r\n",
	} {
		out = append(out, dovecottest.SeedMessage{Folder: "INBOX", Body: []byte(body), Flags: []string{}, Date: testDate(i)})
	}
	return out
}

// archivedBodies reads every message an archive's manifest lists.
func archivedBodies(t *testing.T, dir string) [][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, archive.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e struct {
			File   string `json:"file"`
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, e.File))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != e.SHA256 {
			t.Errorf("%s: bytes on disk do not match the manifest", e.File)
		}
		out = append(out, b)
	}
	return out
}

// imapBodies fetches every INBOX message as IMAP serves it.
func imapBodies(t *testing.T, s *dovecottest.Server) [][]byte {
	t.Helper()
	ctx := context.Background()
	im, err := imap.DialIMAP(ctx, mailconn.ServerConfig{Addr: s.IMAPAddr(), User: "alice", Password: s.Users["alice"], TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	inbox := formats.Folder{Name: "INBOX", Path: []string{"INBOX"}}
	_, msgs, err := im.List(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	err = im.Fetch(ctx, inbox, msgs, func(m formats.Message, r io.Reader) error {
		b, err := io.ReadAll(r)
		out = append(out, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sumsOf(bodies [][]byte, fix func([]byte) []byte) []string {
	var out []string
	for _, b := range bodies {
		sum := sha256.Sum256(fix(b))
		out = append(out, hex.EncodeToString(sum[:]))
	}
	sort.Strings(out)
	return out
}

func TestPOP3ArchiveMatchesIMAPBytes(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := append(dotAndLongLines(), testMessages(t, 0)...)
	for i := range msgs {
		msgs[i].Folder = "INBOX"
	}
	p.src.Seed(t, "alice", msgs)
	served := imapBodies(t, p.src)
	dir := filepath.Join(t.TempDir(), "pop3-archive")
	args := []string{"archive", fmt.Sprintf("pop3://alice@%s", p.src.POP3Addr()), dir,
		"--src-tls", "none", "--state-dir", p.state, "--progress", "never"}
	code, out, errOut := mailferry(t, args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	// Byte for byte what IMAP serves, but for two things POP3 itself
	// decides: Dovecot's IMAP BODY[] shows a NUL byte as 0x80 where POP3
	// sends the NUL (the archive keeps the NUL), and POP3 must end a
	// message with CRLF before its terminating ".", so a message without a
	// final line end gains one. Each exception is counted and logged.
	nulTo80 := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte{0}, []byte{0x80}) }
	withEOL := func(b []byte) []byte {
		if len(b) > 0 && b[len(b)-1] != '\n' {
			return append(append([]byte(nil), b...), '\r', '\n')
		}
		return b
	}
	archived := archivedBodies(t, dir)
	want, got := sumsOf(served, withEOL), sumsOf(archived, nulTo80)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("POP3 archive differs from what IMAP serves: %d vs %d messages; first difference: %s",
			len(got), len(want), firstDiff(want, got))
	}
	nul, eol := 0, 0
	for _, b := range archived {
		if bytes.IndexByte(b, 0) >= 0 {
			nul++
		}
	}
	for _, b := range served {
		if len(b) > 0 && b[len(b)-1] != '\n' {
			eol++
		}
	}
	t.Logf("%d messages; %d hold NUL bytes (kept), %d had no final line end (POP3 added CRLF)", len(archived), nul, eol)
	// A rerun adds nothing.
	report := filepath.Join(t.TempDir(), "r.json")
	if code, out, errOut := mailferry(t, append(args, "--report", report)...); code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := readReport(t, report); r.Totals.Copied != 0 {
		t.Errorf("rerun copied %d, want 0", r.Totals.Copied)
	}
	// --delete-source empties the box, and the archive stays complete.
	if code, out, errOut := mailferry(t, append(args, "--delete-source")...); code != 0 {
		t.Fatalf("--delete-source: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := len(p.src.Snapshot(t, "alice")["INBOX"]); n != 0 {
		t.Errorf("after --delete-source the POP3 box holds %d messages, want 0", n)
	}
	if got := archivedBodies(t, dir); len(got) != len(want) {
		t.Errorf("archive holds %d messages after --delete-source, want %d", len(got), len(want))
	}
	if code, out, errOut := mailferry(t, "verify", dir); code != 0 {
		t.Errorf("verify: exit %d\n%s\n%s", code, out, errOut)
	}
}

func testDate(i int) time.Time { return time.Date(2022, 5, 1+i, 8, 0, 0, 0, time.UTC) }

// manifestSHA256 lists the sha256 column of an archive's manifest.
func manifestSHA256(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, archive.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var e struct {
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e.SHA256)
	}
	return out
}
