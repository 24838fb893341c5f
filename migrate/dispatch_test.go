package migrate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	mfimap "github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/memserver"
)

// listLog wraps a source connection and records the folders it lists, in
// order.
type listLog struct {
	*mfimap.IMAP
	mu     *sync.Mutex
	listed *[]string
}

func (l *listLog) Unwrap() migrate.Source { return l.IMAP }

func (l *listLog) note(f formats.Folder) {
	l.mu.Lock()
	*l.listed = append(*l.listed, f.Name)
	l.mu.Unlock()
}

func (l *listLog) List(ctx context.Context, f formats.Folder) (uint32, []formats.Message, error) {
	l.note(f)
	return l.IMAP.List(ctx, f)
}

// StartList is the listing a worker sends for its next folder while the
// one before ends.
func (l *listLog) StartList(ctx context.Context, f formats.Folder, first, last uint32) func() (uint32, []formats.Message, error) {
	l.note(f)
	return l.IMAP.StartList(ctx, f, first, last)
}

// TestWorkersTakeTheLargestFoldersFirst: with two workers the two largest
// folders are copied first, whatever the plan's order (INBOX, then by
// name), so that no worker is left with a large folder at the end; with
// --dedup account (one worker) INBOX still comes first.
func TestWorkersTakeTheLargestFoldersFirst(t *testing.T) {
	sizes := map[string]int{"INBOX": 2, "A": 1, "B": 120, "C": 5, "D": 60}
	for _, dedup := range []migrate.Dedup{migrate.DedupFolder, migrate.DedupAccount} {
		t.Run(string(dedup), func(t *testing.T) {
			src, dst := memPair(t)
			var msgs []memserver.Message
			for folder, n := range sizes {
				for i := range n {
					msgs = append(msgs, memserver.Message{Folder: folder,
						Body: []byte(fmt.Sprintf("Message-ID: <%s%d@example.org>\r\nSubject: %d\r\n\r\nbody\r\n", folder, i, i))})
				}
			}
			if err := src.Add(msgs); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var listed []string
			job := migrate.Job{SourceName: "src", DestName: "dst",
				Options: migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Jobs: 2, Dedup: dedup},
				OpenSource: func(context.Context) (migrate.Source, error) {
					m, err := dialMem(src)
					if err != nil {
						return nil, err
					}
					return &listLog{IMAP: m, mu: &mu, listed: &listed}, nil
				},
				OpenSink: func(context.Context) (migrate.Sink, error) { return dialMem(dst) },
			}
			rep, err := migrate.Run(context.Background(), job)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Totals.Copied != len(msgs) {
				t.Errorf("copied %d of %d", rep.Totals.Copied, len(msgs))
			}
			if !memSame(t, src, dst) {
				t.Errorf("the destination differs from the source (SHA-256, flags, dates)")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(listed) != len(sizes) {
				t.Fatalf("listed %q, want each of the %d folders once", listed, len(sizes))
			}
			first := map[string]bool{listed[0]: true, listed[1]: true}
			switch {
			case dedup == migrate.DedupAccount && listed[0] != "INBOX":
				t.Errorf("one worker (--dedup account) listed %q: INBOX must come first", listed)
			case dedup != migrate.DedupAccount && (!first["B"] || !first["D"]):
				t.Errorf("two workers listed %q: the largest two, B and D, must come first", listed)
			}
		})
	}
}
