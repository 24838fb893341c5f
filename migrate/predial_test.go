package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/archive"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
	mfimap "github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// closeCounter is a source connection that counts its Close calls.
type closeCounter struct {
	migrate.Source
	closed *atomic.Int32
}

func (c *closeCounter) Unwrap() migrate.Source { return c.Source }

func (c *closeCounter) Close() error {
	c.closed.Add(1)
	return c.Source.Close()
}

// predialOpts vary predialRun.
type predialOpts struct {
	latency time.Duration       // the source's link
	dst     dovecottest.Options // the destination Dovecot
	exclude []string            // --exclude
	noHook  bool                // the source opened without the engine's context: no LoggedIn
	// dstLists, where set, counts the LIST "" "*" the destination gets.
	dstLists *atomic.Int32
}

// predialRun copies folders × 3 messages from a Dovecot behind a delay
// proxy (a tap on its chunks) with 4 workers, checks the copy by SHA-256
// (the folders not excluded) and that every source connection opened was
// closed, and returns the source side's events in order: "dial N" when
// the proxy accepted connection N, "greet N" for its greeting, "login N"
// for its LOGIN and "logged in N" for the first answer after it, "listed
// N" for the first answer it got after sending its LIST "" "*" (the round
// trip that command went out in).
func predialRun(t *testing.T, folders int, o predialOpts) []string {
	t.Helper()
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	dst := dovecottest.Start(t, o.dst)
	var seed []dovecottest.SeedMessage
	for f := range folders {
		for i := range 3 {
			seed = append(seed, dovecottest.SeedMessage{Folder: fmt.Sprintf("F%d", f), Date: time.Unix(1600000000+int64(i)*60, 0),
				Body: []byte(fmt.Sprintf("Message-ID: <pd%d.%d@example.org>\r\nSubject: %d\r\n\r\nbody %d\r\n", f, i, i, f))})
		}
	}
	src.Seed(t, "alice", seed)
	var mu sync.Mutex
	var events []string
	greeted, listSent, listed := map[int]bool{}, map[int]bool{}, map[int]bool{}
	loginSent, loggedIn := map[int]bool{}, map[int]bool{}
	proxy, err := faultproxy.New(src.IMAPAddr(), faultproxy.Faults{Latency: o.latency,
		Accepted: func(conn int) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, fmt.Sprintf("dial %d", conn))
		},
		Tap: func(conn int, dir faultproxy.Dir, b []byte) {
			mu.Lock()
			defer mu.Unlock()
			if dir == faultproxy.ServerToClient && !greeted[conn] {
				greeted[conn] = true
				events = append(events, fmt.Sprintf("greet %d", conn))
			}
			if dir == faultproxy.ClientToServer && bytes.Contains(b, []byte(" LOGIN ")) {
				loginSent[conn] = true
				events = append(events, fmt.Sprintf("login %d", conn))
			}
			if dir == faultproxy.ServerToClient && loginSent[conn] && !loggedIn[conn] {
				loggedIn[conn] = true
				events = append(events, fmt.Sprintf("logged in %d", conn))
			}
			if dir == faultproxy.ClientToServer && bytes.Contains(b, []byte(`LIST "" "*"`)) {
				listSent[conn] = true
			}
			if dir == faultproxy.ServerToClient && listSent[conn] && !listed[conn] {
				listed[conn] = true
				events = append(events, fmt.Sprintf("listed %d", conn))
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	dstAddr := dst.IMAPAddr()
	if o.dstLists != nil {
		dproxy, err := faultproxy.New(dstAddr, faultproxy.Faults{Tap: func(_ int, dir faultproxy.Dir, b []byte) {
			if dir == faultproxy.ClientToServer {
				o.dstLists.Add(int32(bytes.Count(b, []byte(`LIST "" "*"`))))
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer dproxy.Close()
		dstAddr = dproxy.Addr()
	}
	var opened, closed atomic.Int32
	job := migrate.Job{SourceName: "src", DestName: "dst",
		Options: migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Jobs: 4,
			PlanOptions: migrate.PlanOptions{Exclude: o.exclude}},
		OpenSource: func(ctx context.Context) (migrate.Source, error) {
			if o.noHook {
				ctx = context.Background()
			}
			s, err := mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: proxy.Addr(), User: "alice", Password: src.Users["alice"], TLS: mailconn.TLSNone})
			if err != nil {
				return nil, err
			}
			opened.Add(1)
			return &closeCounter{Source: s, closed: &closed}, nil
		},
		OpenSink: func(ctx context.Context) (migrate.Sink, error) {
			return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: dstAddr, User: "alice", Password: dst.Users["alice"], TLS: mailconn.TLSNone})
		},
	}
	rep, err := migrate.Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	want := 3 * (folders - len(o.exclude))
	if rep.Totals.Copied != want || rep.Totals.Failed != 0 {
		t.Errorf("copied %d, failed %d, want %d and 0", rep.Totals.Copied, rep.Totals.Failed, want)
	}
	// Dovecot 2.3.19 kills sessions that open a fresh account's INBOX
	// side by side (predial.go): the workers' destination connections
	// list it only after the first pair did.
	if log := dst.LogTail(200); strings.Contains(log, "Panic") {
		t.Errorf("the destination Dovecot panicked:\n%s", log)
	}
	if o, c := opened.Load(), closed.Load(); o != c {
		t.Errorf("%d source connections opened, %d closed by the run's end", o, c)
	}
	a, b := src.Snapshot(t, "alice"), dst.Snapshot(t, "alice")
	for f := range folders - len(o.exclude) {
		name := fmt.Sprintf("F%d", f)
		if !reflect.DeepEqual(sums(a[name]), sums(b[name])) {
			t.Errorf("%s differs at the destination (SHA-256 of each message)", name)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), events...)
}

// sums is the SHA-256 of each message of a snapshot's folder, counted.
func sums(msgs []dovecottest.MessageState) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[m.SHA256]++
	}
	return out
}

