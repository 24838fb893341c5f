package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

func (c *creationLog) EnsureAll(ctx context.Context, paths [][]string) ([]formats.Folder, error) {
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

// orderLog records, in order, what a run asked of its source's listings and
// its destination's folder creation and store.
type orderLog struct {
	mu     sync.Mutex
	events []string
}

func (o *orderLog) add(ev string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, ev)
}

// listingLog is a source connection that logs each listing asked of it.
type listingLog struct {
	*mfimap.IMAP
	log *orderLog
}

func (l *listingLog) Unwrap() migrate.Source { return l.IMAP }

func (l *listingLog) List(ctx context.Context, f formats.Folder) (uint32, []formats.Message, error) {
	l.log.add("list " + f.Name)
	return l.IMAP.List(ctx, f)
}

func (l *listingLog) ListUIDs(ctx context.Context, f formats.Folder, first, last uint32) (uint32, []formats.Message, error) {
	l.log.add("list " + f.Name)
	return l.IMAP.ListUIDs(ctx, f, first, last)
}

func (l *listingLog) StartList(ctx context.Context, f formats.Folder, first, last uint32) func() (uint32, []formats.Message, error) {
	l.log.add("list " + f.Name)
	return l.IMAP.StartList(ctx, f, first, last)
}

// destLog is a destination connection that logs its folder creation and
// the getting ready to store.
type destLog struct {
	*mfimap.IMAP
	log *orderLog
}

func (d *destLog) Unwrap() migrate.Sink { return d.IMAP }

func (d *destLog) EnsureAll(ctx context.Context, paths [][]string) ([]formats.Folder, error) {
	made, err := d.IMAP.EnsureAll(ctx, paths)
	d.log.add("created")
	return made, err
}

func (d *destLog) Ensure(ctx context.Context, path []string) (formats.Folder, error) {
	d.log.add("ensure " + strings.Join(path, "/"))
	return d.IMAP.Ensure(ctx, path)
}

func (d *destLog) PrepareStore(ctx context.Context) {
	d.log.add("prepare")
	d.IMAP.PrepareStore(ctx)
}

// TestFirstListingsTravelWhileFoldersAreCreated: each worker's first
// folder's listing is sent on its source connection before the run creates
// the destination's folders (createfirst.go), so that on a slow link the
// two round trips overlap; no worker's Ensure comes before (only the
// connection it stores with is dialled) nor after (not even INBOX's, which
// exists), and the copy is whole. So
// also where both sides name one user on one host, once the run has told
// them two mailboxes (as the benchmark's two Dovecots on 127.0.0.1 are).
func TestFirstListingsTravelWhileFoldersAreCreated(t *testing.T) {
	for _, maybeSame := range []bool{false, true} {
		t.Run(fmt.Sprintf("MaybeSameAccount=%v", maybeSame), func(t *testing.T) {
			firstListingsBeforeCreation(t, maybeSame)
		})
	}
}

