package pop3

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
)

// Where the server pipelines (Dovecot does), USER and PASS go out
// together after CAPA, then STAT, UIDL and LIST together: a session
// reaches its listing in three round trips after the greeting instead of
// five (on a slow link, all of them before the first message). Folders
// and List then give what they gave before: the count, and every message
// by UIDL in maildrop order. (Nothing goes across the login: Courier loses
// it, TestCourierPOP3EightBitHeaders.)
func TestPOP3LoginBringsTheListing(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	bodies := trickyMessages()
	seedInbox(t, srv, "alice", bodies)
	var mu sync.Mutex
	var sends []string // each chunk the client sent, in order
	proxy, err := faultproxy.New(srv.POP3Addr(), faultproxy.Faults{Tap: func(_ int, dir faultproxy.Dir, b []byte) {
		if dir == faultproxy.ClientToServer {
			mu.Lock()
			sends = append(sends, string(b))
			mu.Unlock()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cfg := pop3Config(srv, "alice")
	cfg.Addr = proxy.Addr()
	p := dialPOP3(t, cfg)
	folders, err := p.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	msgs := listPOP3(t, p)
	// The proxy taps a chunk after writing it on, so the last one can be
	// tapped after its answer reached us (CI once counted 2). The session
	// writes nothing more now: wait for the count to stay put.
	n := -1
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		mu.Lock()
		now := len(sends)
		mu.Unlock()
		if now == n && n >= 3 {
			break
		}
		n = now
		time.Sleep(20 * time.Millisecond)
	}
	if n != 3 {
		t.Errorf("the client wrote %d times before its listing was in, want 3 (CAPA, the login, then STAT, UIDL and LIST)", n)
	}
	if len(folders) != 1 || int(folders[0].Messages) != len(bodies) {
		t.Errorf("Folders = %+v, want INBOX with %d messages", folders, len(bodies))
	}
	if len(msgs) != len(bodies) {
		t.Fatalf("List: %d messages, want %d", len(msgs), len(bodies))
	}
	// The same as a session that asks one command at a time.
	again := dialPOP3(t, pop3Config(srv, "alice"))
	again.ahead = nil
	if _, err := again.Folders(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := listPOP3(t, again)
	for i := range want {
		if msgs[i].ID != want[i].ID {
			t.Fatalf("message %d: UIDL %q, asked alone %q", i+1, msgs[i].ID, want[i].ID)
		}
	}
	if len(p.sizes) != len(bodies)+1 { // by number, from 1
		t.Errorf("LIST's sizes: %d, want %d", len(p.sizes)-1, len(bodies))
	}
	for n := 1; n < len(p.sizes); n++ {
		if p.sizes[n] <= 0 {
			t.Errorf("LIST's size of message %d: %d", n, p.sizes[n])
		}
	}
}

// CAPA goes out as soon as the connection is made, before the greeting is
// read: on a slow link its answer comes half a round trip after the
// greeting instead of a round trip and a half after the connection. Sent
// after the greeting (as before), it reached the server a whole one-way
// delay after the greeting reached us.
func TestCAPASentBeforeTheGreetingIsRead(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	seedInbox(t, srv, "alice", trickyMessages())
	const oneWay = 150 * time.Millisecond
	var mu sync.Mutex
	var greeted, capa time.Time
	proxy, err := faultproxy.New(srv.POP3Addr(), faultproxy.Faults{Latency: oneWay, Tap: func(_ int, dir faultproxy.Dir, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		switch {
		case dir == faultproxy.ServerToClient && greeted.IsZero():
			greeted = now // the greeting reached the client
		case dir == faultproxy.ClientToServer && capa.IsZero() && strings.HasPrefix(string(b), "CAPA\r\n"):
			capa = now // CAPA reached the server
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cfg := pop3Config(srv, "alice")
	cfg.Addr = proxy.Addr()
	p := dialPOP3(t, cfg)
	if !p.pipelining {
		t.Errorf("CAPA's answer was not read: PIPELINING not seen (caps %v)", p.caps)
	}
	folders, err := p.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(folders) != 1 || int(folders[0].Messages) != len(trickyMessages()) {
		t.Errorf("Folders = %+v, want INBOX with %d messages", folders, len(trickyMessages()))
	}
	mu.Lock()
	defer mu.Unlock()
	if greeted.IsZero() || capa.IsZero() {
		t.Fatalf("the proxy saw no greeting (%v) or no CAPA (%v)", greeted, capa)
	}
	if d := capa.Sub(greeted); d > oneWay/2 {
		t.Errorf("CAPA reached the server %v after the greeting reached the client, want about 0 (sent before the greeting was read; %v: after it)", d.Round(time.Millisecond), oneWay)
	}
}
