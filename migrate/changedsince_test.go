package migrate_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/servertest"
)

// fetchCounter is a TCP proxy to an IMAP server that counts the FETCH
// answers ("* n FETCH (...)") the server sends.
type fetchCounter struct {
	ln      net.Listener
	fetches atomic.Int64
	wg      sync.WaitGroup
}

var fetchLine = regexp.MustCompile(`^\* [0-9]+ FETCH `)

func newFetchCounter(t *testing.T, target string) *fetchCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fc := &fetchCounter{ln: ln}
	t.Cleanup(func() { ln.Close(); fc.wg.Wait() })
	fc.wg.Add(1)
	go func() {
		defer fc.wg.Done()
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
			fc.wg.Add(2)
			go func() { defer fc.wg.Done(); io.Copy(s, c); s.Close() }()
			go func() { defer fc.wg.Done(); fc.count(c, s); c.Close() }()
		}
	}()
	return fc
}

// count forwards the server's bytes to the client, line by line.
func (fc *fetchCounter) count(client, server net.Conn) {
	r := bufio.NewReader(server)
	for {
		line, err := r.ReadBytes('\n')
		if fetchLine.Match(line) {
			fc.fetches.Add(1)
		}
		if _, werr := client.Write(line); werr != nil || err != nil {
			return
		}
	}
}

// With CONDSTORE at the source, a pass after one message's flags changed
// in a folder of 40 fetches that message's flags alone (UID FETCH ...
// (CHANGEDSINCE modseq)), not the flags of all 40; without CONDSTORE it
// lists all 40. A later pass with a delivery, a flag change and an
// expunge (--sync-deletions) still carries all three.
func TestFlagsFollowFetchesOnlyTheChanged(t *testing.T) {
	for _, c := range []struct {
		name string
		opts dovecottest.Options
		want int64
	}{
		{"condstore", dovecottest.Options{Separator: '/'}, 1},
		{"without condstore", dovecottest.Options{Separator: '/', IMAPCapability: dovecottest.WithoutCaps("CONDSTORE", "QRESYNC")}, 40},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := newCutoverPair(t, c.opts)
			var seed []dovecottest.SeedMessage
			for i := range 40 {
				seed = append(seed, dovecottest.SeedMessage{Body: cutoverMessage(i)})
			}
			p.src.Seed(t, "alice", seed)
			fc := newFetchCounter(t, p.src.IMAPAddr())
			p.srcVia = fc.ln.Addr().String()
			opts := migrate.Options{SyncDeletions: true}
			if rep := p.run(t, opts); rep.Totals.Copied != 40 {
				t.Fatalf("first run: %+v", rep.Totals)
			}
			storeFlags(t, p.src, "INBOX", 7, imap.StoreFlagsAdd, "$Label1")
			fc.fetches.Store(0)
			rep := p.run(t, opts)
			if got := fc.fetches.Load(); got != c.want || rep.Totals.FlagsUpdated != 1 {
				t.Errorf("a pass after 1 of 40 messages changed flags: %d FETCH answers from the source, %d flags updated; want %d and 1", got, rep.Totals.FlagsUpdated, c.want)
			}
			if got := flagsByBody(t, p.dst, "INBOX")[sha(cutoverMessage(7))]; !slices.Contains(got, "$Label1") {
				t.Errorf("message 7 has flags %q at the destination, want $Label1", got)
			}

			p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: cutoverMessage(40), Flags: []string{`\Seen`}}})
			storeFlags(t, p.src, "INBOX", 9, imap.StoreFlagsAdd, imap.FlagFlagged)
			storeFlags(t, p.src, "INBOX", 7, imap.StoreFlagsDel, "$Label1")
			storeFlags(t, p.src, "INBOX", 3, imap.StoreFlagsAdd, imap.FlagDeleted)
			uidOp(t, p.src, "INBOX", func(c *imapclient.Client) {
				if err := c.Expunge().Close(); err != nil {
					t.Fatal(err)
				}
			})
			rep = p.run(t, opts)
			if tt := rep.Totals; tt.Copied != 1 || tt.FlagsUpdated != 2 || tt.DeletedAtDestination != 1 {
				t.Errorf("a pass after a delivery, 2 flag changes and an expunge: %+v", tt)
			}
			src, dst := p.src.Snapshot(t, "alice")["INBOX"], p.dst.Snapshot(t, "alice")["INBOX"]
			if !sameMessages(src, dst) {
				t.Errorf("source and destination INBOX differ (bytes or flags) after the pass")
			}
		})
	}
}

