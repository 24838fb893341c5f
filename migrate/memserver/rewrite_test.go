package memserver

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func TestRewrites(t *testing.T) {
	cases := []struct {
		name     string
		rw       Rewrite
		in, want string
	}{
		{"cyrus", CyrusMunge8bit, "Subject: Caf\xc3\xa9 =?utf-8?q?Caf=C3=A9?=\r\n\r\nBody \xc3\xa9\r\n", "Subject: CafXX =?utf-8?q?Caf=C3=A9?=\r\n\r\nBody \xc3\xa9\r\n"},
		{"cyrus header only", CyrusMunge8bit, "Subject: \xe2\x82\xac", "Subject: XXX"},
		{"courier", CourierFinalCRLF, "Subject: x\r\n\r\nno newline", "Subject: x\r\n\r\nno newline\r\n"},
		{"courier header only", CourierFinalCRLF, "Subject: x", "Subject: x\r\n"},
		{"courier leaves LF", CourierFinalCRLF, "Subject: x\n\nbody\n", "Subject: x\n\nbody\n"},
		{"refold", Refold, "Subject: one\n  two   three four five six seven eight nine\nX: 1\n\nbody\n",
			"Subject: one two three four five six\r\n\tseven eight nine\r\nX: 1\r\n\r\nbody\n"},
		{"refold header only", Refold, "Subject: a\r\n b", "Subject: a b\r\n"},
	}
	for _, c := range cases {
		if got := string(c.rw([]byte(c.in))); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// A rewriting server stores what the rewrite makes of an APPEND; Add stores
// bytes as they are.
func TestStartRewritingAppend(t *testing.T) {
	s, err := StartRewriting("demo", "s3cret", nil, Chain(CyrusMunge8bit, CourierFinalCRLF))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw := []byte("Subject: \xc3\xa9\r\n\r\nbody")
	if err := s.Add([]Message{{Folder: "Seeded", Body: raw}}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s)
	cmd := c.Append("INBOX", int64(len(raw)), nil)
	cmd.Write(raw)
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	dump, err := s.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count("INBOX"); err != nil || n != 1 {
		t.Fatalf("Count(INBOX) = %d, %v", n, err)
	}
	if got, want := dump["INBOX"][0].SHA256, sum([]byte("Subject: XX\r\n\r\nbody\r\n")); got != want {
		t.Errorf("APPENDed message stored as %s, want the rewritten bytes %s", got, want)
	}
	if got, want := dump["Seeded"][0].SHA256, sum(raw); got != want {
		t.Errorf("Add stored %s, want the bytes as given %s", got, want)
	}
	// NAMESPACE and MOVE still work through the wrapper.
	if _, err := c.Namespace().Wait(); err != nil {
		t.Errorf("NAMESPACE: %v", err)
	}
	if !c.Caps().Has(imap.CapMove) {
		t.Error("MOVE not advertised")
	}
}

// A client that sends an APPEND and hangs up without waiting for the answer
// finds its message stored once WaitConnsClosed returns: the server reads
// what was sent before the hang-up first.
func TestWaitConnsClosedAfterAHangUp(t *testing.T) {
	slow := func(b []byte) []byte { time.Sleep(200 * time.Millisecond); return b }
	s, err := StartRewriting("demo", "s3cret", nil, slow)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	msg := "Subject: x\r\n\r\nbody\r\n"
	fmt.Fprintf(conn, "a LOGIN demo s3cret\r\nb APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg)
	// Read the greeting and LOGIN's answer so the APPEND is surely sent,
	// then hang up before its answer.
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "a ") {
			break
		}
	}
	conn.Close()
	if err := s.WaitConnsClosed(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count("INBOX"); err != nil || n != 1 {
		t.Fatalf("after WaitConnsClosed: Count(INBOX) = %d, %v; want 1", n, err)
	}
	if err := s.WaitConnsClosed(time.Second); err != nil {
		t.Errorf("a second wait with no connection open: %v", err)
	}
}
