package imap

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// fakeFetchServer answers LOGIN, EXAMINE and one UID FETCH with the given
// FETCH responses (written as they are), then OK.
func fakeFetchServer(t *testing.T, responses string) string {
	t.Helper()
	return fakeIMAP(t, "IMAP4rev1 BINARY LITERAL+", func(br *bufio.Reader, tag, rest string) (string, bool) {
		switch {
		case strings.HasPrefix(rest, "LOGIN"):
			// Two non-synchronising literals: skip them.
			for _, n := range []int{len("carol"), len("pw")} {
				io.CopyN(io.Discard, br, int64(n))
				br.ReadString('\n')
			}
			return tag + " OK logged in\r\n", false
		case strings.HasPrefix(rest, "EXAMINE"):
			return "* 3 EXISTS\r\n" + tag + " OK [READ-ONLY] done\r\n", false
		case strings.HasPrefix(rest, "UID FETCH"):
			return responses + tag + " OK done\r\n", false
		}
		return tag + " BAD what\r\n", false
	})
}

// fakeIMAP serves one connection on 127.0.0.1: the greeting with caps, then
// each command line (tag, and the rest after it) answered by answer, until
// it says done or the client goes.
func fakeIMAP(t *testing.T, caps string, answer func(br *bufio.Reader, tag, rest string) (reply string, done bool)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		io.WriteString(c, "* OK [CAPABILITY "+caps+"] fake\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
			reply, done := answer(br, tag, rest)
			io.WriteString(c, reply)
			if done {
				return
			}
		}
	}()
	return ln.Addr().String()
}

// rawFetch reads BODY[] as a literal8 and as a literal, the UID before or
// after it, and skips responses it did not ask for, literals and all.
func TestRawFetchReadsLiteral8(t *testing.T) {
	bodyA := "Subject: a\r\n\r\nNUL\x00here\r\n"
	bodyB := "Subject: b\r\n\r\nplain\r\n"
	responses := "* 1 FETCH (UID 10 BODY[] ~{" + strconv.Itoa(len(bodyA)) + "}\r\n" + bodyA + ")\r\n" +
		"* 2 FETCH (FLAGS (\\Seen) BODY[] {" + strconv.Itoa(len(bodyB)) + "}\r\n" + bodyB + " UID 11)\r\n" +
		"* 3 FETCH (UID 12 BODY[] {3}\r\nxyz)\r\n" + // not asked for
		"* 1 FETCH (FLAGS (\\Seen))\r\n"
	addr := fakeFetchServer(t, responses)
	m := &IMAP{cfg: mailconn.ServerConfig{Addr: addr, User: "carol", Password: "pw", TLS: mailconn.TLSNone}}
	got := map[uint32]string{}
	msgs := []formats.Message{{UID: 10}, {UID: 11}}
	err := m.rawFetch(context.Background(), formats.Folder{Name: "INBOX"}, msgs, func(msg formats.Message, lit imap.LiteralReader) error {
		b, err := io.ReadAll(lit)
		if int64(len(b)) != lit.Size() {
			t.Errorf("UID %d: read %d of %d bytes", msg.UID, len(b), lit.Size())
		}
		got[msg.UID] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got[10] != bodyA || got[11] != bodyB || len(got) != 2 {
		t.Errorf("got %v", got)
	}
}

// unreadableResponse is go-imap's parser failing, not a refusal or a
// lost connection.
func TestUnreadableResponse(t *testing.T) {
	for err, want := range map[error]bool{
		errors.New(`in response-data: imapwire: expected nstring, got "{"`):      true,
		&imap.Error{Type: imap.StatusResponseTypeNo, Text: "imapwire: expected"}: false,
		io.ErrUnexpectedEOF: false,
	} {
		if got := unreadableResponse(err); got != want {
			t.Errorf("unreadableResponse(%v) = %v, want %v", err, got, want)
		}
	}
}