// TestWorkersLogInBesideTheFirstListing: on an IMAP source with more
// folders than workers, the other workers' connections are opened as soon
// as the first pair has logged in, not after its folder listings: on a
// link of 250 ms each way all three are dialled before the answer to
// the first connection's LIST "" "*" (after it, they cost a listing's
// round trips before any worker but the first could start). The margin is
// a round trip: at 30 ms each way, CI under load once saw the third
// greeting come after it. (That LIST goes out with the first commands
// after the login, migrate.ListsNext, as the workers dial.) The dials are
// counted where the proxy accepts them, not where their greetings come
// back, which is the server's (TestWorkersGreetedBesideTheFirstLogin).
func TestWorkersLogInBesideTheFirstListing(t *testing.T) {
	events := predialRun(t, 6, predialOpts{latency: 250 * time.Millisecond, dst: dovecottest.Options{Separator: '/'}})
	if dials := othersBefore(events, "listed 0", "dial "); dials != 3 {
		t.Errorf("%d other connections dialled before the first LIST \"\" \"*\" was answered, want 3; events %q", dials, events)
	}
}

// TestWorkersGreetedBesideTheFirstLogin: on an IMAP source the other
// workers' connections are dialled as soon as the first has been greeted,
// and wait, greeted, for its login: on a link of 250 ms each way all three
// are dialled before the first LOGIN's answer (dialled after it, they cost
// the CREATE round that waits for their logins a round trip more), and
// none of them sends its LOGIN before that answer. The dials are counted
// where the proxy accepts them, not where their greetings come back: how
// soon those come is the server's (Dovecot's imap-login starts a process
// for each connection), and under CI's load one greeting came 250 ms late,
// after that answer, though its connection was dialled in time.
func TestWorkersGreetedBesideTheFirstLogin(t *testing.T) {
	events := predialRun(t, 6, predialOpts{latency: 250 * time.Millisecond, dst: dovecottest.Options{Separator: '/'}})
	if !slices.Contains(events, "logged in 0") {
		t.Fatalf("no answer to the first LOGIN: %q", events)
	}
	if early := othersBefore(events, "logged in 0", "login "); early != 0 {
		t.Errorf("%d other LOGINs before the first login was answered: %q", early, events)
	}
	if dials := othersBefore(events, "logged in 0", "dial "); dials != 3 {
		t.Errorf("%d other connections dialled before the first LOGIN was answered, want 3; events %q", dials, events)
	}
	if logins := countPrefixed(events, "login "); logins != 4 {
		t.Errorf("%d LOGINs at the source, want 4 (one a connection): %q", logins, events)
	}
}

