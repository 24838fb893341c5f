package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
	mfimap "github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// lastCommitFailer is the destination IMAP whose first whole Commit (a
// folder's last flush) reaches the server and then fails as if the
// connection dropped before the answer: the messages are there, and the
// engine must not take them as stored.
type lastCommitFailer struct {
	*mfimap.IMAP
	calls *atomic.Int32
}

func (c lastCommitFailer) Commit(ctx context.Context) ([]migrate.StoreResult, error) {
	res, err := c.IMAP.Commit(ctx)
	if c.calls.Add(1) == 1 {
		return nil, &migrate.RetryableError{Err: errors.New("test: the connection dropped before the answer")}
	}
	return res, err
}

// examineNext and statusNext are the commands that begin the folder Next:
// the source's EXAMINE (with its listing behind it), the destination's
// STATUS (behind its CREATE).
var (
	examineNext = regexp.MustCompile(`EXAMINE "?Next"?\r\n`)
	statusNext  = regexp.MustCompile(`STATUS "?Next"? \(`)
)

// TestNextFolderBegunWhileTheLastBatchIsAnswered: a worker begins its next
// folder once the folder in hand has delivered its last messages, before
// the destination answers their batch (startNext): the source's EXAMINE
// and listing, and the destination's CREATE and STATUS, go out while that
// answer travels, so that on a slow link a folder's end does not cost its
// round trips one after the other. Behind a 50 ms destination link, with
// one worker, both of Next's commands go out before INBOX's batch is
// answered. Where that answer is lost (the batch stored, the word of it
// not), INBOX is retried on fresh connections and Next copied after it:
// every message once (SHA-256), and a rerun copies none.
func TestNextFolderBegunWhileTheLastBatchIsAnswered(t *testing.T) {
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	seedInboxAndNext(t, src, "next")
	want := src.Snapshot(t, "alice")
	for _, lose := range []bool{false, true} {
		t.Run(map[bool]string{false: "answered", true: "answer lost"}[lose], func(t *testing.T) {
			dst := dovecottest.Start(t, dovecottest.Options{Separator: '.'})
			var mu sync.Mutex
			var examined, statused time.Time
			var answered []time.Time
			dproxy, err := faultproxy.New(dst.IMAPAddr(), faultproxy.Faults{Latency: 50 * time.Millisecond,
				Tap: func(conn int, dir faultproxy.Dir, b []byte) {
					mu.Lock()
					defer mu.Unlock()
					if dir == faultproxy.ClientToServer {
						if statused.IsZero() && statusNext.Match(b) {
							statused = time.Now()
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
					mu.Lock()
					defer mu.Unlock()
					if dir == faultproxy.ClientToServer && examined.IsZero() && examineNext.Match(b) {
						examined = time.Now()
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer sproxy.Close()
			var commits atomic.Int32
			run := oneWorkerRun(t, src, sproxy.Addr(), dst, dproxy.Addr(), func(m *mfimap.IMAP) migrate.Sink {
				if !lose {
					return m
				}
				return lastCommitFailer{m, &commits}
			})
			rep := run()
			if !lose && (rep.Totals.Copied != 50 || rep.Totals.Failed != 0) {
				t.Errorf("copied %d, failed %d, want 50 and 0", rep.Totals.Copied, rep.Totals.Failed)
			}
			sameSums(t, want, dst.Snapshot(t, "alice"), "INBOX", "Next")
			mu.Lock()
			switch {
			case lose:
				if commits.Load() < 2 {
					t.Errorf("%d whole commits: the lost answer never came", commits.Load())
				}
			case len(answered) == 0 || examined.IsZero() || statused.IsZero():
				t.Errorf("%d APPENDs answered, Next examined at %v, its STATUS at %v: want both commands and 2 answers", len(answered), examined, statused)
			default:
				if !examined.Before(answered[0]) || !statused.Before(answered[0]) {
					t.Errorf("Next was examined %v and its STATUS sent %v after INBOX's batch was answered: they waited for it", examined.Sub(answered[0]), statused.Sub(answered[0]))
				}
			}
			mu.Unlock()
			if rep := run(); rep.Totals.Copied != 0 || rep.Totals.Skipped != 50 {
				t.Errorf("rerun: copied %d, skipped %d, want 0 and 50", rep.Totals.Copied, rep.Totals.Skipped)
			}
		})
	}
}

// A next folder whose destination folder is the one the folder before
// wrote (--map merging two) gets no STATUS ahead (startNext): taken before
// the last batch was answered, it does not count that batch, and the next
// pass, finding the folder emptier than its index, would start the index
// afresh and empty, and copy again what the batch had just stored. With one
// worker, A then B into one destination folder, B holding 5 of A's messages
// (the same bytes): the destination holds each message once (SHA-256).
func TestNextFolderIntoTheSameDestinationTakesAFreshStatus(t *testing.T) {
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	body := func(i int) []byte {
		return []byte(fmt.Sprintf("Message-ID: <merge%d@example.org>\r\nFrom: a@example.org\r\nSubject: merge %d\r\n\r\nbody %d\r\n", i, i, i))
	}
	var seed []dovecottest.SeedMessage
	merged := map[string]int{}
	for i := range 35 {
		folder := "A"
		if i >= 25 {
			folder = "B"
		}
		seed = append(seed, dovecottest.SeedMessage{Folder: folder, Date: time.Unix(1600000000+int64(i)*3600, 0), Body: body(i)})
		if i >= 20 && i < 25 { // in both
			seed = append(seed, dovecottest.SeedMessage{Folder: "B", Date: time.Unix(1600000000+int64(i)*3600, 0), Body: body(i)})
		}
	}
	src.Seed(t, "alice", seed)
	for _, m := range src.Snapshot(t, "alice")["A"] {
		merged[m.SHA256] = 1
	}
	for _, m := range src.Snapshot(t, "alice")["B"] {
		merged[m.SHA256] = 1
	}
	dst := dovecottest.Start(t, dovecottest.Options{Separator: '.'})
	dproxy, err := faultproxy.New(dst.IMAPAddr(), faultproxy.Faults{Latency: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer dproxy.Close()
	job := migrate.Job{SourceName: "src", DestName: "dst",
		Options: migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Jobs: 1,
			PlanOptions: migrate.PlanOptions{Maps: []migrate.Mapping{{Old: []string{"B"}, New: []string{"A"}}}}},
		OpenSource: func(ctx context.Context) (migrate.Source, error) {
			return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: src.IMAPAddr(), User: "alice", Password: src.Users["alice"], TLS: mailconn.TLSNone})
		},
		OpenSink: func(ctx context.Context) (migrate.Sink, error) {
			return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: dproxy.Addr(), User: "alice", Password: dst.Users["alice"], TLS: mailconn.TLSNone})
		}}
	rep, err := migrate.Run(context.Background(), job)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if rep.Totals.Copied != 35 || rep.Totals.Failed != 0 {
		t.Errorf("copied %d, failed %d, want 35 and 0", rep.Totals.Copied, rep.Totals.Failed)
	}
	if got := sums(dst.Snapshot(t, "alice")["A"]); !reflect.DeepEqual(merged, got) {
		t.Errorf("the destination's A is not the source's A and B, each message once (SHA-256 of each message, counted): %v", got)
	}
}

// callLog is a State that notes the calls a test asks about, in order.
type callLog struct {
	migrate.State
	mu    sync.Mutex
	calls []string
}

func (s *callLog) note(c string) {
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
}

func (s *callLog) Folder(side migrate.Side, name string) (*migrate.FolderState, error) {
	s.note(fmt.Sprintf("Folder %s %q", side, name))
	return s.State.Folder(side, name)
}

func (s *callLog) SetMark(side migrate.Side, name string, validity, uidNext, messages uint32) error {
	s.note(fmt.Sprintf("SetMark %s %q", side, name))
	return s.State.SetMark(side, name, validity, uidNext, messages)
}

// TestNextFolderLedgerWaitsForItsPass: a next folder begun early
// (startNext) while the folder before still ends loads its ledger only
// once its own pass goes on, when it has one: nothing of it is sent ahead
// then (the early listing is a first copy's), and a worker that held two
// folders' ledgers at once held twice the memory of a large account's
// delta pass. With one worker, a rerun after a new message in INBOX and
// in Next reads Next's source ledger after INBOX's source mark is set (the
// end of its pass), and copies the two new messages once each (SHA-256).
func TestNextFolderLedgerWaitsForItsPass(t *testing.T) {
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	seed := func(from, to int) {
		var msgs []dovecottest.SeedMessage
		for i := from; i < to; i++ {
			folder := "INBOX"
			if i%2 == 1 {
				folder = "Next"
			}
			msgs = append(msgs, dovecottest.SeedMessage{Folder: folder, Date: time.Unix(1600000000+int64(i)*3600, 0),
				Body: []byte(fmt.Sprintf("Message-ID: <wait%d@example.org>\r\nFrom: a@example.org\r\nSubject: wait %d\r\n\r\n%0300d\r\n", i, i, i))})
		}
		src.Seed(t, "alice", msgs)
	}
	seed(0, 40)
	dst := dovecottest.Start(t, dovecottest.Options{Separator: '.'})
	path := filepath.Join(t.TempDir(), "state.db")
	run := func(st migrate.State) *migrate.Report {
		t.Helper()
		job := migrate.Job{SourceName: "src", DestName: "dst", Options: migrate.Options{StatePath: path, State: st, Jobs: 1},
			OpenSource: func(ctx context.Context) (migrate.Source, error) {
				return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: src.IMAPAddr(), User: "alice", Password: src.Users["alice"], TLS: mailconn.TLSNone})
			},
			OpenSink: func(ctx context.Context) (migrate.Sink, error) {
				return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: dst.IMAPAddr(), User: "alice", Password: dst.Users["alice"], TLS: mailconn.TLSNone})
			}}
		rep, err := migrate.Run(context.Background(), job)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return rep
	}
	if rep := run(nil); rep.Totals.Copied != 40 {
		t.Fatalf("first copy: copied %d, want 40", rep.Totals.Copied)
	}
	seed(40, 42)
	st, err := migrate.OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	log := &callLog{State: st}
	if rep := run(log); rep.Totals.Copied != 2 || rep.Totals.Failed != 0 {
		t.Errorf("rerun: copied %d, failed %d, want 2 and 0", rep.Totals.Copied, rep.Totals.Failed)
	}
	want, got := src.Snapshot(t, "alice"), dst.Snapshot(t, "alice")
	for _, folder := range []string{"INBOX", "Next"} {
		if w, g := sums(want[folder]), sums(got[folder]); !reflect.DeepEqual(w, g) {
			t.Errorf("the destination's %s differs from the source's (SHA-256 of each message, counted): %d distinct at the source, %d messages at the destination", folder, len(w), len(got[folder]))
		}
	}
	inboxMarked, nextLoaded := -1, -1
	for i, c := range log.calls {
		switch c {
		case `SetMark src "INBOX\x00INBOX"`:
			inboxMarked = i
		case `Folder src "Next\x00Next"`:
			if nextLoaded < 0 {
				nextLoaded = i
			}
		}
	}
	if inboxMarked < 0 || nextLoaded < inboxMarked {
		t.Errorf("Next's source ledger was loaded at call %d, INBOX's source mark set at call %d: want it after (calls: %q)", nextLoaded, inboxMarked, log.calls)
	}
}

