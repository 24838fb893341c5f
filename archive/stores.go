package archive

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mailferry/mailferry/formats"
)

// Stores opens the Maildir or mbox store at one path, once per engine
// worker. Where the store keeps an integrity manifest (every directory
// archive mailferry writes, and any that already has one), the workers'
// stores share one manifest chain (Writer.Share), and the last one closed
// leaves the chain's head for LastHash.
type Stores struct {
	Format string // "maildir" or "mbox"
	Path   string
	Create bool // a destination: make the root if missing
	// Warn, if set, receives what a store had to guess while reading a
	// tree another program wrote (see MaildirOptions.Warn; an mbox file's
	// ambiguous framing, a file that is not an mbox: "mbox: FILE: ..."),
	// from every worker's store: the same warning may come more than once.
	Warn func(msg string)

	mu   sync.Mutex
	root *Writer // the first live Writer, others Share it
	live int
	last string // the chain head when the last Writer closed
}

// manifestDir is where the manifest lives, or "" for a store that has none
// (a single mbox file: one that exists, or a path ending in ".mbox").
func (l *Stores) manifestDir() string {
	if l.Format == "mbox" {
		st, err := os.Stat(l.Path)
		if err == nil && st.Mode().IsRegular() || err != nil && strings.HasSuffix(l.Path, ".mbox") {
			return ""
		}
	}
	return l.Path
}

func (l *Stores) openStore() (Store, error) {
	switch l.Format {
	case "maildir":
		return OpenMaildir(l.Path, MaildirOptions{Create: l.Create, Warn: l.Warn})
	default:
		return OpenMbox(l.Path, MboxOptions{Create: l.Create, Warn: l.warnMbox})
	}
}

// warnMbox passes an mbox store's warning on to Warn.
func (l *Stores) warnMbox(file string, w formats.MboxWarning) {
	if l.Warn == nil {
		return
	}
	msg := "mbox: " + file + ": " + w.String()
	if w.Index < 0 {
		msg = "mbox: " + file + ": " + w.Reason
	}
	l.Warn(msg)
}

// Open returns a store for one worker: the manifest Writer over it where
// there is (or, for a destination, will be) a manifest, else the bare store.
func (l *Stores) Open(ctx context.Context) (Store, error) {
	st, err := l.openStore()
	if err != nil {
		return nil, err
	}
	dir := l.manifestDir()
	if dir == "" {
		return st, nil
	}
	if !l.Create {
		if _, err := os.Stat(filepath.Join(dir, ManifestFile)); errors.Is(err, fs.ErrNotExist) {
			return st, nil // a foreign Maildir or mbox tree: read it as it is
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var w *Writer
	if l.live == 0 {
		if w, err = NewWriter(dir, st); err != nil {
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

// LastHash is the manifest chain's head after the run ("" without manifest).
func (l *Stores) LastHash() string {
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
	*Writer
	l *Stores
}

func (s *sharedWriter) Close() error {
	s.l.mu.Lock()
	s.l.last = s.Writer.LastHash()
	s.l.live--
	s.l.mu.Unlock()
	return s.Writer.Close()
}
