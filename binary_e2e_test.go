package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/memserver"
)

// nulMessages are messages whose bytes BODY[] and BINARY[] serve differently
// on Dovecot; raw marks those mailferry must now carry with their NUL bytes.
var nulMessages = []struct {
	name string
	body string
	raw  bool // one part, 7bit/8bit/binary or no encoding: BINARY[] is the stored bytes
}{
	{"nul, no encoding", "Message-ID: <nul-1@binary.test>\r\nSubject: NUL, no encoding\r\n\r\nbefore\x00after\r\n\x00\r\n", true},
	{"nul, 7bit", "Message-ID: <nul-2@binary.test>\r\nSubject: NUL, 7bit\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\nbefore\x00after\r\n", true},
	{"nul, 8bit", "Message-ID: <nul-3@binary.test>\r\nSubject: NUL, 8bit\r\nContent-Transfer-Encoding: 8BIT\r\n\r\nb\xc3\xa9\x00\r\n", true},
	// BINARY[] would decode these (and rewrite their header): BODY[].
	{"base64", "Message-ID: <b64@binary.test>\r\nSubject: base64\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n", false},
	{"base64, empty body", "Message-ID: <b64-empty@binary.test>\r\nSubject: base64 empty\r\nContent-Transfer-Encoding: base64\r\n\r\n", false},
	{"quoted-printable", "Message-ID: <qp@binary.test>\r\nSubject: qp\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nplain text=\r\n\r\n", false},
	// Dovecot answers NO [UNKNOWN-CTE] to BINARY[] of this one (it goes by
	// the last field): the other messages of the FETCH still go as BINARY[].
	{"a second, unknown encoding field", "Message-ID: <cte-two@binary.test>\r\nSubject: two CTE\r\nContent-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: x-unknown\r\n\r\nbody\x00\r\n", false},
	{"nul after the refused one", "Message-ID: <nul-4@binary.test>\r\nSubject: NUL after\r\n\r\n\x00\x00\r\n", true},
	{"empty encoding field", "Message-ID: <cte-empty@binary.test>\r\nSubject: empty CTE\r\nContent-Transfer-Encoding:\r\n\r\nbody\r\n", false},
	{"multipart, NUL in a part", "Message-ID: <mp@binary.test>\r\nSubject: multipart\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--x\r\nContent-Type: text/plain\r\n\r\nnul\x00\r\n--x--\r\n", false},
}

// seedMaildir writes msgs straight into user's INBOX Maildir (new/) of a
// dovecottest server, bypassing APPEND, so that the stored bytes are exactly
// the given ones.
func seedMaildir(t *testing.T, s *dovecottest.Server, user string, msgs [][]byte) {
	t.Helper()
	// An APPEND first, so that Dovecot has made the Maildir.
	s.Seed(t, user, []dovecottest.SeedMessage{{Body: []byte("Message-ID: <first@binary.test>\r\nSubject: first\r\n\r\nfirst\r\n"), Date: time.Unix(1600000000, 0)}})
	dir := filepath.Join(s.Dir, "mail", user, "new")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the INBOX Maildir of %s is not where expected: %v", user, err)
	}
	for i, b := range msgs {
		name := filepath.Join(dir, fmt.Sprintf("%d.M%dP%d.binarytest", 1600000000+i, i, os.Getpid()))
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// binaryOf returns BINARY.PEEK[] of every message in user's INBOX, by
// SHA-256 of its BODY[] (nil where the server refused BINARY).
func binaryOf(t *testing.T, s *dovecottest.Server, user string) map[string][]byte {
	t.Helper()
	c := s.Client(t, user)
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, m := range s.Snapshot(t, user)["INBOX"] {
		set := imap.UIDSetNum(imap.UID(m.UID))
		bufs, err := c.Fetch(set, &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{{Peek: true}}}).Collect()
		if err != nil || len(bufs) != 1 {
			out[m.SHA256] = nil
			continue
		}
		out[m.SHA256] = bufs[0].FindBinarySection(&imap.FetchItemBinarySection{})
	}
	return out
}