func firstListingsBeforeCreation(t *testing.T, maybeSame bool) {
	src, dst := memPair(t)
	var msgs []memserver.Message
	for i := range 36 {
		folder := fmt.Sprintf("F%02d", i%12)
		if i%12 == 0 {
			folder = "INBOX" // there already: a first folder counted in the round
		}
		msgs = append(msgs, memserver.Message{Folder: folder,
			Body: []byte(fmt.Sprintf("Message-ID: <fl%d@example.org>\r\nSubject: %d\r\n\r\nbody\r\n", i, i))})
	}
	if err := src.Add(msgs); err != nil {
		t.Fatal(err)
	}
	log := &orderLog{}
	job := migrate.Job{SourceName: "src", DestName: "dst", MaybeSameAccount: maybeSame,
		Options: migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Jobs: 4},
		OpenSource: func(context.Context) (migrate.Source, error) {
			m, err := dialMem(src)
			if err != nil {
				return nil, err
			}
			return &listingLog{IMAP: m, log: log}, nil
		},
		OpenSink: func(context.Context) (migrate.Sink, error) {
			m, err := dialMem(dst)
			if err != nil {
				return nil, err
			}
			return &destLog{IMAP: m, log: log}, nil
		},
	}
	rep, err := migrate.Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Copied != 36 || rep.Totals.Failed != 0 {
		t.Errorf("copied %d, failed %d, want 36 and 0", rep.Totals.Copied, rep.Totals.Failed)
	}
	log.mu.Lock()
	events := slices.Clone(log.events)
	log.mu.Unlock()
	created := slices.Index(events, "created")
	if created < 0 {
		t.Fatalf("the run created no folder first: %q", events)
	}
	listed := 0
	for _, ev := range events[:created] {
		switch {
		case strings.HasPrefix(ev, "list "):
			listed++
		case ev != "created" && ev != "prepare":
			t.Errorf("%q before the folders were created: %q", ev, events)
		}
	}
	if listed != 4 {
		t.Errorf("%d listings sent before the folders were created, want 4 (a worker's first folder each): %q", listed, events)
	}
	// Each pass takes the folder createFirst made, with its counts, for
	// the CREATE and STATUS of an Ensure of its own; INBOX's first pass
	// the STATUS createFirst sent with them.
	for _, ev := range events[created:] {
		if strings.HasPrefix(ev, "ensure ") {
			t.Errorf("%q after createFirst made every folder: %q", ev, events)
		}
	}
	if !memSame(t, src, dst) {
		t.Errorf("the destination differs from the source (SHA-256, flags, dates)")
	}
}

// answerLost is a destination connection whose first Store into folder
// loses its answer: the message is stored, then the connection breaks.
type answerLost struct {
	*mfimap.IMAP
	folder string
	lost   *atomic.Bool
}

func (a *answerLost) Unwrap() migrate.Sink { return a.IMAP }

func (a *answerLost) Store(ctx context.Context, f formats.Folder, m formats.Message, size int64, body io.Reader) (string, error) {
	id, err := a.IMAP.Store(ctx, f, m, size, body)
	if err == nil && f.Name == a.folder && a.lost.CompareAndSwap(false, true) {
		a.IMAP.Close()
		return "", &migrate.RetryableError{Err: errors.New("answer lost")}
	}
	return id, err
}

// TestPassTriedAgainTakesNoCountsFromTheRound: a folder the CREATE round
// made is counted by the first pass into it however that pass counts it
// (the round's STATUS, or its own sent ahead when the worker began it
// early); a pass tried again must not take the round's counts, from before
// the first pass stored anything. Here every worker's last folder is begun
// early, and its first message's answer is lost after the message was
// stored: the pass tried again must find it, and copy nothing twice.
func TestPassTriedAgainTakesNoCountsFromTheRound(t *testing.T) {
	for _, folder := range []string{"F05", "F04", "F03"} {
		t.Run(folder, func(t *testing.T) {
			src, dst := memPair(t)
			var msgs []memserver.Message
			for i := range 18 {
				msgs = append(msgs, memserver.Message{Folder: fmt.Sprintf("F%02d", i%6),
					Body: []byte(fmt.Sprintf("Message-ID: <tr%d@example.org>\r\nSubject: %d\r\n\r\nbody\r\n", i, i))})
			}
			if err := src.Add(msgs); err != nil {
				t.Fatal(err)
			}
			var lost atomic.Bool
			job := migrate.Job{SourceName: "src", DestName: "dst",
				Options:    migrate.Options{StatePath: filepath.Join(t.TempDir(), "state.db"), Jobs: 2},
				OpenSource: func(context.Context) (migrate.Source, error) { return dialMem(src) },
				OpenSink: func(context.Context) (migrate.Sink, error) {
					m, err := dialMem(dst)
					if err != nil {
						return nil, err
					}
					return &answerLost{IMAP: m, folder: folder, lost: &lost}, nil
				},
			}
			if _, err := migrate.Run(context.Background(), job); err != nil {
				t.Fatal(err)
			}
			if !lost.Load() {
				t.Fatalf("no answer into %s was lost", folder)
			}
			if !memSame(t, src, dst) {
				t.Errorf("the destination differs from the source (SHA-256, flags, dates): a message copied twice or lost")
			}
		})
	}
}