// othersBefore counts the events of connections other than 0 that begin
// with prefix ("dial ", "login ") and come before the first marker (all of
// them where there is none).
func othersBefore(events []string, marker, prefix string) int {
	n := 0
	for _, ev := range events {
		if ev == marker {
			break
		}
		if ev != prefix+"0" && strings.HasPrefix(ev, prefix) {
			n++
		}
	}
	return n
}

// countPrefixed counts the events that begin with prefix.
func countPrefixed(events []string, prefix string) int {
	n := 0
	for _, ev := range events {
		if strings.HasPrefix(ev, prefix) {
			n++
		}
	}
	return n
}

// TestWrongPasswordSentOnce: the workers' connections dialled beside the
// first (TestWorkersGreetedBesideTheFirstLogin) send no LOGIN when the
// first pair's login is refused, at the source or at the destination: a
// wrong password reaches the source once, the run says why, and every
// connection it dialled is closed.
func TestWrongPasswordSentOnce(t *testing.T) {
	for _, side := range []string{"source", "destination"} {
		t.Run(side, func(t *testing.T) {
			src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
			dst := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
			var mu sync.Mutex
			greeted, logins := map[int]bool{}, 0
			proxy, err := faultproxy.New(src.IMAPAddr(), faultproxy.Faults{Latency: 20 * time.Millisecond,
				Tap: func(conn int, dir faultproxy.Dir, b []byte) {
					mu.Lock()
					defer mu.Unlock()
					greeted[conn] = greeted[conn] || dir == faultproxy.ServerToClient
					if dir == faultproxy.ClientToServer && bytes.Contains(b, []byte(" LOGIN ")) {
						logins++
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			srcPass, dstPass := src.Users["alice"], dst.Users["alice"]
			if side == "source" {
				srcPass = "wrong-" + srcPass
			} else {
				dstPass = "wrong-" + dstPass
			}
			var opened, closed atomic.Int32
			job := migrate.Job{SourceName: "src", DestName: "dst",
				Options: migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Jobs: 4},
				OpenSource: func(ctx context.Context) (migrate.Source, error) {
					s, err := mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: proxy.Addr(), User: "alice", Password: srcPass, TLS: mailconn.TLSNone})
					if err != nil {
						return nil, err
					}
					opened.Add(1)
					return &closeCounter{Source: s, closed: &closed}, nil
				},
				OpenSink: func(ctx context.Context) (migrate.Sink, error) {
					return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: dst.IMAPAddr(), User: "alice", Password: dstPass, TLS: mailconn.TLSNone})
				},
			}
			_, err = migrate.Run(context.Background(), job)
			if !errors.Is(err, migrate.ErrAuth) {
				t.Fatalf("run: %v, want a login refused", err)
			}
			time.Sleep(50 * time.Millisecond) // the tap runs after the proxy wrote
			mu.Lock()
			defer mu.Unlock()
			// With the destination's refused, the source's own LOGIN may
			// not have gone out; a worker's never.
			if logins > 1 || side == "source" && (logins != 1 || len(greeted) < 2) {
				t.Errorf("%d LOGINs at the source over %d connections, want 1 (and the workers' connections dialled)", logins, len(greeted))
			}
			if o, c := opened.Load(), closed.Load(); o != c {
				t.Errorf("%d source connections opened, %d closed by the run's end", o, c)
			}
		})
	}
}

