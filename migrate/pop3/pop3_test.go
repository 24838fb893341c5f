package pop3

// Tests of the POP3 source. Most run against a real Dovecot (dovecottest);
// the dot-reader tests and the fuzz target need no server. This file is in
// package migrate (not migrate_test) to reach the session's raw connection:
// closing it is how a test drops a connection without QUIT.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/formats/corpus"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

var pop3Inbox = formats.Folder{Path: []string{"INBOX"}, Name: "INBOX", Validity: 1}

func pop3Config(srv *dovecottest.Server, user string) mailconn.ServerConfig {
	return mailconn.ServerConfig{Addr: srv.POP3Addr(), User: user, Password: srv.Users[user], TLS: mailconn.TLSNone, Timeout: 10 * time.Second}
}

func dialPOP3(t *testing.T, cfg mailconn.ServerConfig) *POP3 {
	t.Helper()
	p, err := DialPOP3(context.Background(), cfg)
	if err != nil {
		t.Fatalf("DialPOP3: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func listPOP3(t *testing.T, p *POP3) []formats.Message {
	t.Helper()
	v, msgs, err := p.List(context.Background(), pop3Inbox)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if v != 1 {
		t.Fatalf("validity %d, want 1", v)
	}
	return msgs
}

// fetchPOP3 reads every message of msgs whole (test messages only).
func fetchPOP3(t *testing.T, p *POP3, msgs []formats.Message) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := p.Fetch(context.Background(), pop3Inbox, msgs, func(m formats.Message, body io.Reader) error {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		if _, dup := out[m.ID]; dup {
			return fmt.Errorf("message %s passed twice", m.ID)
		}
		out[m.ID] = b
		return nil
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return out
}

func hexSHA(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// crlf turns a list of lines into a CRLF message body.
func crlf(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n") + "\r\n") }

// trickyMessages are what a POP3 client gets wrong: lines that start with
// dots (including a body line that is a lone "."), long lines across every
// buffer size, a large message with dotted lines at random places, bare LF,
// a lone CR, a message without a body.
var trickyMessages = sync.OnceValue(makeTrickyMessages)

func makeTrickyMessages() [][]byte {
	long := func(n int, first byte) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i%36]
		}
		b[0] = first
		return string(b)
	}
	rng := rand.New(rand.NewSource(1))
	var big bytes.Buffer
	big.WriteString("Message-ID: <big@mailferry.test>\r\nSubject: five megabytes\r\n\r\n")
	for big.Len() < 5<<20 {
		n := rng.Intn(200)
		line := long(n+1, '.')[:n]
		switch rng.Intn(8) {
		case 0:
			line = "." + line
		case 1:
			line = ".." + line
		case 2:
			line = "."
		}
		big.WriteString(line + "\r\n")
	}
	return [][]byte{
		crlf("Message-ID: <dots@mailferry.test>", "Subject: dots", "", ".", "..", "...", ".x", "..x", ". ", ".\t", "last"),
		crlf("Message-ID: <long5000@mailferry.test>", "Subject: a 5000-byte line", "", long(5000, 'x'), long(5000, '.'), "end"),
		crlf("Message-ID: <long100k@mailferry.test>", "Subject: a 100 KB line", "", long(100<<10, '.'), ".", long(4097, 'y')),
		crlf("Message-ID: <long1500k@mailferry.test>", "Subject: a 1.5 MB line", "", long(1500<<10, 'z'), ".", "."),
		big.Bytes(),
		crlf("Message-ID: <plain@mailferry.test>", "Subject: plain CRLF", "", "Hello.", "", "-- ", "me"),
		[]byte("Message-ID: <lf@mailferry.test>\nSubject: bare LF\n\n.dot\n..two\nend\n"),
		[]byte("Message-ID: <cr@mailferry.test>\r\nSubject: a lone CR\r\n\r\nbefore\rafter\r\n"),
		crlf("Message-ID: <nobody@mailferry.test>", "Subject: header only", ""),
	}
}

func seedInbox(t *testing.T, srv *dovecottest.Server, user string, bodies [][]byte) {
	t.Helper()
	seed := make([]dovecottest.SeedMessage, len(bodies))
	for i, b := range bodies {
		seed[i] = dovecottest.SeedMessage{Body: b, Date: time.Unix(1700000000+int64(i), 0)}
	}
	srv.Seed(t, user, seed)
}

// Every message comes out of RETR as IMAP's BODY[] serves it, byte for byte,
// and a 5 MB message is streamed, not buffered.
func TestPOP3FetchMatchesIMAP(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	bodies := trickyMessages()
	seedInbox(t, srv, "alice", bodies)
	snap := srv.Snapshot(t, "alice")["INBOX"]
	if len(snap) != len(bodies) {
		t.Fatalf("snapshot has %d messages, seeded %d", len(snap), len(bodies))
	}

	p := dialPOP3(t, pop3Config(srv, "alice"))
	folders, err := p.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(folders) != 1 || folders[0].Name != "INBOX" || formats.DisplayName(folders[0].Path) != "INBOX" ||
		folders[0].Validity != 1 || int(folders[0].Messages) != len(bodies) {
		t.Fatalf("Folders = %+v", folders)
	}
	msgs := listPOP3(t, p)
	if len(msgs) != len(bodies) {
		t.Fatalf("List: %d messages, want %d", len(msgs), len(bodies))
	}
	ids := map[string]bool{}
	for i, m := range msgs {
		if m.ID == "" || ids[m.ID] || m.UID != 0 || m.Size != -1 || m.Flags != nil || !m.Date.IsZero() {
			t.Fatalf("message %d listed as %+v", i+1, m)
		}
		ids[m.ID] = true
		// Dovecot's default pop3_uidl_format %08Xu%08Xv: UID, then UIDVALIDITY.
		if want := fmt.Sprintf("%08X", snap[i].UID); !strings.HasPrefix(m.ID, want) {
			t.Errorf("message %d: UIDL %q, Dovecot's default format would start with %s", i+1, m.ID, want)
		}
	}

	got := fetchPOP3(t, p, msgs)
	for i, m := range msgs {
		b := got[m.ID]
		if hexSHA(b) != snap[i].SHA256 || int64(len(b)) != snap[i].Size {
			t.Errorf("message %d (%.40q): POP3 gave %d bytes %s, IMAP BODY[] %d bytes %s",
				i+1, bodies[i], len(b), hexSHA(b)[:12], snap[i].Size, snap[i].SHA256[:12])
		}
		// CRLF messages come back exactly as appended; bare LF comes back as CRLF.
		want := bodies[i]
		if !bytes.Contains(want, []byte("\r\n")) {
			want = bytes.ReplaceAll(want, []byte("\n"), []byte("\r\n"))
		}
		if !bytes.Equal(b, want) {
			t.Errorf("message %d (%.40q): POP3 bytes differ from the appended ones", i+1, bodies[i])
		}
	}

	// The 5 MB message through a hash: allocations stay far below its size.
	var bigMsg formats.Message
	for i, b := range bodies {
		if len(b) >= 5<<20 {
			bigMsg = msgs[i]
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var n int64
	err = p.Fetch(context.Background(), pop3Inbox, []formats.Message{bigMsg}, func(m formats.Message, body io.Reader) error {
		h := sha256.New()
		var err error
		n, err = io.Copy(h, body)
		return err
	})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("streaming a %d-byte message allocated %d bytes", n, alloc)
	if n < 5<<20 || alloc > 1<<20 {
		t.Errorf("streaming a %d-byte message allocated %d bytes: the body is being buffered", n, alloc)
	}
}

// Headers gives what TOP n 0 serves: the header block and its empty line,
// the same bytes RETR starts with; TOP does not set \Seen, RETR does
// (Dovecot applies it when the session ends).
func TestPOP3HeadersAndSeen(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	bodies := trickyMessages()
	seedInbox(t, srv, "alice", bodies)
	p := dialPOP3(t, pop3Config(srv, "alice"))
	msgs := listPOP3(t, p)
	headers := map[string][]byte{}
	err := p.Headers(context.Background(), pop3Inbox, msgs, func(m formats.Message, h []byte) error {
		headers[m.ID] = append([]byte(nil), h...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, st := range srv.Snapshot(t, "alice")["INBOX"] {
		if len(st.Flags) != 0 {
			t.Errorf("after TOP, UID %d has flags %v", st.UID, st.Flags)
		}
	}
	p = dialPOP3(t, pop3Config(srv, "alice"))
	full := fetchPOP3(t, p, listPOP3(t, p))
	for i, m := range msgs {
		h, b := headers[m.ID], full[m.ID]
		if len(h) == 0 || !bytes.HasPrefix(b, h) {
			t.Errorf("message %d: header %.60q is not the start of the message", i+1, h)
			continue
		}
		if !bytes.HasSuffix(h, []byte("\r\n\r\n")) {
			t.Errorf("message %d: header %.60q does not end with its empty line", i+1, h)
		}
		if !bytes.Equal(formats.HeaderBlock(h), formats.HeaderBlock(b)) || formats.IdentityKey(h) != formats.IdentityKey(b) {
			t.Errorf("message %d: header block or identity key differs between TOP and RETR", i+1)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Close does not wait for QUIT's answer (nothing was deleted): give
	// Dovecot up to 5 s to end the session.
	seen := func() (notSeen []string) {
		for _, st := range srv.Snapshot(t, "alice")["INBOX"] {
			if len(st.Flags) != 1 || st.Flags[0] != formats.FlagSeen {
				notSeen = append(notSeen, fmt.Sprintf("UID %d has flags %v", st.UID, st.Flags))
			}
		}
		return notSeen
	}
	notSeen := seen()
	for deadline := time.Now().Add(5 * time.Second); len(notSeen) > 0 && time.Now().Before(deadline); notSeen = seen() {
		time.Sleep(20 * time.Millisecond)
	}
	for _, e := range notSeen {
		t.Errorf("after RETR and QUIT, %s, want [\\Seen]", e)
	}
}

func TestPOP3WrongPassword(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	cfg := pop3Config(srv, "alice")
	cfg.Password = "not-alices-Pa55word"
	start := time.Now()
	p, err := DialPOP3(context.Background(), cfg)
	if err == nil {
		p.Close()
		t.Fatal("login with a wrong password succeeded")
	}
	t.Logf("%v (after %v)", err, time.Since(start).Round(time.Millisecond))
	if !errors.Is(err, migrate.ErrAuth) || migrate.IsRetryable(err) {
		t.Errorf("error %v: want migrate.ErrAuth, not retryable", err)
	}
	if msg := err.Error(); strings.Contains(msg, cfg.Password) || strings.Contains(msg, "\n") || !strings.Contains(msg, "alice@") {
		t.Errorf("error %q: want one line naming the user and never the password", msg)
	}
	cfg.User = "nobody"
	if _, err := DialPOP3(context.Background(), cfg); !errors.Is(err, migrate.ErrAuth) {
		t.Errorf("unknown user: %v, want ErrAuth", err)
	}
	cfg.User = "alice\r\nQUIT"
	if _, err := DialPOP3(context.Background(), cfg); !errors.Is(err, migrate.ErrUsage) {
		t.Errorf("user name with CRLF: %v, want ErrUsage", err)
	}
}

// This Dovecot has ssl = no, so CAPA has no STLS: mailconn.TLSStartTLS must refuse,
// and mailconn.TLSImplicit must fail the handshake, both with migrate.ErrTLS and before
// anything is sent in the clear after the greeting.
func TestPOP3TLSRefused(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	for _, mode := range []mailconn.TLSMode{mailconn.TLSStartTLS, mailconn.TLSImplicit} {
		cfg := pop3Config(srv, "alice")
		cfg.TLS = mode
		p, err := DialPOP3(context.Background(), cfg)
		if err == nil {
			p.Close()
			t.Fatalf("%s: connected to a plaintext-only server", mode)
		}
		t.Logf("%s: %v", mode, err)
		if !errors.Is(err, migrate.ErrTLS) || migrate.IsRetryable(err) || strings.Contains(err.Error(), cfg.Password) {
			t.Errorf("%s: %v: want migrate.ErrTLS, not retryable, no password", mode, err)
		}
	}
}

// Delete marks, QUIT (Close) removes; a DELE refused makes Delete send RSET.
func TestPOP3DeleteAndQuit(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	var bodies [][]byte
	for i := 0; i < 5; i++ {
		bodies = append(bodies, crlf(fmt.Sprintf("Message-ID: <del%d@mailferry.test>", i), "Subject: delete me", "", "body"))
	}
	seedInbox(t, srv, "bob", bodies)
	ctx := context.Background()

	// A refused DELE (a number the server does not have) after good ones:
	// RSET, error, and QUIT deletes nothing.
	p := dialPOP3(t, pop3Config(srv, "bob"))
	msgs := listPOP3(t, p)
	p.nums["no-such-uidl"] = 999
	err := p.Delete(ctx, pop3Inbox, append(msgs[:2:2], formats.Message{ID: "no-such-uidl"}))
	if err == nil || !strings.Contains(err.Error(), "DELE 999") || !strings.Contains(err.Error(), "RSET") {
		t.Fatalf("Delete with a refused DELE: %v", err)
	}
	t.Logf("refused DELE: %v", err)
	if err := p.Close(); err != nil {
		t.Fatalf("Close after RSET: %v", err)
	}
	if n := len(srv.Snapshot(t, "bob")["INBOX"]); n != 5 {
		t.Fatalf("after a refused DELE and RSET, %d messages remain, want 5", n)
	}

	// Delete two, Close: three remain, the right ones.
	p = dialPOP3(t, pop3Config(srv, "bob"))
	msgs = listPOP3(t, p)
	if err := p.Delete(ctx, pop3Inbox, []formats.Message{msgs[0], msgs[3], msgs[0]}); err != nil {
		t.Fatal(err)
	}
	// Deleted messages are no longer listed or fetched in this session.
	if rest := listPOP3(t, p); len(rest) != 3 {
		t.Errorf("List after Delete: %d messages, want 3", len(rest))
	}
	if got := fetchPOP3(t, p, msgs); len(got) != 3 {
		t.Errorf("Fetch after Delete passed %d messages, want 3", len(got))
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	snap := srv.Snapshot(t, "bob")["INBOX"]
	if len(snap) != 3 || snap[0].SHA256 != hexSHA(bodies[1]) || snap[1].SHA256 != hexSHA(bodies[2]) || snap[2].SHA256 != hexSHA(bodies[4]) {
		t.Fatalf("after deleting messages 1 and 4: %+v", snap)
	}

	// Delete the rest (on a fresh connection, without List: Delete runs UIDL).
	p = dialPOP3(t, pop3Config(srv, "bob"))
	if err := p.Delete(ctx, pop3Inbox, msgs); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if snap := srv.Snapshot(t, "bob")["INBOX"]; len(snap) != 0 {
		t.Fatalf("after Delete and Close: %d messages remain", len(snap))
	}
}

// A connection that drops after DELE deletes nothing.
func TestPOP3DroppedAfterDeleteDeletesNothing(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	var bodies [][]byte
	for i := 0; i < 3; i++ {
		bodies = append(bodies, crlf(fmt.Sprintf("Message-ID: <keep%d@mailferry.test>", i), "Subject: keep me", "", "body"))
	}
	seedInbox(t, srv, "bob", bodies)
	p := dialPOP3(t, pop3Config(srv, "bob"))
	msgs := listPOP3(t, p)
	if err := p.Delete(context.Background(), pop3Inbox, msgs); err != nil {
		t.Fatal(err)
	}
	p.raw.Close() // the connection drops: no QUIT ever reaches the server
	err := p.Close()
	if !migrate.IsRetryable(err) || !strings.Contains(err.Error(), "may or may not") {
		t.Errorf("Close after the drop: %v, want a retryable error saying the deletions are unconfirmed", err)
	}
	// Give Dovecot's pop3 process time to see the disconnect and end.
	time.Sleep(500 * time.Millisecond)
	if n := len(srv.Snapshot(t, "bob")["INBOX"]); n != 3 {
		t.Fatalf("after DELE and a dropped connection, %d messages remain, want 3", n)
	}
	p = dialPOP3(t, pop3Config(srv, "bob"))
	if n := len(listPOP3(t, p)); n != 3 {
		t.Fatalf("a new session lists %d messages, want 3", n)
	}
}

// proxy forwards TCP connections to target. With delay, every chunk is held
// back that long in each direction (a round trip costs 2*delay). Once the
// client has sent "RETR ", cutAfter closes the connection after that many
// more server bytes, and cutTerminator forwards the RETR answer without its
// final ".\r\n" and then closes.
type proxy struct {
	ln            net.Listener
	target        string
	delay         time.Duration
	cutAfter      int64
	cutTerminator bool
	armed         atomic.Bool
	wg            sync.WaitGroup
}

func startProxy(t *testing.T, target string, configure func(*proxy)) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	if configure != nil {
		configure(p)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.wg.Add(2)
			go p.pipe(s, c, true)
			go p.pipe(c, s, false)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) pipe(dst, src net.Conn, toServer bool) {
	defer p.wg.Done()
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range ch {
			time.Sleep(time.Until(c.at))
			dst.Write(c.b)
		}
	}()
	defer func() {
		close(ch)
		<-done
		dst.Close()
		src.Close()
	}()
	buf := make([]byte, 32<<10)
	var sinceArmed int64
	var held []byte
	for {
		n, err := src.Read(buf)
		b := append([]byte(nil), buf[:n]...)
		if toServer && bytes.Contains(b, []byte("RETR ")) {
			p.armed.Store(true)
		}
		if !toServer && p.armed.Load() && n > 0 {
			switch {
			case p.cutAfter > 0:
				if sinceArmed+int64(n) >= p.cutAfter {
					ch <- chunk{b[:p.cutAfter-sinceArmed], time.Now().Add(p.delay)}
					return
				}
				sinceArmed += int64(n)
			case p.cutTerminator:
				held = append(held, b...)
				if i := bytes.Index(held, []byte("\r\n.\r\n")); i >= 0 {
					ch <- chunk{held[:i+2], time.Now().Add(p.delay)}
					return
				}
				continue
			}
		}
		if n > 0 {
			ch <- chunk{b, time.Now().Add(p.delay)}
		}
		if err != nil {
			return
		}
	}
}

// A connection cut during RETR is an error, never a short message: whatever
// fn does with the read error, Fetch returns a migrate.RetryableError, and the
// session is dead afterwards (no QUIT).
func TestPOP3CutMidRETR(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	bodies := trickyMessages()
	seedInbox(t, srv, "alice", bodies)
	small := 0 // the dots message
	big := 4   // 5 MB
	for _, tc := range []struct {
		name      string
		msg       int
		configure func(*proxy)
		fnErr     bool // fn returns the read error (else it swallows it)
	}{
		{"after 1 MB, fn swallows the error", big, func(p *proxy) { p.cutAfter = 1 << 20 }, false},
		{"after 1 MB, fn returns the error", big, func(p *proxy) { p.cutAfter = 1 << 20 }, true},
		{"in the status line", small, func(p *proxy) { p.cutAfter = 3 }, false},
		{"before the terminator", small, func(p *proxy) { p.cutTerminator = true }, false},
		{"before the terminator of a large message", big, func(p *proxy) { p.cutTerminator = true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			px := startProxy(t, srv.POP3Addr(), tc.configure)
			cfg := pop3Config(srv, "alice")
			cfg.Addr = px.Addr()
			p := dialPOP3(t, cfg)
			msgs := listPOP3(t, p)
			var got []byte
			var readErr error
			called := 0
			err := p.Fetch(context.Background(), pop3Inbox, msgs[tc.msg:tc.msg+1], func(m formats.Message, body io.Reader) error {
				called++
				got, readErr = io.ReadAll(body)
				if tc.fnErr {
					return readErr
				}
				return nil
			})
			t.Logf("Fetch: %v (fn called %d times, read %d bytes, read error %v)", err, called, len(got), readErr)
			if !migrate.IsRetryable(err) {
				t.Fatalf("Fetch after a cut: %v, want a RetryableError", err)
			}
			if called == 1 && readErr == nil {
				t.Errorf("the body reader returned EOF after %d of %d bytes", len(got), len(bodies[tc.msg]))
			}
			if _, err := p.Folders(context.Background()); err == nil {
				t.Error("the session is still used after a cut")
			}
			if err := p.Close(); err != nil {
				t.Errorf("Close of a failed session: %v", err)
			}
		})
	}
}

// fn may stop early (the rest is drained) or fail (Fetch stops with its
// error, drains what was asked ahead, and the session stays usable);
// pipelining keeps the order of replies straight.
func TestPOP3FetchPartialReadsAndErrors(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	var bodies [][]byte
	for i := 0; i < 100; i++ {
		bodies = append(bodies, crlf(fmt.Sprintf("Message-ID: <m%d@mailferry.test>", i), "Subject: message "+fmt.Sprint(i), "",
			strings.Repeat(fmt.Sprintf(".line %d\r\n", i), i*50)))
	}
	seedInbox(t, srv, "alice", bodies)
	p := dialPOP3(t, pop3Config(srv, "alice"))
	if !p.pipelining {
		t.Fatal("Dovecot announces PIPELINING; the session did not notice")
	}
	msgs := listPOP3(t, p)
	byID := map[string]int{}
	for i, m := range msgs {
		byID[m.ID] = i
	}
	ctx := context.Background()

	// Read nothing of even messages, 10 bytes of odd ones, in reverse order.
	rev := make([]formats.Message, len(msgs))
	for i, m := range msgs {
		rev[len(msgs)-1-i] = m
	}
	var order []int
	err := p.Fetch(ctx, pop3Inbox, rev, func(m formats.Message, body io.Reader) error {
		i := byID[m.ID]
		order = append(order, i)
		if i%2 == 1 {
			b := make([]byte, 10)
			if _, err := io.ReadFull(body, b); err != nil {
				return err
			}
			if !bytes.Equal(b, bodies[i][:10]) {
				return fmt.Errorf("message %d starts %q", i, b)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, i := range order {
		if i != len(msgs)-1-k {
			t.Fatalf("fn saw messages in order %v", order)
		}
	}

	// fn fails at the 5th message.
	stop := errors.New("sink is full")
	calls := 0
	err = p.Fetch(ctx, pop3Inbox, msgs, func(m formats.Message, body io.Reader) error {
		calls++
		if calls == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 5 {
		t.Fatalf("Fetch with fn failing at the 5th message: %v after %d calls", err, calls)
	}
	// The session is still in step.
	got := fetchPOP3(t, p, msgs)
	for i, m := range msgs {
		if !bytes.Equal(got[m.ID], bodies[i]) {
			t.Fatalf("message %d differs after an fn error", i)
		}
	}
	// Headers in the same session, after the bodies.
	n := 0
	if err := p.Headers(ctx, pop3Inbox, msgs, func(m formats.Message, h []byte) error {
		if !bytes.HasPrefix(bodies[byID[m.ID]], h) {
			return fmt.Errorf("header of %s", m.ID)
		}
		n++
		return nil
	}); err != nil || n != len(msgs) {
		t.Fatalf("Headers: %v, %d of %d", err, n, len(msgs))
	}
	// Unknown IDs are not passed to fn (the engine counts them as vanished).
	calls = 0
	if err := p.Fetch(ctx, pop3Inbox, []formats.Message{{ID: "gone"}, msgs[3]}, func(formats.Message, io.Reader) error {
		calls++
		return nil
	}); err != nil || calls != 1 {
		t.Fatalf("Fetch with an unknown ID: %v, %d calls", err, calls)
	}
	if _, _, err := p.List(ctx, formats.Folder{Name: "Sent", Path: []string{"Sent"}}); err == nil {
		t.Error("List of a folder other than INBOX succeeded")
	}

	// A cancelled context stops Fetch, and the session is not reused.
	cctx, cancel := context.WithCancel(ctx)
	err = p.Fetch(cctx, pop3Inbox, msgs, func(m formats.Message, body io.Reader) error {
		cancel()
		_, err := io.Copy(io.Discard, body)
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch with a cancelled context: %v", err)
	}
	if _, err := p.Folders(ctx); !migrate.IsRetryable(err) {
		t.Fatalf("a session cancelled mid-command was reused: %v", err)
	}
}

// Throughput over loopback, and through a proxy adding 5 ms each way:
// pipelining must keep a high-latency server from costing a round trip per
// message.
func TestPOP3Throughput(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	const n = 2000
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = crlf(fmt.Sprintf("Message-ID: <t%d@mailferry.test>", i), "From: a@example.org", "Subject: small",
			"", strings.Repeat("Some text of a small message.\r\n", 30))
	}
	var size int64
	for _, b := range bodies {
		size += int64(len(b))
	}
	start := time.Now()
	seedInbox(t, srv, "alice", bodies)
	t.Logf("seeded %d messages over IMAP in %v", n, time.Since(start).Round(time.Millisecond))

	run := func(name, addr string) time.Duration {
		cfg := pop3Config(srv, "alice")
		cfg.Addr = addr
		start := time.Now()
		p := dialPOP3(t, cfg)
		msgs := listPOP3(t, p)
		var bytesRead int64
		count := 0
		if err := p.Fetch(context.Background(), pop3Inbox, msgs, func(m formats.Message, body io.Reader) error {
			k, err := io.Copy(io.Discard, body)
			bytesRead += k
			count++
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		if count != n || bytesRead != size {
			t.Fatalf("%s: %d messages, %d bytes", name, count, bytesRead)
		}
		t.Logf("%s: dial+List+Fetch of %d messages (%d bytes) in %v: %.0f messages/s",
			name, n, bytesRead, d.Round(time.Millisecond), float64(n)/d.Seconds())
		return d
	}
	run("loopback", srv.POP3Addr())
	px := startProxy(t, srv.POP3Addr(), func(p *proxy) { p.delay = 5 * time.Millisecond })
	// One round trip per message would take n*10 ms = 20 s.
	if d := run("loopback + 10 ms round trip", px.Addr()); d > 10*time.Second {
		t.Errorf("through a 10 ms round trip, %d messages took %v: pipelining is not working", n, d)
	}
}

// The whole corpus through POP3 against IMAP's BODY[]. Dovecot serves two
// kinds of message differently over the two protocols, and only those may
// differ, only in these exact ways:
//   - a NUL byte: BODY[] serves it as 0x80, RETR as NUL (as stored);
//   - no line break at the very end: BODY[] serves the message as stored,
//     RETR adds CRLF (a POP3 response cannot end mid-line).
func TestPOP3CorpusMatchesIMAP(t *testing.T) {
	names, bodies := corpus.Files(t, "dev") // skips, saying why, without the corpus
	srv := dovecottest.Start(t, dovecottest.Options{})
	seedInbox(t, srv, "alice", bodies)
	snap := srv.Snapshot(t, "alice")["INBOX"]
	if len(snap) != len(bodies) {
		t.Fatalf("snapshot: %d messages, seeded %d", len(snap), len(bodies))
	}
	p := dialPOP3(t, pop3Config(srv, "alice"))
	msgs := listPOP3(t, p)
	if len(msgs) != len(bodies) {
		t.Fatalf("List: %d messages, seeded %d", len(msgs), len(bodies))
	}
	pos := map[string]int{}
	for i, m := range msgs {
		pos[m.ID] = i
	}
	var nul, noEOL, same int
	var total int64
	start := time.Now()
	err := p.Fetch(context.Background(), pop3Inbox, msgs, func(m formats.Message, body io.Reader) error {
		i := pos[m.ID]
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		total += int64(len(b))
		want := snap[i]
		if hexSHA(b) == want.SHA256 {
			same++
			return nil
		}
		switch {
		case bytes.IndexByte(b, 0) >= 0 && hexSHA(bytes.ReplaceAll(b, []byte{0}, []byte{0x80})) == want.SHA256:
			nul++
			t.Logf("%s: %d NUL bytes: RETR sends NUL, BODY[] 0x80", names[i], bytes.Count(b, []byte{0}))
		case bytes.HasSuffix(b, []byte("\r\n")) && hexSHA(b[:len(b)-2]) == want.SHA256 &&
			!bytes.HasSuffix(bodies[i], []byte("\n")):
			noEOL++
			t.Logf("%s: no final line break: RETR adds CRLF", names[i])
		default:
			t.Errorf("%s: POP3 gave %d bytes %s, IMAP BODY[] %d bytes %s", names[i], len(b), hexSHA(b)[:12], want.Size, want.SHA256[:12])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("%d messages, %d bytes in %v: %d identical, %d differ by NUL, %d by the added final CRLF",
		len(msgs), total, d.Round(time.Millisecond), same, nul, noEOL)
	wantNUL, wantNoEOL := 0, 0
	for _, b := range bodies {
		if bytes.IndexByte(b, 0) >= 0 {
			wantNUL++
		} else if !bytes.HasSuffix(b, []byte("\n")) {
			wantNoEOL++
		}
	}
	if nul != wantNUL || noEOL != wantNoEOL || same+nul+noEOL != len(bodies) {
		t.Errorf("NUL: %d (corpus has %d), no final EOL: %d (corpus has %d)", nul, wantNUL, noEOL, wantNoEOL)
	}
}

// dotStream builds what a POP3 server sends for body: dot-stuffed and
// terminated.
func dotStream(body []byte) []byte {
	var b bytes.Buffer
	bol := true
	for _, c := range body {
		if bol && c == '.' {
			b.WriteByte('.')
		}
		b.WriteByte(c)
		bol = c == '\n'
	}
	if !bol {
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

func TestPOP3DotReader(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{".\r\n", "", true},
		{"a\r\n.\r\n", "a\r\n", true},
		{"..\r\n.\r\n", ".\r\n", true},
		{"...\r\n..x\r\n.y\r\n.\r\n", "..\r\n.x\r\ny\r\n", true},
		{"a.\r\n.\r\nNEXT", "a.\r\n", true},
		{"lone\rcr\r\n.\r\n", "lone\rcr\r\n", true},
		{"bare\n.\n", "bare\n", true},
		{".\rx\r\n.\r\n", "\rx\r\n", true},
		{"\r\n\r\n.\r\n", "\r\n\r\n", true},
		{"", "", false},
		{"a\r\n", "a\r\n", false},
		{"a\r\n.", "a\r\n", false},
		{"a\r\n.\r", "a\r\n", false},
		{"a\r\n..", "a\r\n.", false},
		{"no end", "no end", false},
	} {
		for _, bufSize := range []int{16, 4096} {
			for _, readSize := range []int{1, 2, 3, 7, 4096} {
				src := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(tc.in)), bufSize)
				if bufSize == 4096 {
					src = bufio.NewReaderSize(strings.NewReader(tc.in), bufSize)
				}
				d := &dotReader{r: src}
				var got []byte
				buf := make([]byte, readSize)
				var err error
				for {
					var n int
					n, err = d.Read(buf)
					got = append(got, buf[:n]...)
					if err != nil {
						break
					}
				}
				if string(got) != tc.want || (err == io.EOF) != tc.ok || (!tc.ok && d.err == nil) {
					t.Errorf("%q (buffer %d, reads of %d): got %q, %v; want %q, complete %v", tc.in, bufSize, readSize, got, err, tc.want, tc.ok)
				}
				if tc.ok {
					rest, _ := io.ReadAll(src)
					want := ""
					if strings.HasSuffix(tc.in, "NEXT") {
						want = "NEXT"
					}
					if string(rest) != want {
						t.Errorf("%q: %q left after the terminator, want %q", tc.in, rest, want)
					}
				}
			}
		}
	}
}

// Stuffing any body of whole CRLF lines and reading it back gives the body.
func FuzzPOP3DotReader(f *testing.F) {
	for _, s := range []string{"", ".\r\n", "..\r\n.\r\n", "a\r\n.b\r\n", "x\ry\r\n", strings.Repeat("z", 5000) + "\r\n.\r\n"} {
		f.Add([]byte(s), uint16(4096))
	}
	f.Fuzz(func(t *testing.T, body []byte, readSize uint16) {
		if len(body) > 0 && body[len(body)-1] != '\n' {
			body = append(body, '\r', '\n')
		}
		stream := append(dotStream(body), "+OK next"...)
		src := bufio.NewReaderSize(bytes.NewReader(stream), 16)
		d := &dotReader{r: src}
		got, err := io.ReadAll(iotest.OneByteReader(d))
		if readSize > 1 {
			src = bufio.NewReaderSize(bytes.NewReader(stream), 16)
			d = &dotReader{r: src}
			var b bytes.Buffer
			_, err = io.CopyBuffer(&b, struct{ io.Reader }{d}, make([]byte, readSize))
			got = b.Bytes()
		}
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("body %q: read %q, %v", body, got, err)
		}
		if rest, _ := io.ReadAll(src); string(rest) != "+OK next" {
			t.Fatalf("body %q: left %q after the terminator", body, rest)
		}
	})
}

// testTLS makes a throwaway CA-less self-signed certificate for 127.0.0.1
// and localhost, and a client pool that trusts it.
func testTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailferry pop3 test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// tlsFront serves TLS (implicit, or plaintext with STLS first) in front of a
// plaintext POP3 server: the session after the handshake is the real
// server's. With inject, the +OK to STLS is followed by a plaintext line in
// the same write (the STARTTLS injection a client must refuse).
func tlsFront(t *testing.T, backend string, srvTLS *tls.Config, stls, inject bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if stls {
					r := bufio.NewReader(c)
					io.WriteString(c, "+OK front ready\r\n")
					for {
						line, err := r.ReadString('\n')
						if err != nil {
							return
						}
						switch strings.TrimSpace(line) {
						case "CAPA":
							io.WriteString(c, "+OK\r\nUSER\r\nSTLS\r\n.\r\n")
							continue
						case "STLS":
							if inject {
								io.WriteString(c, "+OK begin TLS\r\n+OK injected\r\n")
							} else {
								io.WriteString(c, "+OK begin TLS\r\n")
							}
						default:
							io.WriteString(c, "-ERR say STLS first\r\n")
							continue
						}
						break
					}
				}
				tc := tls.Server(c, srvTLS)
				if err := tc.Handshake(); err != nil {
					return
				}
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				br := bufio.NewReader(b)
				if _, err := br.ReadString('\n'); err != nil { // the backend's greeting
					return
				}
				if !stls {
					io.WriteString(tc, "+OK front ready (TLS)\r\n")
				}
				done := make(chan struct{})
				go func() { io.Copy(b, tc); b.Close(); close(done) }()
				io.Copy(tc, br)
				tc.Close()
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}

// pop3s and STLS: a whole session through TLS gives the same bytes; a
// certificate that is not trusted or not for the host, and plaintext
// injected after +OK to STLS, end with migrate.ErrTLS before the login.
func TestPOP3TLS(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	bodies := trickyMessages()[:3]
	seedInbox(t, srv, "alice", bodies)
	srvTLS, pool := testTLS(t)
	implicit := tlsFront(t, srv.POP3Addr(), srvTLS, false, false)
	stls := tlsFront(t, srv.POP3Addr(), srvTLS, true, false)
	injected := tlsFront(t, srv.POP3Addr(), srvTLS, true, true)

	for _, tc := range []struct {
		name, addr string
		mode       mailconn.TLSMode
		conf       *tls.Config
		wantTLSErr string // "" means the session must work
	}{
		{"pop3s", implicit, mailconn.TLSImplicit, &tls.Config{RootCAs: pool}, ""},
		{"STLS", stls, mailconn.TLSStartTLS, &tls.Config{RootCAs: pool}, ""},
		{"pop3s, system roots", implicit, mailconn.TLSImplicit, nil, "certificate"},
		{"STLS, system roots", stls, mailconn.TLSStartTLS, nil, "certificate"},
		{"STLS, wrong name", stls, mailconn.TLSStartTLS, &tls.Config{RootCAs: pool, ServerName: "mail.example.org"}, "mail.example.org"},
		{"STLS, injected plaintext", injected, mailconn.TLSStartTLS, &tls.Config{RootCAs: pool}, "after +OK to STLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := pop3Config(srv, "alice")
			cfg.Addr, cfg.TLS, cfg.TLSConfig = tc.addr, tc.mode, tc.conf
			p, err := DialPOP3(context.Background(), cfg)
			if tc.wantTLSErr != "" {
				if err == nil {
					p.Close()
					t.Fatal("connected")
				}
				t.Logf("%v", err)
				if !errors.Is(err, migrate.ErrTLS) || migrate.IsRetryable(err) || !strings.Contains(err.Error(), tc.wantTLSErr) {
					t.Fatalf("%v: want migrate.ErrTLS mentioning %q", err, tc.wantTLSErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if _, ok := p.conn.(*tls.Conn); !ok {
				t.Fatal("the session is not over TLS")
			}
			msgs := listPOP3(t, p)
			got := fetchPOP3(t, p, msgs)
			for i, m := range msgs {
				if !bytes.Equal(got[m.ID], bodies[i]) {
					t.Errorf("message %d differs over TLS", i+1)
				}
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// fakePOP3 serves scripted POP3 sessions: greeting (if empty, none, and
// nothing answered), then answer(line) for each command line; an answer
// "STALL" stops answering.
func fakePOP3(t *testing.T, greeting string, answer func(line string) string) string {
	t.Helper()
	return fakePOP3Counting(t, greeting, answer, nil)
}

// fakePOP3Counting is fakePOP3 that counts in active (when not nil) the
// connections it is still reading: one ends when the client hangs up, or
// stalls (STALL).
func fakePOP3Counting(t *testing.T, greeting string, answer func(line string) string, active *atomic.Int32) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			if active != nil {
				active.Add(1)
			}
			go func() {
				defer wg.Done()
				defer c.Close()
				reading := active != nil
				stop := func() {
					if reading {
						reading = false
						active.Add(-1)
					}
				}
				defer stop()
				go func() { <-quit; c.Close() }()
				if greeting == "" {
					// A server that never greets answers nothing either:
					// a client may send before the greeting (CAPA does),
					// and a server reads it only once it has greeted.
					stop()
					<-quit
					return
				}
				io.WriteString(c, greeting)
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					a := answer(strings.TrimRight(line, "\r\n"))
					if strings.HasPrefix(a, "STALL") {
						io.WriteString(c, strings.TrimPrefix(a, "STALL"))
						stop()
						<-quit
						return
					}
					io.WriteString(c, a)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// Behaviours no Dovecot shows: silent servers, a bare +OK to STAT (which
// makes go-pop3 panic), duplicate UIDLs, SASL-only login, RFC 3206 codes.
func TestPOP3FakeServers(t *testing.T) {
	ctx := context.Background()
	basic := scriptedPOP3
	cfg := mailconn.ServerConfig{User: "u", Password: "secret-pw", TLS: mailconn.TLSNone, Timeout: 300 * time.Millisecond}

	t.Run("no greeting", func(t *testing.T) {
		cfg := cfg
		cfg.Addr = fakePOP3(t, "", basic(nil))
		start := time.Now()
		_, err := DialPOP3(ctx, cfg)
		if !migrate.IsRetryable(err) || time.Since(start) > 3*time.Second {
			t.Fatalf("silent server: %v after %v", err, time.Since(start))
		}
	})
	t.Run("not POP3", func(t *testing.T) {
		cfg := cfg
		cfg.Addr = fakePOP3(t, "* OK IMAP4rev1 ready\r\n", basic(nil))
		if _, err := DialPOP3(ctx, cfg); err == nil || migrate.IsRetryable(err) {
			t.Fatalf("IMAP greeting: %v, want a fatal error", err)
		}
	})
	t.Run("stall mid-RETR", func(t *testing.T) {
		cfg := cfg
		cfg.Addr = fakePOP3(t, "+OK\r\n", basic(func(line string) (string, bool) {
			return "STALL+OK\r\nSubject: x\r\n\r\nhalf a mess", line == "RETR 1"
		}))
		p := dialPOP3(t, cfg)
		start := time.Now()
		var readErr error
		err := p.Fetch(ctx, pop3Inbox, listPOP3(t, p)[:1], func(m formats.Message, body io.Reader) error {
			_, readErr = io.ReadAll(body)
			return nil
		})
		if !migrate.IsRetryable(err) || readErr == nil || time.Since(start) > 3*time.Second {
			t.Fatalf("stalled RETR: %v (read error %v) after %v", err, readErr, time.Since(start))
		}
	})
	t.Run("bare +OK to STAT", func(t *testing.T) {
		cfg := cfg
		cfg.Addr = fakePOP3(t, "+OK\r\n", basic(func(line string) (string, bool) { return "+OK\r\n", line == "STAT" }))
		p := dialPOP3(t, cfg)
		if _, err := p.Folders(ctx); err == nil {
			t.Fatal("a bare +OK to STAT was accepted")
		}
	})
	t.Run("duplicate UIDL", func(t *testing.T) {
		cfg := cfg
		cfg.Addr = fakePOP3(t, "+OK\r\n", basic(func(line string) (string, bool) {
			return "+OK\r\n1 same\r\n2 same\r\n.\r\n", line == "UIDL"
		}))
		p := dialPOP3(t, cfg)
		if _, _, err := p.List(ctx, pop3Inbox); err == nil || !strings.Contains(err.Error(), "same UIDL") {
			t.Fatalf("duplicate UIDL: %v", err)
		}
	})
	t.Run("no UIDL", func(t *testing.T) {
		cfg := cfg
		cfg.Addr = fakePOP3(t, "+OK\r\n", basic(func(line string) (string, bool) { return "-ERR no UIDL here\r\n", line == "UIDL" }))
		p := dialPOP3(t, cfg)
		if _, _, err := p.List(ctx, pop3Inbox); err == nil || migrate.IsRetryable(err) {
			t.Fatalf("no UIDL: %v", err)
		}
		// The session stays in step after the refused UIDL (LIST was pipelined or not).
		if _, _, err := p.List(ctx, pop3Inbox); err == nil || !strings.Contains(err.Error(), "UIDL refused") {
			t.Fatalf("second List: %v", err)
		}
	})
	t.Run("SASL PLAIN only", func(t *testing.T) {
		cfg := cfg
		want := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00u\x00secret-pw"))
		var got atomic.Value
		cfg.Addr = fakePOP3(t, "+OK\r\n", basic(func(line string) (string, bool) {
			switch {
			case line == "CAPA":
				return "+OK\r\nSASL PLAIN\r\nUIDL\r\n.\r\n", true
			case strings.HasPrefix(line, "AUTH "):
				got.Store(line)
				return "+OK\r\n", true
			case strings.HasPrefix(line, "USER "):
				return "-ERR use AUTH\r\n", true
			}
			return "", false
		}))
		dialPOP3(t, cfg)
		if got.Load() != want {
			t.Fatalf("sent %v, want %q", got.Load(), want)
		}
	})
	for _, code := range []string{"IN-USE", "LOGIN-DELAY", "SYS/TEMP"} {
		t.Run("login "+code, func(t *testing.T) {
			cfg := cfg
			cfg.Addr = fakePOP3(t, "+OK\r\n", basic(func(line string) (string, bool) {
				return "-ERR [" + code + "] try later\r\n", strings.HasPrefix(line, "PASS ")
			}))
			_, err := DialPOP3(ctx, cfg)
			if !migrate.IsRetryable(err) || errors.Is(err, migrate.ErrAuth) {
				t.Fatalf("[%s]: %v, want retryable, not ErrAuth", code, err)
			}
		})
	}
	t.Run("server echoes the password", func(t *testing.T) {
		cfg := cfg
		cfg.Addr = fakePOP3(t, "+OK\r\n", basic(func(line string) (string, bool) {
			return "-ERR [AUTH] bad password " + strings.TrimPrefix(line, "PASS ") + "\r\n", strings.HasPrefix(line, "PASS ")
		}))
		_, err := DialPOP3(ctx, cfg)
		if !errors.Is(err, migrate.ErrAuth) || strings.Contains(err.Error(), cfg.Password) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("QUIT refused after DELE", func(t *testing.T) {
		cfg := cfg
		cfg.Addr = fakePOP3(t, "+OK\r\n", basic(func(line string) (string, bool) {
			switch {
			case strings.HasPrefix(line, "DELE "):
				return "+OK marked\r\n", true
			case line == "QUIT":
				return "-ERR some deleted messages not removed\r\n", true
			}
			return "", false
		}))
		p, err := DialPOP3(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Delete(ctx, pop3Inbox, []formats.Message{{ID: "a"}, {ID: "b"}}); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err == nil || !strings.Contains(err.Error(), "QUIT refused") {
			t.Fatalf("Close: %v", err)
		}
	})
}

// pop3s and STLS against Dovecot's own TLS (dovecottest migrate.Options.TLS), with
// its CA trusted or not, and a certificate issued for another name.
func TestPOP3DovecotTLS(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{TLS: true})
	other := dovecottest.Start(t, dovecottest.Options{TLS: true, TLSHost: "mail.example.invalid"})
	bodies := trickyMessages()[:3]
	seedInbox(t, srv, "alice", bodies)
	for _, tc := range []struct {
		name  string
		srv   *dovecottest.Server
		addr  string
		mode  mailconn.TLSMode
		roots bool
		ok    bool
	}{
		{"pop3s", srv, srv.POP3SAddr(), mailconn.TLSImplicit, true, true},
		{"STLS", srv, srv.POP3Addr(), mailconn.TLSStartTLS, true, true},
		{"pop3s, CA not trusted", srv, srv.POP3SAddr(), mailconn.TLSImplicit, false, false},
		{"STLS, CA not trusted", srv, srv.POP3Addr(), mailconn.TLSStartTLS, false, false},
		{"pop3s, certificate for another name", other, other.POP3SAddr(), mailconn.TLSImplicit, true, false},
		{"STLS, certificate for another name", other, other.POP3Addr(), mailconn.TLSStartTLS, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := pop3Config(tc.srv, "alice")
			cfg.Addr, cfg.TLS = tc.addr, tc.mode
			if tc.roots {
				cfg.TLSConfig = &tls.Config{RootCAs: tc.srv.RootCAs()}
			}
			p, err := DialPOP3(context.Background(), cfg)
			if !tc.ok {
				if err == nil {
					p.Close()
					t.Fatal("connected")
				}
				t.Logf("%v", err)
				if !errors.Is(err, migrate.ErrTLS) || migrate.IsRetryable(err) {
					t.Fatalf("%v: want migrate.ErrTLS, not retryable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if _, ok := p.conn.(*tls.Conn); !ok {
				t.Fatal("the session is not over TLS")
			}
			if _, ok := p.caps["STLS"]; ok && tc.mode == mailconn.TLSStartTLS {
				t.Error("CAPA after STLS still offers STLS: capabilities were not read again")
			}
			msgs := listPOP3(t, p)
			got := fetchPOP3(t, p, msgs)
			for i, m := range msgs {
				if !bytes.Equal(got[m.ID], bodies[i]) {
					t.Errorf("message %d differs over TLS", i+1)
				}
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// DELE goes in batches of pop3Window commands: a maildrop of more than
// one batch (5,000 messages, two batches) is deleted as asked, and a DELE
// refused in the second batch makes Delete send RSET, so that QUIT
// deletes nothing, the first batch's marks included. The messages are
// written into the Maildir directly (one APPEND each took 30 s).
func TestPOP3DeleteMoreThanOneBatch(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	const n = 5000
	if n <= pop3Window {
		t.Fatalf("the maildrop (%d) fits one batch of %d", n, pop3Window)
	}
	inbox := filepath.Join(srv.Dir, "mail", "bob")
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(inbox, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n { // LF line endings, as Dovecot keeps them
		body := fmt.Sprintf("Message-ID: <batch%d@mailferry.test>\nSubject: batch\n\n%d\n", i, i)
		name := fmt.Sprintf("%d.M%dP1.mailferry.test", 1700000000+i, i)
		if err := os.WriteFile(filepath.Join(inbox, "new", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv.GiveToMailUser(t, filepath.Join(srv.Dir, "mail"))
	ctx := context.Background()

	p := dialPOP3(t, pop3Config(srv, "bob"))
	msgs := listPOP3(t, p)
	if len(msgs) != n {
		t.Fatalf("listed %d messages, wrote %d", len(msgs), n)
	}
	p.nums["no-such-uidl"] = n + 1
	err := p.Delete(ctx, pop3Inbox, append(msgs[:n:n], formats.Message{ID: "no-such-uidl"}))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("DELE %d", n+1)) || !strings.Contains(err.Error(), "RSET") {
		t.Fatalf("Delete with a DELE refused in the second batch: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close after RSET: %v", err)
	}
	if got := len(srv.Snapshot(t, "bob")["INBOX"]); got != n {
		t.Fatalf("after a refused DELE and RSET, %d messages remain, want %d", got, n)
	}

	p = dialPOP3(t, pop3Config(srv, "bob"))
	msgs = listPOP3(t, p)
	kept := fetchPOP3(t, p, msgs[n-10:]) // what must be left
	if err := p.Delete(ctx, pop3Inbox, msgs[:n-10]); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, b := range kept {
		want[hexSHA(b)] = true
	}
	snap := srv.Snapshot(t, "bob")["INBOX"]
	if len(snap) != 10 || len(want) != 10 {
		t.Fatalf("after deleting %d of %d: %d remain, want 10 (%d fetched)", n-10, n, len(snap), len(want))
	}
	for _, m := range snap {
		if !want[m.SHA256] {
			t.Errorf("a message left (SHA-256 %s) is not one of the ten kept", m.SHA256[:12])
		}
	}
}

// LIST's sizes are kept in an array by message number. A number far past
// the maildrop's messages (a server's bug, or a hostile one) gets no size
// rather than an array that large; a malformed line is a protocol error.
func TestPOP3ListSizes(t *testing.T) {
	sizes, err := listSizes([]string{"1 120", "3 4000", "2 77"}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{0, 120, 77, 4000}; !slices.Equal(sizes, want) {
		t.Errorf("sizes %v, want %v", sizes, want)
	}
	sizes, err = listSizes([]string{"1 120", "4000000000 9", "-2 5", "2 30"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{0, 120, 30, 0, 0}; !slices.Equal(sizes, want) {
		t.Errorf("sizes %v, want %v (far numbers left out)", sizes, want)
	}
	for _, bad := range []string{"1", "x 12", "1 twelve"} {
		if _, err := listSizes([]string{bad}, 1); !errors.Is(err, mailconn.ErrProtocol) {
			t.Errorf("LIST line %q: %v, want a protocol error", bad, err)
		}
	}
}

// countingWriter counts the writes that reach the connection.
type countingWriter struct {
	w      io.Writer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.w.Write(p)
}

// With PIPELINING, the RETRs of a maildrop go out in batches of at least
// pop3Refill, not one write per message as each answer is read; every
// message still arrives, in order and whole.
func TestPOP3RetrWindowGoesOutInBatches(t *testing.T) {
	const n = 10000 // more than a window: it is topped up as answers come
	var uidl, list strings.Builder
	uidl.WriteString("+OK\r\n")
	list.WriteString("+OK\r\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&uidl, "%d u%d\r\n", i, i)
		fmt.Fprintf(&list, "%d 30\r\n", i)
	}
	uidl.WriteString(".\r\n")
	list.WriteString(".\r\n")
	answer := scriptedPOP3(withPipelining(true, func(line string) (string, bool) {
		switch {
		case line == "STAT":
			return fmt.Sprintf("+OK %d %d\r\n", n, 30*n), true
		case line == "UIDL":
			return uidl.String(), true
		case line == "LIST":
			return list.String(), true
		case strings.HasPrefix(line, "RETR "):
			return fmt.Sprintf("+OK\r\nSubject: %s\r\n\r\nbody\r\n.\r\n", line[5:]), true
		}
		return "", false
	}))
	cfg := mailconn.ServerConfig{User: "u", Password: "secret-pw", TLS: mailconn.TLSNone, Timeout: 5 * time.Second,
		Addr: fakePOP3(t, "+OK\r\n", answer)}
	p := dialPOP3(t, cfg)
	msgs := listPOP3(t, p)
	if len(msgs) != n || !p.pipelining {
		t.Fatalf("listed %d messages (pipelining %v), want %d with PIPELINING", len(msgs), p.pipelining, n)
	}
	cw := &countingWriter{w: p.wire.Conn}
	p.wire.w = bufio.NewWriter(cw) // empty: every command so far was flushed
	got := 0
	err := p.Fetch(context.Background(), pop3Inbox, msgs, func(m formats.Message, body io.Reader) error {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		num, _ := strconv.Atoi(strings.TrimPrefix(m.ID, "u"))
		if want := fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", num); string(b) != want || num != got+1 {
			return fmt.Errorf("message %d of the fetch is %s: %q", got+1, m.ID, b)
		}
		got++
		return nil
	})
	if err != nil || got != n {
		t.Fatalf("Fetch: %v after %d of %d messages", err, got, n)
	}
	// The first window (4,096 commands of 8-11 bytes, through a 4 KiB
	// buffer) takes ten writes or so; after it, one per pop3Refill answers.
	if most := 16 + n/pop3Refill; cw.writes > most {
		t.Errorf("%d RETRs went out in %d writes, want at most %d", n, cw.writes, most)
	}
}
