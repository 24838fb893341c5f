package imap

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// TestFirstListingTravelsWithDiscover: a connection opened for the engine
// to list its folders next (migrate.ListsNext) sends the folder LIST with
// the LIST "" "" and NAMESPACE it opens with, so that login to listing
// costs two round trips, not three; and it lists the same folders, with
// the same counts, as a connection that asks for them afterwards.
func TestFirstListingTravelsWithDiscover(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	date := time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)
	var seed []dovecottest.SeedMessage
	for i, f := range []string{"INBOX", "A", "A/B", "Ça \"va\"", "A"} {
		seed = append(seed, dovecottest.SeedMessage{Folder: f, Date: date,
			Body: []byte(fmt.Sprintf("Message-ID: <%d@lists.next>\r\n\r\nbody %d\r\n", i, i))})
	}
	srv.Seed(t, "alice", seed)

	var mu sync.Mutex
	turns := map[int]int{}           // per connection: the client's turns to speak
	last := map[int]faultproxy.Dir{} // per connection: who spoke last
	p, err := faultproxy.New(srv.IMAPAddr(), faultproxy.Faults{
		// 20 ms each way, so that a chunk is tapped (just after the
		// proxy writes it on) long before its answer can come back,
		// even on a loaded machine.
		Latency: 20 * time.Millisecond,
		Tap: func(conn int, dir faultproxy.Dir, _ []byte) {
			mu.Lock()
			defer mu.Unlock()
			if dir == faultproxy.ClientToServer && last[conn] != faultproxy.ClientToServer {
				turns[conn]++
			}
			last[conn] = dir
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg := mailconn.ServerConfig{Addr: p.Addr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone}

	var listings []string
	for i, c := range []struct {
		name      string
		listsNext bool
		want      int // turns from the greeting to the folders listed
	}{{"opened to list next", true, 2}, {"opened alone", false, 3}} {
		ctx := context.Background()
		if c.listsNext {
			ctx = migrate.WithListsNext(ctx)
		}
		m, err := DialIMAP(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		folders, err := m.Folders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got := turns[i]
		mu.Unlock()
		if got != c.want {
			t.Errorf("%s: the client spoke %d times from the greeting to the listing, want %d", c.name, got, c.want)
		}
		listings = append(listings, fmt.Sprintf("%+v", folders))
		counts := map[string]uint32{}
		for _, f := range folders {
			counts[f.Name] = f.Messages
		}
		if want := map[string]uint32{"INBOX": 1, "A": 2, "A/B": 1, "Ça \"va\"": 1}; fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Errorf("%s: folders and counts %v, want %v", c.name, counts, want)
		}
		m.Close()
	}
	if listings[0] != listings[1] {
		t.Errorf("the listings differ:\nsent with discover: %s\nasked afterwards:   %s", listings[0], listings[1])
	}
}

// TestSlowListingIsNoSlowLink: a server that answers the first
// LIST "" "" late, as Dovecot does when the folder listing went out with
// it (it answers pipelined commands together, after counting every folder
// of a large account), does not make a loopback connection look like a
// slow link (CarryBatch, which costs a second batch in flight per
// appender): the round trip is the shorter of that and the LOGIN's.
func TestSlowListingIsNoSlowLink(t *testing.T) {
	addr := fakeIMAP(t, "IMAP4rev1 LITERAL+", func(_ *bufio.Reader, tag, rest string) (string, bool) {
		switch {
		case strings.HasPrefix(rest, "LOGIN"):
			return tag + " OK logged in\r\n", false
		case rest == `LIST "" ""`:
			time.Sleep(4 * slowLink)
			return "* LIST (\\Noselect) \"/\" \"\"\r\n" + tag + " OK done\r\n", false
		case rest == `LIST "" "*"`:
			return "* LIST () \"/\" INBOX\r\n" + tag + " OK done\r\n", false
		case strings.HasPrefix(rest, "STATUS"):
			return "* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 7)\r\n" + tag + " OK done\r\n", false
		case strings.HasPrefix(rest, "LOGOUT"):
			return "* BYE\r\n" + tag + " OK bye\r\n", true
		}
		return tag + " OK done\r\n", false
	})
	ctx := migrate.WithListsNext(context.Background())
	m, err := DialIMAP(ctx, mailconn.ServerConfig{Addr: addr, User: "carol", Password: "pw", TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Folders(ctx); err != nil {
		t.Fatal(err)
	}
	if m.rtt >= slowLink {
		t.Errorf("round trip %v (LOGIN %v) with a slow first LIST on loopback, want under %v", m.rtt, m.login, slowLink)
	}
}

// TestWorkerConnectionsOwnLoginCountsForTheLink: a connection that takes the
// side's server facts from the first (migrate.ServerFacts) takes the
// shorter of that one's round trip and its own LOGIN's. The first
// connection's LOGIN now goes out while the workers' connections are
// greeted (migrate.BeforeLogin); a loaded loopback server answered it 10 ms
// late often enough that the 200k copy through the benchmark's proxy adding
// nothing took the slow-link path (38.2 MB and 10.3 s of CPU instead of 33.0
// MB and 6.0 s). Here the first server answers LOGIN and the first LIST 40
// ms late, the second at once.
func TestWorkerConnectionsOwnLoginCountsForTheLink(t *testing.T) {
	answer := func(slow bool) func(*bufio.Reader, string, string) (string, bool) {
		return func(_ *bufio.Reader, tag, rest string) (string, bool) {
			switch {
			case strings.HasPrefix(rest, "LOGIN"):
				if slow {
					time.Sleep(4 * slowLink)
				}
				return tag + " OK logged in\r\n", false
			case rest == `LIST "" ""`:
				if slow {
					time.Sleep(4 * slowLink)
				}
				return "* LIST (\\Noselect) \"/\" \"\"\r\n" + tag + " OK done\r\n", false
			case strings.HasPrefix(rest, "LOGOUT"):
				return "* BYE\r\n" + tag + " OK bye\r\n", true
			}
			return tag + " OK done\r\n", false
		}
	}
	first, second := fakeIMAP(t, "IMAP4rev1 LITERAL+", answer(true)), fakeIMAP(t, "IMAP4rev1 LITERAL+", answer(false))
	ctx := migrate.WithServerFacts(context.Background(), &migrate.ServerFacts{})
	a, err := DialIMAP(ctx, mailconn.ServerConfig{Addr: first, User: "carol", Password: "pw", TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.rtt < slowLink {
		t.Fatalf("the first connection's round trip %v, want at least %v (its LOGIN and LIST were slow)", a.rtt, slowLink)
	}
	b, err := DialIMAP(ctx, mailconn.ServerConfig{Addr: second, User: "carol", Password: "pw", TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.rtt >= slowLink {
		t.Errorf("the second connection's round trip %v (its LOGIN %v), want under %v", b.rtt, b.login, slowLink)
	}
}