// A message with NUL bytes in one part without a decoding encoding reaches
// an archive and an IMAP destination with its NUL bytes (BINARY[]), not as
// Dovecot's BODY[] 0x80; every other message still arrives as BODY[] serves
// it, byte for byte (BINARY[] would have decoded it).
func TestNULBytesSurviveIMAPSource(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	var raw [][]byte
	for _, m := range nulMessages {
		raw = append(raw, []byte(m.body))
	}
	seedMaildir(t, p.src, "alice", raw)
	served := map[string]bool{} // SHA-256 of BODY[] as the source serves it
	for _, m := range p.src.Snapshot(t, "alice")["INBOX"] {
		served[m.SHA256] = true
	}
	if len(served) != len(raw)+1 {
		t.Fatalf("the source serves %d distinct messages, want %d", len(served), len(raw)+1)
	}
	nulTo80 := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte{0}, []byte{0x80}) }
	// want: what each message must arrive as.
	want := map[string]string{} // sha -> name
	for _, m := range nulMessages {
		b := []byte(m.body)
		if !m.raw {
			b = nulTo80(b) // as BODY[] serves it
		}
		if !served[sha(nulTo80([]byte(m.body)))] {
			t.Fatalf("%s: Dovecot does not serve it as the bytes seeded (NUL as 0x80)", m.name)
		}
		want[sha(b)] = m.name
	}

	// IMAP -> Maildir archive.
	dir := filepath.Join(t.TempDir(), "archive")
	if code, out, errOut := mailferry(t, "archive", "imap://alice@"+p.src.IMAPAddr(), dir,
		"--src-tls", "none", "--state-dir", p.state, "--progress", "never"); code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out, errOut)
	}
	got := map[string]bool{}
	for _, h := range manifestSHA256(t, dir) {
		got[h] = true
	}
	for h, name := range want {
		if !got[h] {
			t.Errorf("archive: %s did not arrive byte for byte", name)
		}
	}
	if len(got) != len(want)+1 {
		t.Errorf("archive holds %d messages, want %d", len(got), len(want)+1)
	}
	if code, out, errOut := mailferry(t, "verify", dir); code != 0 {
		t.Errorf("verify: exit %d\n%s\n%s", code, out, errOut)
	}

	// IMAP -> IMAP: the destination stores the NUL (BINARY[] gives it back,
	// its BODY[] shows 0x80 as for any stored NUL), and BODY[] of every
	// message equals the source's.
	if code, out, errOut := mailferry(t, p.args()...); code != 0 {
		t.Fatalf("migrate: exit %d\n%s\n%s", code, out, errOut)
	}
	dstServed := map[string]bool{}
	for _, m := range p.dst.Snapshot(t, "alice")["INBOX"] {
		dstServed[m.SHA256] = true
	}
	for h := range served {
		if !dstServed[h] {
			t.Errorf("IMAP -> IMAP: a message's BODY[] changed (%s)", h)
		}
	}
	stored := binaryOf(t, p.dst, "alice")
	for _, m := range nulMessages {
		if !m.raw {
			continue
		}
		b, ok := stored[sha(nulTo80([]byte(m.body)))]
		if !ok {
			t.Errorf("IMAP -> IMAP: %s is missing", m.name)
		} else if !bytes.Equal(b, []byte(m.body)) {
			t.Errorf("IMAP -> IMAP: %s stored as %q, want %q", m.name, b, m.body)
		}
	}
}

// A BINARY[] literal whose size is not the message's RFC822.SIZE was
// decoded or mangled by the server: mailferry takes BODY[] instead. go-imap's
// in-memory server answers BINARY[] of a text part in a charset it does not
// know (iso-8859-1) with an empty literal.
func TestBinaryOfAnotherSizeFallsBackToBODY(t *testing.T) {
	t.Parallel()
	srv, err := memserver.Start("carol", "binary-pw")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	bodies := [][]byte{
		[]byte("Message-ID: <latin1@binary.test>\r\nSubject: latin-1\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nCaf\xe9\r\n"),
		[]byte("Message-ID: <plain@binary.test>\r\nSubject: plain\r\n\r\nplain\r\n"),
	}
	var add []memserver.Message
	for _, b := range bodies {
		add = append(add, memserver.Message{Body: b})
	}
	if err := srv.Add(add); err != nil {
		t.Fatal(err)
	}
	dump, err := srv.Dump()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, e := range dump["INBOX"] {
		want[e.SHA256] = true
	}
	dir := filepath.Join(t.TempDir(), "archive")
	setenv(t, "MAILFERRY_SRC_PASSWORD", "binary-pw")
	if code, out, errOut := mailferry(t, "archive", "imap://carol@"+srv.Addr, dir,
		"--src-tls", "none", "--state-dir", t.TempDir(), "--progress", "never"); code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out, errOut)
	}
	got := manifestSHA256(t, dir)
	if len(got) != len(bodies) {
		t.Fatalf("archived %d of %d messages", len(got), len(bodies))
	}
	for _, h := range got {
		if !want[h] {
			t.Errorf("archived a message that is not what BODY[] serves (%s)", h)
		}
	}
}
