package migrate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	mfimap "github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/memserver"
)

// creationLog wraps a destination connection and records which folders
// EnsureAll created and which Ensure found missing.
type creationLog struct {
	*mfimap.IMAP
	mu      *sync.Mutex
	created map[string]bool // by EnsureAll
	late    *[]string       // Ensure of a folder EnsureAll had not created
}

func (c *creationLog) Unwrap() migrate.Sink { return c.IMAP }

func (c *creationLog) EnsureAll(ctx context.Context, paths [][]string) error {
	c.mu.Lock()
	for _, p := range paths {
		c.created[strings.Join(p, "/")] = true
	}
	c.mu.Unlock()
	return c.IMAP.EnsureAll(ctx, paths)
}

func (c *creationLog) Ensure(ctx context.Context, path []string) (formats.Folder, error) {
	c.mu.Lock()
	if name := strings.Join(path, "/"); !c.created[name] && !formats.IsInbox(path) {
		*c.late = append(*c.late, name)
	}
	c.mu.Unlock()
	return c.IMAP.Ensure(ctx, path)
}

// TestNewFoldersCreatedBeforeTheWorkers: with several workers, every
// destination folder the run needs is created on one connection before any
// worker's pass (Dovecot 2.3.19 sessions crash on CREATEs side by side, and
// the folder may then be missing from its LIST: createfirst.go), and the
// copy is whole.
func TestNewFoldersCreatedBeforeTheWorkers(t *testing.T) {
	src, dst := memPair(t)
	var msgs []memserver.Message
	for i := range 24 {
		msgs = append(msgs, memserver.Message{Folder: fmt.Sprintf("P%02d/Notes", i%12),
			Body: []byte(fmt.Sprintf("Message-ID: <cf%d@example.org>\r\nSubject: %d\r\n\r\nbody\r\n", i, i))})
	}
	if err := src.Add(msgs); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	created, late := map[string]bool{}, []string{}
	job := migrate.Job{SourceName: "src", DestName: "dst",
		Options:    migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Jobs: 4},
		OpenSource: func(context.Context) (migrate.Source, error) { return dialMem(src) },
		OpenSink: func(context.Context) (migrate.Sink, error) {
			m, err := dialMem(dst)
			if err != nil {
				return nil, err
			}
			return &creationLog{IMAP: m, mu: &mu, created: created, late: &late}, nil
		},
	}
	rep, err := migrate.Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Copied != 24 {
		t.Errorf("copied %d of 24", rep.Totals.Copied)
	}
	for i := range 12 {
		if name := fmt.Sprintf("P%02d/Notes", i); !created[name] {
			t.Errorf("%s was not created before the workers started", name)
		}
	}
	if len(late) > 0 {
		t.Errorf("folders a worker's pass found missing: %q", late)
	}
	if !memSame(t, src, dst) {
		t.Errorf("the destination differs from the source (SHA-256, flags, dates)")
	}
}
