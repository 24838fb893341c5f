package migrate_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
	mfimap "github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// A first copy into an IMAP destination connects the MULTIAPPEND
// connection while the source is listed (StorePreparer), not at the
// first Store: on a slow link its greeting and login would otherwise
// wait until the first body had arrived. When the source's first body
// FETCH goes out, the destination has already accepted its second
// connection; and every message arrives once.
func TestFirstCopyConnectsItsAppenderEarly(t *testing.T) {
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	dst := dovecottest.Start(t, dovecottest.Options{Separator: '.'})
	var seed []dovecottest.SeedMessage
	for i := range 30 {
		seed = append(seed, dovecottest.SeedMessage{Folder: "INBOX", Date: time.Unix(1600000000, 0),
			Body: []byte(fmt.Sprintf("Message-ID: <early%d@example.org>\r\nSubject: early %d\r\n\r\nbody\r\n", i, i))})
	}
	src.Seed(t, "alice", seed)
	dstProxy, err := faultproxy.New(dst.IMAPAddr(), faultproxy.Faults{})
	if err != nil {
		t.Fatal(err)
	}
	defer dstProxy.Close()
	var mu sync.Mutex
	connsAtFetch := -1 // the destination's connections when the first body FETCH went out
	srcProxy, err := faultproxy.New(src.IMAPAddr(), faultproxy.Faults{Tap: func(_ int, dir faultproxy.Dir, b []byte) {
		if dir != faultproxy.ClientToServer || !bytes.Contains(b, []byte("BINARY.PEEK[]")) && !bytes.Contains(b, []byte("BODY.PEEK[]")) {
			return
		}
		n, _ := dstProxy.Stats()
		mu.Lock()
		if connsAtFetch < 0 {
			connsAtFetch = n
		}
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srcProxy.Close()
	job := migrate.Job{SourceName: "src", DestName: "dst",
		Options: migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Jobs: 1},
		OpenSource: func(ctx context.Context) (migrate.Source, error) {
			return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: srcProxy.Addr(), User: "alice", Password: src.Users["alice"], TLS: mailconn.TLSNone})
		},
		OpenSink: func(ctx context.Context) (migrate.Sink, error) {
			return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: dstProxy.Addr(), User: "alice", Password: dst.Users["alice"], TLS: mailconn.TLSNone})
		},
	}
	rep, err := migrate.Run(context.Background(), job)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if rep.Totals.Copied != 30 {
		t.Errorf("copied %d, want 30", rep.Totals.Copied)
	}
	mu.Lock()
	defer mu.Unlock()
	if connsAtFetch < 2 {
		t.Errorf("the destination had %d connections when the source's first body FETCH went out, want 2 (the appender connected beside the listing)", connsAtFetch)
	}
	want, got := sums(src.Snapshot(t, "alice")["INBOX"]), sums(dst.Snapshot(t, "alice")["INBOX"])
	if fmt.Sprint(want) != fmt.Sprint(got) {
		t.Errorf("the destination's INBOX differs from the source's by SHA-256: %d distinct, want %d", len(got), len(want))
	}
}
