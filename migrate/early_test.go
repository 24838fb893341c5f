package migrate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	mfimap "github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/memserver"
)

// listingSource notes each folder the source was asked to list.
type listingSource struct {
	*mfimap.IMAP
	mu     sync.Mutex
	listed map[string]chan struct{}
}

func (s *listingSource) started(f formats.Folder) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.listed[f.Name]
	if !ok {
		ch = make(chan struct{})
		s.listed[f.Name] = ch
	}
	return ch
}

func (s *listingSource) note(f formats.Folder) {
	ch := s.started(f)
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (s *listingSource) List(ctx context.Context, f formats.Folder) (uint32, []formats.Message, error) {
	s.note(f)
	return s.IMAP.List(ctx, f)
}

func (s *listingSource) ListUIDs(ctx context.Context, f formats.Folder, first, last uint32) (uint32, []formats.Message, error) {
	s.note(f)
	return s.IMAP.ListUIDs(ctx, f, first, last)
}

// waitingSink holds each Ensure until the source folder's listing has
// begun.
type waitingSink struct {
	*mfimap.IMAP
	src    *listingSource
	mu     sync.Mutex
	missed []string
}

func (d *waitingSink) Ensure(ctx context.Context, path []string) (formats.Folder, error) {
	select {
	case <-d.src.started(formats.Folder{Name: formats.DisplayName(path)}):
	case <-time.After(5 * time.Second):
		d.mu.Lock()
		d.missed = append(d.missed, formats.DisplayName(path))
		d.mu.Unlock()
	}
	return d.IMAP.Ensure(ctx, path)
}

// A first copy lists the source folder beside making the destination
// folder (early.go): a round trip less per folder on a slow link. The
// destination's Ensure here waits for the source listing to begin; a pass
// that listed only after it would wait 5 s and be named. A folder copied
// in windows starts with its first window, a small one with the whole
// folder; either way every message arrives once.
func TestFirstCopyListsBesideTheDestination(t *testing.T) {
	defer migrate.SetWindowSize(50)()
	src, dst := memPair(t)
	var msgs []memserver.Message
	for i := range 160 {
		folder := "INBOX" // 120 messages: three windows of 50
		if i >= 120 {
			folder = "Small"
		}
		msgs = append(msgs, memserver.Message{Folder: folder, Flags: []string{`\Seen`},
			Body: []byte(fmt.Sprintf("Message-ID: <e%d@example.org>\r\nFrom: a@example.org\r\nSubject: early %d\r\n\r\nbody %d\r\n", i, i, i))})
	}
	if err := src.Add(msgs); err != nil {
		t.Fatal(err)
	}
	ls := &listingSource{listed: map[string]chan struct{}{}}
	ws := &waitingSink{src: ls}
	job := migrate.Job{SourceName: "src", DestName: "dst",
		Options: migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Jobs: 1},
		OpenSource: func(context.Context) (migrate.Source, error) {
			m, err := dialMem(src)
			ls.IMAP = m
			return ls, err
		},
		OpenSink: func(context.Context) (migrate.Sink, error) {
			m, err := dialMem(dst)
			ws.IMAP = m
			return ws, err
		},
	}
	rep, err := migrate.Run(context.Background(), job)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(ws.missed) > 0 {
		t.Errorf("the destination folder was made before the source listing began for %q", ws.missed)
	}
	if rep.Totals.Copied != 160 || rep.Totals.Failed != 0 {
		t.Errorf("copied %d, failed %d, want 160 and 0", rep.Totals.Copied, rep.Totals.Failed)
	}
	if !memSame(t, src, dst) {
		t.Errorf("the destination differs from the source (SHA-256, flags, dates)")
	}
}