// anyBodyFetch is a FETCH of message bodies, of any UID set.
var anyBodyFetch = regexp.MustCompile(`FETCH [0-9:,]+ \(UID BODY\.PEEK\[\]\)`)

// TestNextFolderFetchedWhileTheLastBatchIsAnswered: a first copy begun
// while the folder before still ends (startNext) sends its bodies' FETCH
// once its early listing is in, not once the pass goes on after the last
// batch's answer (early.go's fetchEarly): behind a 50 ms destination link,
// with one worker, Next's body FETCH goes out before INBOX's batch is
// answered (before the change, after it). Each of INBOX (30 messages)
// and Next (20) is then copied whole (SHA-256), and a rerun copies none.
// The second case has Next's destination folder hold a message already,
// which the run's listing of the destination shows: nothing is fetched
// early, and Next's copy is the same.
func TestNextFolderFetchedWhileTheLastBatchIsAnswered(t *testing.T) {
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	seed := seedInboxAndNext(t, src, "fetched")
	want := src.Snapshot(t, "alice")
	for _, held := range []bool{false, true} {
		t.Run(map[bool]string{false: "empty destination", true: "destination holds one"}[held], func(t *testing.T) {
			dst := dovecottest.Start(t, dovecottest.Options{Separator: '.'})
			if held {
				dst.Seed(t, "alice", []dovecottest.SeedMessage{{Folder: "Next", Body: seed[40].Body, Date: seed[40].Date, Flags: seed[40].Flags}})
			}
			var mu sync.Mutex
			var examined, fetched time.Time
			var answered []time.Time
			dproxy, err := faultproxy.New(dst.IMAPAddr(), faultproxy.Faults{Latency: 50 * time.Millisecond,
				Tap: func(conn int, dir faultproxy.Dir, b []byte) {
					mu.Lock()
					defer mu.Unlock()
					if dir == faultproxy.ServerToClient {
						for range bytes.Count(b, []byte("OK [APPENDUID")) {
							answered = append(answered, time.Now())
						}
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer dproxy.Close()
			sproxy, err := faultproxy.New(src.IMAPAddr(), faultproxy.Faults{
				Tap: func(conn int, dir faultproxy.Dir, b []byte) {
					mu.Lock()
					defer mu.Unlock()
					if dir != faultproxy.ClientToServer {
						return
					}
					if examined.IsZero() && examineNext.Match(b) {
						examined = time.Now()
					} else if !examined.IsZero() && fetched.IsZero() && anyBodyFetch.Match(b) {
						fetched = time.Now()
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer sproxy.Close()
			run := oneWorkerRun(t, src, sproxy.Addr(), dst, dproxy.Addr(), nil)
			rep := run()
			wantCopied := 50
			if held {
				wantCopied = 49
			}
			if rep.Totals.Copied != wantCopied || rep.Totals.Failed != 0 {
				t.Errorf("copied %d, failed %d, want %d and 0", rep.Totals.Copied, rep.Totals.Failed, wantCopied)
			}
			sameSums(t, want, dst.Snapshot(t, "alice"), "INBOX", "Next")
			mu.Lock()
			switch {
			case len(answered) == 0 || examined.IsZero() || fetched.IsZero():
				t.Errorf("%d APPENDs answered, Next examined at %v, its bodies fetched at %v: want all three", len(answered), examined, fetched)
			case !held && !fetched.Before(answered[0]):
				t.Errorf("Next's bodies were fetched %v after INBOX's batch was answered: the FETCH waited for it", fetched.Sub(answered[0]))
			case held && fetched.Before(answered[0]):
				t.Errorf("Next's bodies were fetched %v before INBOX's batch was answered, into a folder that holds mail", answered[0].Sub(fetched))
			}
			mu.Unlock()
			if rep := run(); rep.Totals.Copied != 0 {
				t.Errorf("rerun: copied %d, want 0", rep.Totals.Copied)
			}
		})
	}
}

// seedInboxAndNext gives the source 30 messages in INBOX and 20 in Next,
// their Message-IDs named after name, and returns them.
func seedInboxAndNext(t *testing.T, src *dovecottest.Server, name string) []dovecottest.SeedMessage {
	t.Helper()
	var seed []dovecottest.SeedMessage
	for i := range 50 {
		folder := "INBOX"
		if i >= 30 {
			folder = "Next"
		}
		seed = append(seed, dovecottest.SeedMessage{Folder: folder, Flags: []string{`\Seen`}, Date: time.Unix(1600000000+int64(i)*3600, 0),
			Body: []byte(fmt.Sprintf("Message-ID: <%s%d@example.org>\r\nFrom: a@example.org\r\nSubject: %s %d\r\n\r\n%0300d\r\n", name, i, name, i, i))})
	}
	src.Seed(t, "alice", seed)
	return seed
}

// oneWorkerRun returns what runs one worker from src to dst through the
// addresses given (proxies), with a state of its own kept across its
// calls; wrap, where set, gives the sink the run stores with.
func oneWorkerRun(t *testing.T, src *dovecottest.Server, srcAddr string, dst *dovecottest.Server, dstAddr string, wrap func(*mfimap.IMAP) migrate.Sink) func() *migrate.Report {
	state := filepath.Join(t.TempDir(), "state.db")
	return func() *migrate.Report {
		t.Helper()
		job := migrate.Job{SourceName: "src", DestName: "dst", Options: migrate.Options{StatePath: state, Jobs: 1, Retries: 3},
			OpenSource: func(ctx context.Context) (migrate.Source, error) {
				return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: srcAddr, User: "alice", Password: src.Users["alice"], TLS: mailconn.TLSNone})
			},
			OpenSink: func(ctx context.Context) (migrate.Sink, error) {
				m, err := mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: dstAddr, User: "alice", Password: dst.Users["alice"], TLS: mailconn.TLSNone})
				if err != nil || wrap == nil {
					return m, err
				}
				return wrap(m), nil
			}}
		rep, err := migrate.Run(context.Background(), job)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return rep
	}
}

// sameSums fails t where a folder's messages at the destination (got) are
// not the source's (want), by SHA-256, counted.
func sameSums(t *testing.T, want, got map[string][]dovecottest.MessageState, folders ...string) {
	t.Helper()
	for _, folder := range folders {
		if w, g := sums(want[folder]), sums(got[folder]); !reflect.DeepEqual(w, g) {
			t.Errorf("the destination's %s differs from the source's (SHA-256 of each message, counted): %d distinct at the source, %d messages at the destination", folder, len(w), len(got[folder]))
		}
	}
}

// TestStoppedWhileAFetchWentEarly: a run stopped (Ctrl-C) while Next's
// bodies' FETCH, sent early (fetchEarly), is unread, and INBOX's last
// batch is unanswered behind a 300 ms destination link, ends within the
// grace periods instead of hanging in go-imap's Close (which waits for
// every literal to be read); a rerun then copies what is missing and the
// destination holds every message once (SHA-256).
func TestStoppedWhileAFetchWentEarly(t *testing.T) {
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	seedInboxAndNext(t, src, "stopped")
	want := src.Snapshot(t, "alice")
	dst := dovecottest.Start(t, dovecottest.Options{Separator: '.'})
	dproxy, err := faultproxy.New(dst.IMAPAddr(), faultproxy.Faults{Latency: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer dproxy.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var examined atomic.Bool
	var stopped atomic.Int64 // when the run was stopped (UnixNano)
	sproxy, err := faultproxy.New(src.IMAPAddr(), faultproxy.Faults{
		Tap: func(conn int, dir faultproxy.Dir, b []byte) {
			if dir != faultproxy.ClientToServer {
				return
			}
			if examineNext.Match(b) {
				examined.Store(true)
			} else if examined.Load() && anyBodyFetch.Match(b) && stopped.Load() == 0 {
				stopped.Store(time.Now().UnixNano())
				cancel() // Next's FETCH went early: stop the run
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer sproxy.Close()
	state := filepath.Join(t.TempDir(), "state.db")
	job := func(ctx context.Context) error {
		_, err := migrate.Run(ctx, migrate.Job{SourceName: "src", DestName: "dst", Options: migrate.Options{StatePath: state, Jobs: 1, Retries: 3},
			OpenSource: func(ctx context.Context) (migrate.Source, error) {
				return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: sproxy.Addr(), User: "alice", Password: src.Users["alice"], TLS: mailconn.TLSNone})
			},
			OpenSink: func(ctx context.Context) (migrate.Sink, error) {
				return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: dproxy.Addr(), User: "alice", Password: dst.Users["alice"], TLS: mailconn.TLSNone})
			}})
		return err
	}
	done := make(chan error, 1)
	go func() { done <- job(ctx) }()
	select {
	case err := <-done:
		if stopped.Load() == 0 {
			t.Fatalf("the run ended (%v) before Next's FETCH went early: nothing was stopped", err)
		}
		took := time.Since(time.Unix(0, stopped.Load()))
		t.Logf("the stopped run ended %v after the stop", took.Round(time.Millisecond))
		if took > 20*time.Second {
			t.Errorf("the stopped run took %v to end", took)
		}
		if !errors.Is(err, migrate.ErrInterrupted) {
			t.Errorf("stopped run: %v, want migrate.ErrInterrupted", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the stopped run did not end: a FETCH sent early was left unread")
	}
	if err := job(context.Background()); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	sameSums(t, want, dst.Snapshot(t, "alice"), "INBOX", "Next")
}