// TestLocalDestinationOpenedAfterTheFirst: the workers dialled beside the
// first pair (TestWorkersGreetedBesideTheFirstLogin) open a destination
// that does not wait at the gate itself (a local store, which calls no
// BeforeLogin) only once the first pair's is open: two opens of one
// archive at once raced on its opener and lost a repair's manifest line
// (TestArchiveRepairsDeletedMaildirFile, under -race, in the first version
// of the early dial). The first open is made slow; none may start during
// it.
func TestLocalDestinationOpenedAfterTheFirst(t *testing.T) {
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	var seed []dovecottest.SeedMessage
	for f := range 6 {
		seed = append(seed, dovecottest.SeedMessage{Folder: fmt.Sprintf("F%d", f), Date: time.Unix(1600000000, 0),
			Body: []byte(fmt.Sprintf("Message-ID: <ld%d@example.org>\r\nSubject: %d\r\n\r\nbody\r\n", f, f))})
	}
	src.Seed(t, "alice", seed)
	proxy, err := faultproxy.New(src.IMAPAddr(), faultproxy.Faults{Latency: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	root := t.TempDir()
	var mu sync.Mutex
	var opens, opened int
	var during []int
	job := migrate.Job{SourceName: "src", DestName: "dst",
		Options: migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Jobs: 4},
		OpenSource: func(ctx context.Context) (migrate.Source, error) {
			return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: proxy.Addr(), User: "alice", Password: src.Users["alice"], TLS: mailconn.TLSNone})
		},
		OpenSink: func(context.Context) (migrate.Sink, error) {
			mu.Lock()
			opens++
			if opens > 1 && opened == 0 {
				during = append(during, opens)
			}
			first := opens == 1
			mu.Unlock()
			if first {
				time.Sleep(150 * time.Millisecond) // past the source's greeting and login
			}
			st, err := archive.OpenMaildir(root, archive.MaildirOptions{Create: true})
			mu.Lock()
			opened++
			mu.Unlock()
			return st, err
		},
	}
	rep, err := migrate.Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Copied != 6 || rep.Totals.Failed != 0 {
		t.Errorf("copied %d, failed %d, want 6 and 0", rep.Totals.Copied, rep.Totals.Failed)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(during) > 0 || opens < 2 {
		t.Errorf("%d destination opens started while the first was still opening (of %d in all, want none of at least 2)", len(during), opens)
	}
}

// TestSurplusWorkersClosed: with fewer folders than workers, the
// connections dialled before the listing showed it are closed, and the
// copy is whole.
func TestSurplusWorkersClosed(t *testing.T) {
	events := predialRun(t, 2, predialOpts{latency: 30 * time.Millisecond, dst: dovecottest.Options{Separator: '/'}})
	if n := countPrefixed(events, "greet "); n != 4 {
		t.Errorf("%d source connections, want 4 (the first and three dialled before the listing): %q", n, events)
	}
}

// TestWorkersListAFreshDestinationAfterTheFirst: on a fresh Dovecot
// destination whose special-use folders are created on first access, the
// workers dialled beside the first pair list the destination only after
// it has (predial.go). Listed side by side, Dovecot 2.3.19 killed
// sessions in 3 runs of 6 (its log: Panic ... dovecot.list.index.log ...
// Resource deadlock avoided), and the run had to connect again.
func TestWorkersListAFreshDestinationAfterTheFirst(t *testing.T) {
	predialRun(t, 6, predialOpts{dst: dovecottest.Options{Separator: '.', SpecialUse: true, SentName: "Sent Items"}})
}

// TestUntakenWorkersClosed: workers dialled for more folders than the plan
// keeps (--exclude) are closed by the run's end, whether they were dialled
// beside the first listing (IMAP's LoggedIn) or after it (a source that
// does not call it).
func TestUntakenWorkersClosed(t *testing.T) {
	for _, noHook := range []bool{false, true} {
		t.Run(fmt.Sprintf("no hook %v", noHook), func(t *testing.T) {
			predialRun(t, 6, predialOpts{dst: dovecottest.Options{Separator: '/'}, exclude: []string{"F2", "F3", "F4", "F5"}, noHook: noHook})
		})
	}
}

// TestWorkersTakeTheFirstDestinationListing: the workers' destination
// connections take the first pair's listing of the destination's folders
// (FolderTeller) instead of listing them again, a round trip each: six
// folders, four workers, one LIST "" "*" at the destination. The copy is
// checked by SHA-256 as in every predialRun, and the destination Dovecot
// did not panic.
func TestWorkersTakeTheFirstDestinationListing(t *testing.T) {
	for _, noHook := range []bool{false, true} { // dialled beside the listing; after it
		t.Run(fmt.Sprintf("noHook=%v", noHook), func(t *testing.T) {
			var lists atomic.Int32
			predialRun(t, 6, predialOpts{noHook: noHook, dstLists: &lists})
			// The tap runs after the proxy wrote: let the last chunks pass.
			time.Sleep(20 * time.Millisecond)
			if n := lists.Load(); n != 1 {
				t.Errorf("the destination was listed %d times, want once (the first pair's)", n)
			}
		})
	}
}