// sameMessages says two folders hold the same bytes with the same flags.
func sameMessages(a, b []dovecottest.MessageState) bool {
	key := func(ms []dovecottest.MessageState) []string {
		var out []string
		for _, m := range ms {
			fl := slices.Clone(m.Flags)
			slices.Sort(fl)
			out = append(out, m.SHA256+" "+fmt.Sprint(fl))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// A message listed by its changes only (no size, no date) that must be
// copied again (the user deleted one of two destination copies of a
// message the source holds twice) is listed whole first: it arrives with
// its internal date and flags.
func TestChangedSinceCopiesAgainWithTheDate(t *testing.T) {
	p := newCutoverPair(t, dovecottest.Options{Separator: '/'})
	date := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	twice := []dovecottest.SeedMessage{{Body: cutoverMessage(1), Date: date, Flags: []string{`\Seen`}}, {Body: cutoverMessage(1), Date: date, Flags: []string{`\Seen`}}}
	p.src.Seed(t, "alice", append(twice, dovecottest.SeedMessage{Body: cutoverMessage(2)}))
	p.dst.Seed(t, "alice", []dovecottest.SeedMessage{{Body: cutoverMessage(1)}, {Body: cutoverMessage(1)}})
	if rep := p.run(t, migrate.Options{}); rep.Totals.Copied != 1 || rep.Totals.Skipped != 2 {
		t.Fatalf("first run: %+v, want 1 copied and 2 found at the destination", rep.Totals)
	}
	storeFlags(t, p.src, "INBOX", 2, imap.StoreFlagsAdd, imap.FlagFlagged) // HIGHESTMODSEQ moves
	uidOp(t, p.dst, "INBOX", func(c *imapclient.Client) {
		var first imap.UIDSet
		first.AddNum(1)
		if err := c.Store(first, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Expunge().Close(); err != nil {
			t.Fatal(err)
		}
	})
	if rep := p.run(t, migrate.Options{}); rep.Totals.Copied != 1 {
		t.Fatalf("second run: %+v, want the missing copy copied again", rep.Totals)
	}
	var got []string
	for _, m := range p.dst.Snapshot(t, "alice")["INBOX"] {
		if m.SHA256 == sha(cutoverMessage(1)) {
			got = append(got, m.Date.UTC().Format(time.RFC3339)+" "+fmt.Sprint(m.Flags))
		}
	}
	want := date.Format(time.RFC3339) + " [\\Seen]"
	if len(got) != 2 || got[1] != want {
		t.Errorf("the copies of message 1 at the destination: %q; want two, the one copied again %q", got, want)
	}
}

// The same on Cyrus (CONDSTORE, its own mod-sequences) as the source: one
// flag changed of 20 costs one FETCH answer, and a flag removal and an
// expunge (--sync-deletions) follow.
func TestFlagsFollowFromCyrus(t *testing.T) {
	cy := servertest.StartCyrus(t, servertest.Options{})
	p := &cutoverPair{src: cy.Server, dst: dovecottest.Start(t, dovecottest.Options{Separator: '.'}), state: filepath.Join(t.TempDir(), "state.db")}
	var seed []dovecottest.SeedMessage
	for i := range 20 {
		seed = append(seed, dovecottest.SeedMessage{Body: cutoverMessage(i), Flags: []string{`\Seen`}})
	}
	p.src.Seed(t, "alice", seed)
	fc := newFetchCounter(t, p.src.IMAPAddr())
	p.srcVia = fc.ln.Addr().String()
	opts := migrate.Options{SyncDeletions: true}
	if rep := p.run(t, opts); rep.Totals.Copied != 20 {
		t.Fatalf("first run: %+v", rep.Totals)
	}
	storeFlags(t, p.src, "INBOX", 7, imap.StoreFlagsAdd, imap.FlagFlagged)
	fc.fetches.Store(0)
	if rep := p.run(t, opts); fc.fetches.Load() != 1 || rep.Totals.FlagsUpdated != 1 {
		t.Errorf("a pass after 1 of 20 messages changed flags: %d FETCH answers from Cyrus, %+v; want 1 and 1 flags updated", fc.fetches.Load(), rep.Totals)
	}
	storeFlags(t, p.src, "INBOX", 4, imap.StoreFlagsDel, imap.FlagSeen)
	storeFlags(t, p.src, "INBOX", 5, imap.StoreFlagsAdd, imap.FlagDeleted)
	uidOp(t, p.src, "INBOX", func(c *imapclient.Client) {
		if err := c.Expunge().Close(); err != nil {
			t.Fatal(err)
		}
	})
	if rep := p.run(t, opts); rep.Totals.FlagsUpdated != 1 || rep.Totals.DeletedAtDestination != 1 {
		t.Errorf("a pass after a flag removal and an expunge: %+v", rep.Totals)
	}
	if !sameMessages(p.src.Snapshot(t, "alice")["INBOX"], p.dst.Snapshot(t, "alice")["INBOX"]) {
		t.Errorf("Cyrus's INBOX and the destination's differ (bytes or flags)")
	}
}
