package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
	mfimap "github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// TestServerFactsLearnedOnce: the first caller learns, a caller meanwhile
// waits for its answer instead of asking too, one after a failure asks
// again, and the answer is kept for every later caller. A waiter whose
// context ends returns its error; a nil ServerFacts always asks.
func TestServerFactsLearnedOnce(t *testing.T) {
	ctx := context.Background()
	var f migrate.ServerFacts
	var asked atomic.Int32
	if _, err := f.Learn(ctx, func() (any, error) { asked.Add(1); return nil, errors.New("test: lost") }); err == nil {
		t.Fatal("a failed learn returned no error")
	}
	release := make(chan struct{})
	firstIn := make(chan struct{})
	got := make(chan any, 2)
	go func() {
		v, _ := f.Learn(ctx, func() (any, error) { asked.Add(1); close(firstIn); <-release; return "facts", nil })
		got <- v
	}()
	<-firstIn
	waiting, cancel := context.WithCancel(ctx)
	gave := make(chan error, 1)
	go func() {
		_, err := f.Learn(waiting, func() (any, error) { asked.Add(1); return "other", nil })
		gave <- err
	}()
	go func() {
		v, _ := f.Learn(ctx, func() (any, error) { asked.Add(1); return "other", nil })
		got <- v
	}()
	cancel()
	if err := <-gave; !errors.Is(err, context.Canceled) {
		t.Errorf("a waiter whose context ended returned %v, want context.Canceled", err)
	}
	close(release)
	for range 2 {
		if v := <-got; v != "facts" {
			t.Errorf("got %v, want the first learner's facts", v)
		}
	}
	if v, err := f.Learn(ctx, func() (any, error) { asked.Add(1); return "other", nil }); v != "facts" || err != nil {
		t.Errorf("a later caller got %v, %v; want the kept facts", v, err)
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("learn was called %d times, want 2 (the failure and the first answer)", n)
	}
	var none *migrate.ServerFacts
	if v, _ := none.Learn(ctx, func() (any, error) { return "own", nil }); v != "own" {
		t.Errorf("a nil ServerFacts gave %v, want the caller's own", v)
	}
}

// TestWorkersTakeTheFirstConnectionsSeparator: the workers' connections
// take the hierarchy separator and namespaces the first pair learned
// (migrate.ServerFacts) instead of asking each server again: with four
// workers over six folders, each side gets one LIST "" "" (the first
// pair's; at 80 ms round trip each asking delayed the folders-first CREATE
// round by a round trip). From a '/' source to a '.' destination, nested
// folders arrive under the destination's separator, every message once
// (SHA-256), and a rerun copies none.
func TestWorkersTakeTheFirstConnectionsSeparator(t *testing.T) {
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	dst := dovecottest.Start(t, dovecottest.Options{Separator: '.'})
	folders := []string{"INBOX", "Work", "Work/Sub", "Work/Sub/Deep", "Lists", "Lists/go"}
	var seed []dovecottest.SeedMessage
	for f, name := range folders {
		for i := range 3 {
			seed = append(seed, dovecottest.SeedMessage{Folder: name, Date: time.Unix(1600000000+int64(i)*60, 0),
				Body: []byte(fmt.Sprintf("Message-ID: <sep%d.%d@example.org>\r\nSubject: %d\r\n\r\nbody %d\r\n", f, i, i, f))})
		}
	}
	src.Seed(t, "alice", seed)
	discoveries := func(addr string, n *atomic.Int32) *faultproxy.Proxy {
		p, err := faultproxy.New(addr, faultproxy.Faults{Tap: func(_ int, dir faultproxy.Dir, b []byte) {
			if dir == faultproxy.ClientToServer {
				n.Add(int32(bytes.Count(b, []byte("LIST \"\" \"\"\r\n"))))
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	var srcAsked, dstAsked atomic.Int32
	sproxy, dproxy := discoveries(src.IMAPAddr(), &srcAsked), discoveries(dst.IMAPAddr(), &dstAsked)
	state := filepath.Join(t.TempDir(), "state.db")
	run := func() *migrate.Report {
		t.Helper()
		srcAsked.Store(0)
		dstAsked.Store(0)
		job := migrate.Job{SourceName: "src", DestName: "dst", Options: migrate.Options{StatePath: state, Jobs: 4},
			OpenSource: func(ctx context.Context) (migrate.Source, error) {
				return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: sproxy.Addr(), User: "alice", Password: src.Users["alice"], TLS: mailconn.TLSNone})
			},
			OpenSink: func(ctx context.Context) (migrate.Sink, error) {
				return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: dproxy.Addr(), User: "alice", Password: dst.Users["alice"], TLS: mailconn.TLSNone})
			}}
		rep, err := migrate.Run(context.Background(), job)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the tap runs after the proxy wrote
		if s, d := srcAsked.Load(), dstAsked.Load(); s != 1 || d != 1 {
			t.Errorf("LIST \"\" \"\" sent %d times to the source and %d to the destination, want once each (the first pair's)", s, d)
		}
		return rep
	}
	if rep := run(); rep.Totals.Copied != 18 || rep.Totals.Failed != 0 {
		t.Errorf("copied %d, failed %d, want 18 and 0", rep.Totals.Copied, rep.Totals.Failed)
	}
	a, b := src.Snapshot(t, "alice"), dst.Snapshot(t, "alice")
	for _, name := range folders {
		dname := name
		if name != "INBOX" {
			dname = string(bytes.ReplaceAll([]byte(name), []byte("/"), []byte(".")))
		}
		if len(a[name]) != 3 || !reflect.DeepEqual(sums(a[name]), sums(b[dname])) {
			t.Errorf("%s differs at the destination's %s (SHA-256 of each message): %d at the source, %d there", name, dname, len(a[name]), len(b[dname]))
		}
	}
	if rep := run(); rep.Totals.Copied != 0 || rep.Totals.Skipped != 18 {
		t.Errorf("rerun: copied %d, skipped %d, want 0 and 18", rep.Totals.Copied, rep.Totals.Skipped)
	}
}
