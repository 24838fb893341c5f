package migrate_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/mailferry/mailferry/archive"
	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/memserver"
)

// listCounter counts the folder listings of a local store.
type listCounter struct {
	*archive.Maildir
	n *atomic.Int32
}

func (c listCounter) Folders(ctx context.Context) ([]formats.Folder, error) {
	c.n.Add(1)
	return c.Maildir.Folders(ctx)
}

// TestLocalSinkListedOncePerRun: a local store is listed by the run, not
// again by each worker's new connection as an IMAP sink is (a Maildir's
// listing counts every message file: four workers over a million-message
// archive read a million names five times on a rerun that copied nothing).
func TestLocalSinkListedOncePerRun(t *testing.T) {
	src, _ := memPair(t)
	var msgs []memserver.Message
	for i := range 24 {
		msgs = append(msgs, memserver.Message{Folder: fmt.Sprintf("F%02d", i%12),
			Body: []byte(fmt.Sprintf("Message-ID: <ls%d@example.org>\r\nSubject: %d\r\n\r\nbody\r\n", i, i))})
	}
	if err := src.Add(msgs); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	var n atomic.Int32
	job := migrate.Job{SourceName: "src", DestName: "dst",
		Options:    migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Jobs: 4},
		OpenSource: func(context.Context) (migrate.Source, error) { return dialMem(src) },
		OpenSink: func(context.Context) (migrate.Sink, error) {
			st, err := archive.OpenMaildir(root, archive.MaildirOptions{Create: true})
			if err != nil {
				return nil, err
			}
			return listCounter{st, &n}, nil
		},
	}
	rep, err := migrate.Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Copied != 24 {
		t.Fatalf("copied %d of 24", rep.Totals.Copied)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("the Maildir's folders were listed %d times in a run with 4 workers, want once", got)
	}
}
