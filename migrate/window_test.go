package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
	mfimap "github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/mailconn"
	"github.com/mailferry/mailferry/migrate/memserver"
)

// batchWatcher is the source IMAP, noting the largest listing and the
// largest batch fetched at once, per folder.
type batchWatcher struct {
	*mfimap.IMAP
	mu              sync.Mutex
	listed, fetched map[string]int
	ahead           int // listings sent ahead (AheadLister)
}

func (b *batchWatcher) note(m map[string]int, f formats.Folder, n int) {
	b.mu.Lock()
	m[f.Name] = max(m[f.Name], n)
	b.mu.Unlock()
}

func (b *batchWatcher) List(ctx context.Context, f formats.Folder) (uint32, []formats.Message, error) {
	v, msgs, err := b.IMAP.List(ctx, f)
	b.note(b.listed, f, len(msgs))
	return v, msgs, err
}

func (b *batchWatcher) ListUIDs(ctx context.Context, f formats.Folder, first, last uint32) (uint32, []formats.Message, error) {
	v, msgs, err := b.IMAP.ListUIDs(ctx, f, first, last)
	b.note(b.listed, f, len(msgs))
	return v, msgs, err
}

func (b *batchWatcher) ListUIDsAhead(ctx context.Context, f formats.Folder, first, last uint32) func() (uint32, []formats.Message, error) {
	wait := b.IMAP.ListUIDsAhead(ctx, f, first, last)
	if wait == nil {
		return nil
	}
	b.mu.Lock()
	b.ahead++
	b.mu.Unlock()
	return func() (uint32, []formats.Message, error) {
		v, msgs, err := wait()
		b.note(b.listed, f, len(msgs))
		return v, msgs, err
	}
}

func (b *batchWatcher) Fetch(ctx context.Context, f formats.Folder, msgs []formats.Message, fn func(formats.Message, io.Reader) error) error {
	b.note(b.fetched, f, len(msgs))
	return b.IMAP.Fetch(ctx, f, msgs, fn)
}

// memPair starts two in-memory IMAP servers with alice (password "pw"),
// closed when the test ends.
func memPair(t *testing.T) (src, dst *memserver.Server) {
	t.Helper()
	for _, s := range []**memserver.Server{&src, &dst} {
		var err error
		if *s, err = memserver.Start("alice", "pw"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { (*s).Close() })
	}
	return src, dst
}

// dialMem logs in to an in-memory server of memPair.
func dialMem(s *memserver.Server) (*mfimap.IMAP, error) {
	return mfimap.DialIMAP(context.Background(), mailconn.ServerConfig{Addr: s.Addr, User: "alice", Password: "pw", TLS: mailconn.TLSNone})
}

// runMem runs a copy from the source openSrc opens into the in-memory
// server dst (a connection per worker), with the state at state and jobs
// workers; an error ends the test.
func runMem(t *testing.T, state string, jobs int, dst *memserver.Server, openSrc func(context.Context) (migrate.Source, error)) *migrate.Report {
	t.Helper()
	job := migrate.Job{SourceName: "src", DestName: "dst", Options: migrate.Options{StatePath: state, Jobs: jobs},
		OpenSource: openSrc,
		OpenSink:   func(context.Context) (migrate.Sink, error) { return dialMem(dst) },
	}
	rep, err := migrate.Run(context.Background(), job)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return rep
}

// memSame reports whether two in-memory servers hold the same messages
// (SHA-256, flags, dates) in the same folders.
func memSame(t *testing.T, src, dst *memserver.Server) bool {
	t.Helper()
	a, err := src.Dump()
	if err != nil {
		t.Fatal(err)
	}
	b, err := dst.Dump()
	if err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(a, b)
}

