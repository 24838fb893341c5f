package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mailferry/mailferry/archive"
	"github.com/mailferry/mailferry/migrate"
)

// localStores opens the Maildir or mbox store of one endpoint, once per
// engine worker. Where the store keeps an integrity manifest (every
// directory archive mailferry writes, and any that already has one), the
// workers' stores share one manifest chain through archive.Writer.Share.
type localStores struct {
	ep     *endpoint
	create bool // a destination: make the root if missing

	mu   sync.Mutex
	root *archive.Writer // the first live Writer, others Share it
	live int
	last string // the chain head when the last Writer closed
}

// manifestDir is where the manifest lives, or "" for a store that has none
// (a single .mbox file).
func (l *localStores) manifestDir() string {
	if l.ep.scheme == "mbox" && strings.HasSuffix(l.ep.path, ".mbox") {
		if st, err := os.Stat(l.ep.path); err != nil || !st.IsDir() {
			return ""
		}
	}
	return l.ep.path
}

func (l *localStores) openStore() (archive.Store, error) {
	switch l.ep.scheme {
	case "maildir":
		return archive.OpenMaildir(l.ep.path, archive.MaildirOptions{Create: l.create})
	default:
		return archive.OpenMbox(l.ep.path, archive.MboxOptions{Create: l.create})
	}
}

// open returns a store for one worker: the manifest Writer over it where
// there is (or, for a destination, will be) a manifest, else the bare store.
func (l *localStores) open(ctx context.Context) (archive.Store, error) {
	st, err := l.openStore()
	if err != nil {
		return nil, err
	}
	dir := l.manifestDir()
	if dir == "" {
		return st, nil
	}
	if !l.create {
		if _, err := os.Stat(filepath.Join(dir, archive.ManifestFile)); errors.Is(err, fs.ErrNotExist) {
			return st, nil // a foreign Maildir or mbox tree: read it as it is
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var w *archive.Writer
	if l.live == 0 {
		if w, err = archive.NewWriter(dir, st); err != nil {
			st.Close()
			return nil, err
		}
		l.root = w
	} else {
		w = l.root.Share(st)
	}
	l.live++
	return &sharedWriter{Writer: w, l: l}, nil
}

// lastHash is the manifest chain's head after the run ("" without manifest).
func (l *localStores) lastHash() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live > 0 {
		return l.root.LastHash()
	}
	return l.last
}

// sharedWriter counts live Writers so that the next open after the last
// Close starts a new one.
type sharedWriter struct {
	*archive.Writer
	l *localStores
}

func (s *sharedWriter) Close() error {
	s.l.mu.Lock()
	s.l.last = s.Writer.LastHash()
	s.l.live--
	s.l.mu.Unlock()
	return s.Writer.Close()
}

var (
	_ migrate.Source  = archive.Store(nil)
	_ migrate.Sink    = archive.Store(nil)
	_ migrate.Flusher = archive.Store(nil)
)