// TestLargeFolderCopiedInWindows: a first copy of a folder larger than a
// window lists and fetches it a window at a time (no batch above the
// window's size), the destination holds the same bytes, flags and dates,
// the counts are the folder's, and a rerun (same state, then none) copies
// nothing.
func TestLargeFolderCopiedInWindows(t *testing.T) {
	defer migrate.SetWindowSize(40)()
	src, dst := memPair(t)
	var msgs []memserver.Message
	base := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range 230 {
		folder, flags := "INBOX", []string{`\Seen`}
		if i%7 == 0 {
			flags = []string{`\Flagged`, "$Work"}
		}
		if i >= 200 {
			folder = "Small"
		}
		msgs = append(msgs, memserver.Message{Folder: folder, Flags: flags, Date: base.Add(time.Duration(i) * time.Hour),
			Body: []byte(fmt.Sprintf("Message-ID: <w%d@example.org>\r\nFrom: a@example.org\r\nSubject: window %d\r\n\r\nbody %d\r\n", i, i, i))})
	}
	if err := src.Add(msgs); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.db")
	run := func() (*migrate.Report, *batchWatcher) {
		w := &batchWatcher{listed: map[string]int{}, fetched: map[string]int{}}
		rep := runMem(t, state, 1, dst, func(context.Context) (migrate.Source, error) {
			m, err := dialMem(src)
			w.IMAP = m
			return w, err
		})
		return rep, w
	}
	rep, w := run()
	if w.listed["INBOX"] > 40 || w.fetched["INBOX"] > 40 || w.listed["INBOX"] == 0 {
		t.Errorf("INBOX (200 messages) listed at most %d at once and fetched %d, want at most the window's 40", w.listed["INBOX"], w.fetched["INBOX"])
	}
	if w.ahead != 4 {
		t.Errorf("%d windows of INBOX listed ahead of their turn, want 4 (all but the first of 5)", w.ahead)
	}
	for _, f := range rep.Folders {
		want := map[string]int{"INBOX": 200, "Small": 30}[f.Source]
		if f.Found != want || f.Copied != want || f.Skipped != 0 || f.Failed != 0 {
			t.Errorf("%s: found %d copied %d skipped %d failed %d, want %d found and copied", f.Source, f.Found, f.Copied, f.Skipped, f.Failed, want)
		}
	}
	if !memSame(t, src, dst) {
		t.Fatalf("the destination differs from the source (SHA-256, flags, dates)")
	}
	if rep, _ := run(); rep.Totals.Copied != 0 || rep.Totals.Skipped != 230 {
		t.Errorf("rerun: copied %d, skipped %d, want 0 and 230", rep.Totals.Copied, rep.Totals.Skipped)
	}
	os.Remove(state)
	if rep, _ := run(); rep.Totals.Copied != 0 || rep.Totals.Skipped != 230 {
		t.Errorf("rerun without state: copied %d, skipped %d, want 0 and 230", rep.Totals.Copied, rep.Totals.Skipped)
	}
}

// TestWindowsWidenAsWorkersFinish: with four workers, a large folder's
// windows span windowSize while the others copy, and four times that once
// the three small folders are done (windowSpan), never more; the
// destination holds the same bytes, flags and dates, and a rerun copies
// nothing.
// widthWatcher is a source IMAP connection (one per worker) noting in
// widest the widest range of UIDs a listing asked for, per folder.
type widthWatcher struct {
	*mfimap.IMAP
	mu     *sync.Mutex
	widest map[string]uint32
}

func (w widthWatcher) note(f formats.Folder, first, last uint32) {
	w.mu.Lock()
	w.widest[f.Name] = max(w.widest[f.Name], last-first+1)
	w.mu.Unlock()
}

func (w widthWatcher) ListUIDs(ctx context.Context, f formats.Folder, first, last uint32) (uint32, []formats.Message, error) {
	w.note(f, first, last)
	return w.IMAP.ListUIDs(ctx, f, first, last)
}

func (w widthWatcher) ListUIDsAhead(ctx context.Context, f formats.Folder, first, last uint32) func() (uint32, []formats.Message, error) {
	w.note(f, first, last)
	return w.IMAP.ListUIDsAhead(ctx, f, first, last)
}

// TestWindowsWidenAsWorkersFinish: with four workers, a large folder's
// windows span windowSize while the others copy, and four times that once
// the three small folders are done (windowSpan), never more; the
// destination holds the same bytes, flags and dates, and a rerun copies
// nothing.
func TestWindowsWidenAsWorkersFinish(t *testing.T) {
	defer migrate.SetWindowSize(40)()
	src, dst := memPair(t)
	var msgs []memserver.Message
	base := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range 1615 {
		folder := "INBOX"
		if i >= 1600 {
			folder = fmt.Sprintf("Small%d", i%3)
		}
		msgs = append(msgs, memserver.Message{Folder: folder, Flags: []string{`\Seen`}, Date: base.Add(time.Duration(i) * time.Minute),
			Body: []byte(fmt.Sprintf("Message-ID: <wide%d@example.org>\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i, i))})
	}
	if err := src.Add(msgs); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.db")
	run := func() (*migrate.Report, map[string]uint32) {
		var mu sync.Mutex
		widest := map[string]uint32{}
		rep := runMem(t, state, 4, dst, func(context.Context) (migrate.Source, error) {
			m, err := dialMem(src)
			return widthWatcher{m, &mu, widest}, err
		})
		return rep, widest
	}
	rep, widest := run()
	if widest["INBOX"] != 160 {
		t.Errorf("INBOX (1,600 messages) listed at most %d UIDs at once, want 160: four windows of 40 once the three other workers are done", widest["INBOX"])
	}
	if rep.Totals.Copied != 1615 || rep.Totals.Failed != 0 {
		t.Errorf("copied %d, failed %d, want 1615 and 0", rep.Totals.Copied, rep.Totals.Failed)
	}
	if !memSame(t, src, dst) {
		t.Fatalf("the destination differs from the source (SHA-256, flags, dates)")
	}
	if rep, _ := run(); rep.Totals.Copied != 0 || rep.Totals.Skipped != 1615 {
		t.Errorf("rerun: copied %d, skipped %d, want 0 and 1615", rep.Totals.Copied, rep.Totals.Skipped)
	}
}

// A window's listing goes out before the window before it is transferred
// (AheadLister). The source connection is cut in the middle of the copy,
// whatever is in flight then (a listing sent ahead, bodies): the pass is
// resumed on a new connection, and the destination ends with every
// message once, bytes, flags and dates as at the source.
func TestWindowsListedAheadSurviveACut(t *testing.T) {
	defer migrate.SetWindowSize(40)()
	src, _ := memPair(t)
	var msgs []memserver.Message
	for i := range 400 {
		msgs = append(msgs, memserver.Message{Folder: "INBOX", Flags: []string{`\Seen`},
			Body: []byte(fmt.Sprintf("Message-ID: <cut%d@example.org>\r\nFrom: a@example.org\r\nSubject: cut %d\r\n\r\n%0300d\r\n", i, i, i))})
	}
	if err := src.Add(msgs); err != nil {
		t.Fatal(err)
	}
	for _, at := range []int64{20_000, 70_000} { // in the first windows, and later
		t.Run(fmt.Sprint(at), func(t *testing.T) {
			dst, err := memserver.Start("alice", "pw")
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			proxy, err := faultproxy.New(src.Addr, faultproxy.Faults{CutAfterBytes: faultproxy.Cut{
				Min: at, Max: at, Dir: faultproxy.ServerToClient, P: 1, FirstConns: 1, MaxCuts: 1}})
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			job := migrate.Job{SourceName: "src", DestName: "dst",
				Options: migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Retries: 3},
				OpenSource: func(ctx context.Context) (migrate.Source, error) {
					return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: proxy.Addr(), User: "alice", Password: "pw", TLS: mailconn.TLSNone})
				},
				OpenSink: func(context.Context) (migrate.Sink, error) { return dialMem(dst) },
			}
			rep, err := migrate.Run(context.Background(), job)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if _, cuts := proxy.Stats(); cuts != 1 {
				t.Errorf("%d cuts, want 1", cuts)
			}
			if rep.Totals.Copied != 400 || rep.Totals.Failed != 0 {
				t.Errorf("copied %d, failed %d, want 400 and 0", rep.Totals.Copied, rep.Totals.Failed)
			}
			if !memSame(t, src, dst) {
				t.Errorf("the destination differs from the source (SHA-256, flags, dates)")
			}
		})
	}
}

// windowedSource starts a source Dovecot whose INBOX holds 200 messages of
// about 600 bytes (five windows of 40), and returns it with the SHA-256
// sums of its messages.
func windowedSource(t *testing.T, tag string) (*dovecottest.Server, map[string]int) {
	t.Helper()
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	var seed []dovecottest.SeedMessage
	for i := range 200 {
		seed = append(seed, dovecottest.SeedMessage{Folder: "INBOX", Flags: []string{`\Seen`}, Date: time.Unix(1600000000+int64(i)*3600, 0),
			Body: []byte(fmt.Sprintf("Message-ID: <%s%d@example.org>\r\nFrom: a@example.org\r\nSubject: %s %d\r\n\r\n%0500d\r\n", tag, i, tag, i, i))})
	}
	src.Seed(t, "alice", seed)
	return src, sums(src.Snapshot(t, "alice")["INBOX"])
}

// runWindowed runs a copy from the source openSrc opens into the sink
// openDst opens, with the state at state and three retries; an error
// ends the test.
func runWindowed(t *testing.T, state string, openSrc func(context.Context) (migrate.Source, error),
	openDst func(context.Context) (migrate.Sink, error)) *migrate.Report {
	t.Helper()
	job := migrate.Job{SourceName: "src", DestName: "dst", Options: migrate.Options{StatePath: state, Retries: 3},
		OpenSource: openSrc, OpenSink: openDst}
	rep, err := migrate.Run(context.Background(), job)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return rep
}

// At a window's end the newest MULTIAPPEND batch stays in flight while the
// next window is listed and fetched (its messages are recorded by the next
// window's transfer), so on a slow link the destination does not wait a
// round trip at every window. On Dovecot (MULTIAPPEND, LITERAL+) behind a
// 30 ms link: some APPEND goes out while an earlier one is unanswered
// (with a full wait at each window's end, every window's one batch went
// out alone), and the destination ends with every message once, byte for
// byte, every one counted as copied, and a rerun copies none; also when
// the source's connection is cut in the middle of the copy.
func TestWindowEndLeavesTheNewestBatchInFlight(t *testing.T) {
	defer migrate.SetWindowSize(40)()
	src, want := windowedSource(t, "carry")
	for _, cut := range []int64{0, 80_000} { // none; in the fourth window
		t.Run(fmt.Sprintf("cut at %d", cut), func(t *testing.T) {
			dst := dovecottest.Start(t, dovecottest.Options{Separator: '.'})
			// APPENDs sent and answered per connection; most is the most
			// unanswered when another went out.
			var mu sync.Mutex
			sent, answered := map[int]int{}, map[int]int{}
			most := 0
			proxy, err := faultproxy.New(dst.IMAPAddr(), faultproxy.Faults{Latency: 15 * time.Millisecond,
				Tap: func(conn int, dir faultproxy.Dir, b []byte) {
					mu.Lock()
					defer mu.Unlock()
					if dir == faultproxy.ClientToServer {
						if n := bytes.Count(b, []byte(` APPEND "`)); n > 0 {
							most = max(most, sent[conn]-answered[conn])
							sent[conn] += n
						}
					} else {
						answered[conn] += bytes.Count(b, []byte("OK [APPENDUID"))
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			srcAddr := src.IMAPAddr()
			if cut > 0 {
				cutter, err := faultproxy.New(srcAddr, faultproxy.Faults{CutAfterBytes: faultproxy.Cut{
					Min: cut, Max: cut, Dir: faultproxy.ServerToClient, P: 1, FirstConns: 1, MaxCuts: 1}})
				if err != nil {
					t.Fatal(err)
				}
				defer cutter.Close()
				defer func() {
					if _, cuts := cutter.Stats(); cuts != 1 {
						t.Errorf("%d cuts, want 1", cuts)
					}
				}()
				srcAddr = cutter.Addr()
			}
			state := filepath.Join(t.TempDir(), "state.db")
			run := func() *migrate.Report {
				return runWindowed(t, state, func(ctx context.Context) (migrate.Source, error) {
					return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: srcAddr, User: "alice", Password: src.Users["alice"], TLS: mailconn.TLSNone})
				}, func(ctx context.Context) (migrate.Sink, error) {
					return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: proxy.Addr(), User: "alice", Password: dst.Users["alice"], TLS: mailconn.TLSNone})
				})
			}
			if rep := run(); rep.Totals.Copied != 200 || rep.Totals.Failed != 0 {
				t.Errorf("copied %d, failed %d, want 200 and 0", rep.Totals.Copied, rep.Totals.Failed)
			}
			mu.Lock()
			if most < 1 {
				t.Errorf("every APPEND went out with none unanswered (%v sent): each window waited for the one before", sent)
			}
			mu.Unlock()
			got := sums(dst.Snapshot(t, "alice")["INBOX"])
			if !reflect.DeepEqual(want, got) {
				t.Errorf("the destination's INBOX differs from the source's (SHA-256 of each message, counted): %d distinct at the source, %d at the destination", len(want), len(got))
			}
			if rep := run(); rep.Totals.Copied != 0 || rep.Totals.Skipped != 200 {
				t.Errorf("rerun: copied %d, skipped %d, want 0 and 200", rep.Totals.Copied, rep.Totals.Skipped)
			}
		})
	}
}

// startCounter is the source IMAP, counting the Fetches it started ahead
// (migrate.FetchStarter).
type startCounter struct {
	*mfimap.IMAP
	started *atomic.Int32
}

func (s startCounter) StartFetch(f formats.Folder, msgs []formats.Message) func(context.Context, func(formats.Message, io.Reader) error) error {
	fetch := s.IMAP.StartFetch(f, msgs)
	if fetch != nil {
		s.started.Add(1)
	}
	return fetch
}

// commitFailer is the destination IMAP whose partial commit number failAt
// (counted over the run) fails as a lost connection would, after the
// batch was sent.
type commitFailer struct {
	*mfimap.IMAP
	calls  *atomic.Int32
	failAt int32
	carry  bool // else a full window's end always waits (as on a fast link)
}

func (c commitFailer) CarryBatch() bool { return c.carry && c.IMAP.CarryBatch() }

func (c commitFailer) CommitSome(ctx context.Context) ([]migrate.StoreResult, error) {
	if c.calls.Add(1) == c.failAt {
		return nil, &migrate.RetryableError{Err: errors.New("test: the connection dropped before the answer")}
	}
	return c.IMAP.CommitSome(ctx)
}

// listFetch is the listing of a window, with its first UID.
var listFetch = regexp.MustCompile(`UID FETCH (\d+):\d+ \(UID (?:FLAGS|INTERNALDATE|RFC822\.SIZE)`)

// bodyFetch is a body FETCH of a window, with its first UID.
var bodyFetch = regexp.MustCompile(`UID FETCH (\d+):\d+ \(UID BODY\.PEEK\[\]\)`)

// TestNextWindowFetchedWhileTheLastBatchIsAnswered: when a full window
// ends (its last message made the batch that the window's end waits for),
// the next window's bodies are asked for before that batch is answered,
// so that on a slow link a window does not cost a round trip of the
// source's besides the destination's. Behind a 50 ms destination link,
// each window's body FETCH after the first goes out more than 15 ms
// before the answer to the last APPEND sent before it, and the listing of
// the window after it beside it. Where the window's batch stays in flight
// (BatchCarrier), its end still waits for the batch before it, and the
// next window's FETCH goes out before that wait: window k's before batch
// k-2's answer (waiting first put the source's round trip behind the
// destination's answer at every window of a large folder). And when that
// wait fails, the FETCH already sent is read away and the retried pass
// copies every message once.
func TestNextWindowFetchedWhileTheLastBatchIsAnswered(t *testing.T) {
	defer migrate.SetWindowSize(40)()
	defer migrate.SetFlushEvery(40)()
	src, want := windowedSource(t, "next")
	for _, tc := range []struct {
		name   string
		failAt int32 // the partial commit that fails (0: none)
		carry  bool
	}{
		{"waits", 0, false},
		{"carries", 0, true},       // a slow link: the batch stays in flight (BatchCarrier)
		{"wait fails", 4, false},   // the wait at the second window's end
		{"carried fails", 3, true}, // the partial commit that reads a carried batch's answer
	} {
		failAt := tc.failAt
		t.Run(tc.name, func(t *testing.T) {
			dst := dovecottest.Start(t, dovecottest.Options{Separator: '.'})
			// When each window's body FETCH went out, and when each APPEND
			// (a window's batch) was answered; overlapped counts the APPENDs
			// that reached the server while one sent before was unanswered.
			var mu sync.Mutex
			var answered []time.Time
			appends, overlapped := 0, 0
			type fetchSent struct {
				at     time.Time
				window int
			}
			var fetches, listings []fetchSent
			dproxy, err := faultproxy.New(dst.IMAPAddr(), faultproxy.Faults{Latency: 25 * time.Millisecond,
				Tap: func(conn int, dir faultproxy.Dir, b []byte) {
					mu.Lock()
					defer mu.Unlock()
					if dir == faultproxy.ClientToServer {
						for range bytes.Count(b, []byte(` APPEND "`)) {
							if appends > len(answered) {
								overlapped++
							}
							appends++
						}
						return
					}
					for range bytes.Count(b, []byte("OK [APPENDUID")) {
						answered = append(answered, time.Now())
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer dproxy.Close()
			sproxy, err := faultproxy.New(src.IMAPAddr(), faultproxy.Faults{
				Tap: func(conn int, dir faultproxy.Dir, b []byte) {
					if dir != faultproxy.ClientToServer {
						return
					}
					for _, m := range bodyFetch.FindAllSubmatch(b, -1) {
						first, _ := strconv.Atoi(string(m[1]))
						mu.Lock()
						fetches = append(fetches, fetchSent{at: time.Now(), window: (first - 1) / 40})
						mu.Unlock()
					}
					for _, m := range listFetch.FindAllSubmatch(b, -1) {
						first, _ := strconv.Atoi(string(m[1]))
						mu.Lock()
						listings = append(listings, fetchSent{at: time.Now(), window: (first - 1) / 40})
						mu.Unlock()
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer sproxy.Close()
			var started, commits atomic.Int32
			state := filepath.Join(t.TempDir(), "state.db")
			run := func() *migrate.Report {
				return runWindowed(t, state, func(ctx context.Context) (migrate.Source, error) {
					m, err := mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: sproxy.Addr(), User: "alice", Password: src.Users["alice"], TLS: mailconn.TLSNone})
					if err != nil {
						return nil, err
					}
					return startCounter{m, &started}, nil
				}, func(ctx context.Context) (migrate.Sink, error) {
					m, err := mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: dproxy.Addr(), User: "alice", Password: dst.Users["alice"], TLS: mailconn.TLSNone})
					if err != nil {
						return nil, err
					}
					return commitFailer{m, &commits, failAt, tc.carry}, nil
				})
			}
			if rep := run(); rep.Totals.Copied != 200 || rep.Totals.Failed != 0 {
				t.Errorf("copied %d, failed %d, want 200 and 0", rep.Totals.Copied, rep.Totals.Failed)
			}
			got := sums(dst.Snapshot(t, "alice")["INBOX"])
			if !reflect.DeepEqual(want, got) {
				t.Errorf("the destination's INBOX differs from the source's (SHA-256 of each message, counted): %d distinct at the source, %d at the destination", len(want), len(got))
			}
			switch {
			case tc.carry && failAt > 0:
				if commits.Load() < failAt {
					t.Errorf("%d partial commits: the failure at the %dth never came", commits.Load(), failAt)
				}
			case tc.carry:
				// A window's batch stays in flight while the next
				// window's goes out.
				mu.Lock()
				if overlapped == 0 {
					t.Errorf("every one of %d APPENDs reached the destination with none before it unanswered: each window waited for the one before", appends)
				}
				// And the next window's bodies are asked for before the
				// window's end waits for the batch before its own: window
				// k's FETCH before batch k-2's answer. Waiting first, each
				// went out after it (by 1-2 ms); asking first, 50-60 ms
				// before it for windows 2 and 4, and 2-8 ms for window 3,
				// whose batch went out just behind window 2's: so 2 of 3 are
				// asked, not all.
				early, later := 0, 0
				for _, f := range fetches {
					if f.window < 2 {
						continue
					}
					later++
					if f.window-2 < len(answered) && answered[f.window-2].After(f.at) {
						early++
					}
				}
				if later != 3 || early < 2 || len(answered) != 5 {
					t.Errorf("%d of %d body FETCHes from the third window on went out before the destination answered the batch two windows before (%d batches answered; want 2 or 3 of 3, and 5): they waited for it", early, later, len(answered))
				}
				mu.Unlock()
			case failAt == 0:
				mu.Lock()
				early, later := 0, 0
				for _, f := range fetches {
					if f.window == 0 {
						continue
					}
					later++
					// The window before's batch is answer number f.window.
					if f.window <= len(answered) && answered[f.window-1].Sub(f.at) > 15*time.Millisecond {
						early++
					}
				}
				// A window's listing goes out with the body FETCH of the
				// window before it: before the answer for the one before that.
				earlyLists, laterLists := 0, 0
				for _, l := range listings {
					if l.window < 2 {
						continue
					}
					laterLists++
					if l.window-1 <= len(answered) && answered[l.window-2].Sub(l.at) > 15*time.Millisecond {
						earlyLists++
					}
				}
				mu.Unlock()
				if later != 4 || early != later || len(answered) != 5 {
					t.Errorf("%d of %d body FETCHes after the first window's went out before the destination answered the window before (%d batches answered; want 4 of 4, and 5)", early, later, len(answered))
				}
				if laterLists != 3 || earlyLists != laterLists {
					t.Errorf("%d of %d listings of the third window on went out before the destination answered the window two before (want 3 of 3)", earlyLists, laterLists)
				}
			case started.Load() == 0:
				t.Errorf("no window's FETCH was started ahead: the failure did not meet one")
			}
			if rep := run(); rep.Totals.Copied != 0 || rep.Totals.Skipped != 200 {
				t.Errorf("rerun: copied %d, skipped %d, want 0 and 200", rep.Totals.Copied, rep.Totals.Skipped)
			}
		})
	}
}
