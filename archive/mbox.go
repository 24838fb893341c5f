package archive

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// mbox layout, as this store reads and writes it (mboxname.go has the
// details and the reasons):
//
//	ROOT/MANIFEST.jsonl       the manifest (manifest.go)
//	ROOT/mail/inbox           INBOX
//	ROOT/mail/A               folder [A]
//	ROOT/mail/A/B             folder [A B]; [A] itself may not exist (then
//	                          it is listed as a NoSelect tree node)
//	ROOT/mail/A/.B.len.lock   the known-good length of A/B (ours only)
//
// ROOT/mail is a Dovecot mbox root as Dovecot lays one out (names in
// modified UTF-7), so "mail_location = mbox:ROOT/mail" serves the archive.
// An archive of an earlier version (ROOT/INBOX.mbox, ROOT/A/B.mbox and
// NAME.mbox.len beside each) is read and appended to in its own layout;
// anyone else's directory of mbox files is read with every file that
// starts like an mbox as a folder. When the path given to OpenMbox is a
// regular file (any name), that one file is the store's only folder,
// INBOX.
//
// Each component is encoded (encodeMboxComponent) so that a hostile server
// name cannot leave ROOT and no folder's file or directory can be mistaken
// for another's or for a length record.
//
// Messages are framed in mboxrd by formats.WriteMboxMessage, which adds
// nothing to a message's bytes that the reader does not take away again:
// what Fetch gives back is exactly what Store was given. For other mail
// programs it adds, and records on the From_ line ("mailferry:h=H,t=T")
// that it added: the flags as Status / X-Status / X-Keywords lines right
// after the From_ line (H bytes: mutt, Dovecot and Python show the flags;
// on a file's first message Dovecot's X-IMAPbase line comes first, see
// DeclareKeywords),
// and, after a message that does not end in a newline, that line ending
// (T bytes), so that a blank line precedes every From_ line. The reader
// takes exactly those bytes away (formats.MboxEntry.Status, Added); the
// manifest's size and SHA-256 are those of the original bytes, its offset
// that of the From_ line. Files written before the token existed (no token:
// only the one LF before the next From_ line was added) read as before. The
// From_ line carries the internal date (UTC, to the second) and the
// Return-Path address when the header has one. On reading, a message's
// flags are those of its status lines, or, without them (another program's
// file), those of its own Status, X-Status and X-Keywords headers. A
// message's ID is the decimal byte offset of its From_ line.
//
// Durability (the design's "the length that is known good is recorded, and
// an interrupted append is cut back on the next open"): the sidecar
// (.NAME.len.lock, or an earlier version's NAME.mbox.len) holds one line, "mailferry-mbox v1 length=N pending=P".
// Before the first append of a batch it is rewritten with pending=1 (and
// made durable); Flush fsyncs the mbox and then records the new length with
// pending=0. Whoever next opens the file, finding pending=1 and a file
// longer than N, knows that the bytes past N are an append that was never
// confirmed, and cuts the file back to N (under the lock, so never under a
// live writer's feet). A file longer than N with pending=0 was appended to
// by another program after a clean Flush: that is kept. Appends hold
// flock(LOCK_EX|LOCK_NB) on the mbox from the first Store until Close;
// another process holding the lock makes Store fail with ErrMboxLocked.
// The sidecar is replaced by write-to-temporary, fsync, rename and fsync of
// the directory, so it is always either the old or the new record.

// MboxOptions tunes OpenMbox.
type MboxOptions struct {
	// Create makes the root directory (or, for a path ending in ".mbox",
	// that single file's parent directory) if it does not exist. Without
	// it a missing root is an error.
	Create bool
	// ReadOnly never changes anything on disk: Ensure and Store fail, and
	// an interrupted append found on reading is skipped, not cut back.
	ReadOnly bool
	// Warn, if set, receives each warning about ambiguous framing met while
	// reading a file (see formats.MboxWarning), with the file's path
	// relative to the root. Warnings are also kept; see Warnings.
	Warn func(file string, w formats.MboxWarning)
}

// ErrMboxLocked is returned (wrapped) by Store when another process holds
// the lock of the folder's mbox file.
var ErrMboxLocked = errors.New("mbox: locked by another process")

// mboxSuffix and mboxLenSuffix end folder files and their sidecars.
const (
	mboxSuffix    = ".mbox"
	mboxLenSuffix = ".len"
)

// Mbox is a directory of mbox files (or one mbox file) used as a source or
// a sink (archive.Store). Like every endpoint it is used by one goroutine
// at a time; several Mbox values may work on the same tree at once, each on
// its own folders (a folder written by one is locked against the others).
type Mbox struct {
	root   string // absolute: the directory, or the single file
	tree   string // absolute: the directory holding the folder files
	legacy bool   // an earlier version's archive: new folders are NAME.mbox
	single bool
	opts   MboxOptions

	open     map[string]*mboxFile // files opened for appending, by relative path
	kinds    map[string]foreignKind
	warnings []string
	warned   map[string]bool

	declMu   sync.Mutex
	declared map[string][]string // keywords to declare, by folder path (DeclareKeywords)
}

// mboxFile is a folder file opened for appending, locked.
type mboxFile struct {
	rel     string // relative to the root, slash-separated
	abs     string
	f       *os.File
	size    int64 // where the next message goes
	good    int64 // the length recorded in the sidecar
	pending bool  // the sidecar durably says pending=1
	dirty   bool  // appended since the last Flush
	broken  error // set when a failed append could not be undone
}

var _ Store = (*Mbox)(nil)

// OpenMbox opens the mbox store at path: a directory of mbox files (see the
// layout above), or, when path is a regular file (or, to be made, ends in
// ".mbox"), that single file as INBOX. See MboxOptions.
func OpenMbox(path string, opts MboxOptions) (*Mbox, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("mbox: %w", err)
	}
	s := &Mbox{root: abs, opts: opts, open: map[string]*mboxFile{}, warned: map[string]bool{}}
	fi, err := os.Stat(abs)
	switch {
	case err == nil && fi.IsDir():
	case err == nil && fi.Mode().IsRegular():
		s.single = true
	case err == nil:
		return nil, fmt.Errorf("mbox: %s is neither a directory nor a file", path)
	case errors.Is(err, fs.ErrNotExist) && opts.Create && !opts.ReadOnly:
		s.single = strings.HasSuffix(abs, mboxSuffix)
		dir := abs
		if s.single {
			dir = filepath.Dir(abs)
		}
		if err := mkdirAllSynced(dir); err != nil {
			return nil, fmt.Errorf("mbox: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("mbox: %w", err)
	}
	if !s.single {
		s.tree, s.legacy = mboxLayout(abs)
	}
	return s, nil
}

// Root returns the absolute path of the store (directory or single file).
func (s *Mbox) Root() string { return s.root }

// Warnings returns every warning met so far, each once, as
// "FILE: mboxrd: message N at offset O: REASON".
func (s *Mbox) Warnings() []string { return slices.Clone(s.warnings) }

func (s *Mbox) warn(rel string, w formats.MboxWarning) {
	msg := rel + ": " + w.String()
	if w.Index < 0 { // about the file, not one message
		msg = rel + ": mbox: " + w.Reason
	}
	if s.warned[msg] {
		return
	}
	s.warned[msg] = true
	s.warnings = append(s.warnings, msg)
	if s.opts.Warn != nil {
		s.opts.Warn(rel, w)
	}
}

// Separator returns '/'. Components are not joined with a separator the
// engine needs to know about: each is encoded for the file system, so any
// character may appear in a component.
func (s *Mbox) Separator() rune { return '/' }

// canonicalPath spells INBOX as "INBOX" in the first component.
func canonicalPath(path []string) []string {
	p := slices.Clone(path)
	if len(p) > 0 && strings.EqualFold(p[0], "INBOX") {
		p[0] = "INBOX"
	}
	return p
}

// mboxName returns the store's name of a folder path: the encoded
// components joined with '/' ("INBOX", "A/B"), its file being NAME.mbox.
func mboxName(path []string) (string, error) {
	if len(path) == 0 {
		return "", errors.New("mbox: empty folder path")
	}
	enc := make([]string, len(path))
	for i, c := range canonicalPath(path) {
		enc[i] = formats.EncodeFSComponent(c)
	}
	return strings.Join(enc, "/"), nil
}

// fileOf resolves a folder to its file relative to the root: by Name when
// set (the store's own spelling, as Folders and Ensure return it: the file
// relative to the tree, or "INBOX"; it may name a file another program
// made), else by Path. A Name that could leave the tree is refused. For a
// single-file store only INBOX exists.
func (s *Mbox) fileOf(f formats.Folder) (string, error) {
	if s.single {
		if f.Name == "INBOX" || (f.Name == "" && formats.IsInbox(f.Path)) {
			return filepath.Base(s.root), nil
		}
		return "", fmt.Errorf("mbox: %s holds only INBOX, not %q", s.root, folderLabel(f))
	}
	name, err := s.treeFile(f)
	if err != nil {
		return "", err
	}
	if !filepath.IsLocal(filepath.FromSlash(name)) || strings.ContainsRune(name, 0) || strings.HasSuffix(name, "/") ||
		filepath.ToSlash(filepath.Clean(filepath.FromSlash(name))) != name {
		return "", fmt.Errorf("mbox: bad folder name %q", name)
	}
	if s.tree == s.root {
		return name, nil
	}
	return mboxMailDir + "/" + name, nil
}

// treeFile is the folder's file relative to the tree (see fileOf).
func (s *Mbox) treeFile(f formats.Folder) (string, error) {
	switch {
	case f.Name == "INBOX" || f.Name == "" && formats.IsInbox(f.Path):
		return s.inboxFile(), nil
	case f.Name != "":
		for _, c := range []string{f.Name, f.Name + mboxSuffix} {
			if s.isFile(c) {
				return c, nil
			}
		}
		if s.legacy && !strings.HasSuffix(f.Name, mboxSuffix) {
			return f.Name + mboxSuffix, nil
		}
		return f.Name, nil
	case len(f.Path) == 0:
		return "", errors.New("mbox: empty folder path")
	case s.legacy:
		name, err := mboxName(f.Path)
		if err == nil && !s.isFile(name+mboxSuffix) {
			if alt := s.resolve(f.Path); s.isFile(alt) {
				return alt, nil
			}
		}
		return name + mboxSuffix, err
	}
	return s.resolve(f.Path), nil
}

// inboxFile is INBOX's file: the one that exists, else Dovecot's "inbox"
// (an earlier version's archive: INBOX.mbox).
func (s *Mbox) inboxFile() string {
	for _, c := range []string{mboxInboxFile, "INBOX", "INBOX" + mboxSuffix, "Inbox"} {
		if s.isFile(c) {
			return c
		}
	}
	if s.legacy {
		return "INBOX" + mboxSuffix
	}
	return mboxInboxFile
}

// resolve finds the file of a folder path (not INBOX) in the tree, each
// component spelled as this version or an earlier one writes it, with or
// without ".mbox"; what does not exist yet is spelled as this version
// writes it, with ".mbox" added where a file and a directory would clash.
func (s *Mbox) resolve(path []string) string {
	path = canonicalPath(path)
	dir := ""
	for i, c := range path {
		last := i == len(path)-1
		names := []string{encodeMboxComponent(c)}
		if old := formats.EncodeFSComponent(c); old != names[0] {
			names = append(names, old)
		}
		if i == 0 && c == "INBOX" {
			names = []string{"INBOX"}
		}
		p := ""
	find:
		for _, n := range names {
			for _, cand := range []string{n, n + mboxSuffix} {
				cand = pathJoin(dir, cand)
				if last && s.isFile(cand) || !last && s.isDir(cand) {
					p = cand
					break find
				}
			}
		}
		if p == "" {
			p = pathJoin(dir, names[0])
			if s.exists(p) { // a file where a directory goes, or the reverse
				p += mboxSuffix
			}
		}
		dir = p
	}
	return dir
}

func pathJoin(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func (s *Mbox) stat(rel string) (fs.FileInfo, bool) {
	fi, err := os.Lstat(filepath.Join(s.tree, filepath.FromSlash(rel)))
	return fi, err == nil
}

func (s *Mbox) isFile(rel string) bool { fi, ok := s.stat(rel); return ok && fi.Mode().IsRegular() }
func (s *Mbox) isDir(rel string) bool  { fi, ok := s.stat(rel); return ok && fi.IsDir() }
func (s *Mbox) exists(rel string) bool { _, ok := s.stat(rel); return ok }

func folderLabel(f formats.Folder) string {
	if len(f.Path) > 0 {
		return formats.DisplayName(f.Path)
	}
	return f.Name
}

func (s *Mbox) abs(rel string) string {
	if s.single {
		return s.root
	}
	return filepath.Join(s.root, filepath.FromSlash(rel))
}

// Folders lists the folders: every file of the tree that starts like an
// mbox (see the layout), parents before children (INBOX first), with
// Validity and Bytes filled. A directory that holds folders but has no file
// of its own is listed with NoSelect. A name that is not a canonical
// encoding (made by another program) keeps its raw spelling as the
// component. Hidden entries, "*.lock" files and symbolic links are skipped;
// any other file that is not an mbox is skipped with a warning, and so is a
// second file for the same folder.
func (s *Mbox) Folders(ctx context.Context) ([]formats.Folder, error) {
	if s.single {
		fi, err := os.Stat(s.root)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("mbox: %w", err)
		}
		return []formats.Folder{s.folderInfo(formats.Folder{Path: []string{"INBOX"}, Name: "INBOX"}, filepath.Base(s.root), fi)}, nil
	}
	byKey := map[string]*formats.Folder{}
	var out []*formats.Folder
	add := func(f formats.Folder) {
		k := strings.Join(f.Path, "\x00")
		if old, ok := byKey[k]; ok {
			switch {
			case old.NoSelect && !f.NoSelect:
				*old = f
			case !f.NoSelect:
				s.warn(f.Name, formats.MboxWarning{Index: -1, Reason: fmt.Sprintf("also folder %q, which %s holds; left out", formats.DisplayName(f.Path), old.Name)})
			}
			return
		}
		p := &f
		byKey[k] = p
		out = append(out, p)
	}
	err := filepath.WalkDir(s.tree, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == s.tree {
			return filepath.SkipDir // a fresh archive: no folder yet
		}
		if err != nil {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if p == s.tree {
			return nil
		}
		if mboxTreeSkip(d.Name(), filepath.Dir(p) == s.tree, s.tree == s.root) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		trel, err := filepath.Rel(s.tree, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(trel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() > 0 && !looksLikeMbox(p) {
			s.warn(name, formats.MboxWarning{Index: -1, Reason: "not an mbox file (no From_ line at its start); skipped"})
			return nil
		}
		comps := folderOfFile(name)
		if formats.IsInbox(comps) {
			name = "INBOX"
		}
		rel, err := s.fileOf(formats.Folder{Name: name})
		if err != nil {
			return err
		}
		add(s.folderInfo(formats.Folder{Path: comps, Name: name}, rel, fi))
		parts := strings.Split(name, "/")
		for i := 1; i < len(comps); i++ {
			add(formats.Folder{Path: slices.Clone(comps[:i]), Name: strings.Join(parts[:i], "/"), NoSelect: true, Validity: 1})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mbox: %w", err)
	}
	slices.SortFunc(out, func(a, b *formats.Folder) int { return formats.ComparePaths(a.Path, b.Path) })
	res := make([]formats.Folder, len(out))
	for i, f := range out {
		res[i] = *f
	}
	return res, nil
}

// folderInfo fills Validity and Bytes (the file's readable length).
func (s *Mbox) folderInfo(f formats.Folder, rel string, fi os.FileInfo) formats.Folder {
	s.removeSidecarTemp(rel)
	f.Validity = mboxValidity(fi)
	f.Uncounted = true // counting means reading the whole file
	f.Bytes = fi.Size()
	if mf := s.open[rel]; mf != nil {
		f.Bytes = mf.size
	} else if sc, ok, err := readMboxSidecar(s.abs(rel)); err == nil && ok && sc.pending && sc.length < f.Bytes {
		f.Bytes = sc.length
	}
	return f
}

// mboxValidity derives a folder's validity from the file's identity (device
// and inode): offsets stay valid while the file is only appended to, and a
// file replaced by another program gets a new validity. Never 0.
func mboxValidity(fi os.FileInfo) uint32 {
	h := fnv.New32a()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		fmt.Fprintf(h, "%d:%d", st.Dev, st.Ino)
	}
	if v := h.Sum32(); v != 0 {
		return v
	}
	return 1
}

// Ensure creates the folder's directories (0700) and file (0600) if they do
// not exist, with a sidecar recording length 0; what it creates is fsynced.
// mboxEnsureMu serialises Ensure over all mbox stores (see Ensure).
var mboxEnsureMu sync.Mutex

func (s *Mbox) Ensure(ctx context.Context, path []string) (formats.Folder, error) {
	if err := ctx.Err(); err != nil {
		return formats.Folder{}, err
	}
	if s.opts.ReadOnly {
		return formats.Folder{}, errors.New("mbox: store is read-only")
	}
	path = canonicalPath(path)
	// Where a folder's file goes depends on what exists (a file and a
	// directory of one name clash: resolve), so the naming and the
	// creating happen under one lock for every store of the process:
	// workers ensure Work and Work/Sub at the same time, each with its own
	// store over the same tree.
	mboxEnsureMu.Lock()
	defer mboxEnsureMu.Unlock()
	f := formats.Folder{Path: path, Name: "INBOX"}
	if s.single && !formats.IsInbox(path) {
		return formats.Folder{}, fmt.Errorf("mbox: %s holds only INBOX, not %q", s.root, formats.DisplayName(path))
	}
	if !s.single && !formats.IsInbox(path) {
		var err error
		if f.Name, err = s.treeFile(formats.Folder{Path: path}); err != nil {
			return formats.Folder{}, err
		}
	}
	rel, err := s.fileOf(f)
	if err != nil {
		return formats.Folder{}, err
	}
	abs := s.abs(rel)
	if err := mkdirAllSynced(filepath.Dir(abs)); err != nil {
		return formats.Folder{}, fmt.Errorf("mbox: %w", err)
	}
	fh, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		// Locked while its sidecar is written, as every sidecar write is:
		// removeSidecarTemp leaves the temporary file of a locked file alone.
		err = syscall.Flock(int(fh.Fd()), syscall.LOCK_EX)
		if err == nil {
			err = fh.Sync()
		}
		if err == nil {
			err = writeMboxSidecar(abs, mboxSidecar{})
		}
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return formats.Folder{}, fmt.Errorf("mbox: %w", err)
		}
	case errors.Is(err, fs.ErrExist):
	default:
		return formats.Folder{}, fmt.Errorf("mbox: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return formats.Folder{}, fmt.Errorf("mbox: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return formats.Folder{}, fmt.Errorf("mbox: %s is not a regular file", rel)
	}
	return s.folderInfo(f, rel, fi), nil
}

// readView is an open folder file for reading: r covers the readable bytes.
type readView struct {
	rel   string
	ours  bool        // the file has a sidecar: written by this store
	kind  foreignKind // how another program's file is read (mboxforeign.go)
	r     io.ReaderAt
	limit int64
	close func() error
}

// view opens a folder's file for reading, up to its known-good end: the
// appending handle when this store holds it, else a new descriptor, after
// cutting back an interrupted append (see the layout comment).
func (s *Mbox) view(folder formats.Folder) (*readView, error) {
	rel, err := s.fileOf(folder)
	if err != nil {
		return nil, err
	}
	if mf := s.open[rel]; mf != nil {
		_, ours, err := readMboxSidecar(mf.abs)
		if err != nil {
			return nil, err
		}
		return s.withKind(&readView{rel: rel, ours: ours, r: mf.f, limit: mf.size, close: func() error { return nil }}), nil
	}
	abs := s.abs(rel)
	if err := s.recover(rel); err != nil {
		return nil, err
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("mbox: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mbox: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("mbox: %s is not a regular file", rel)
	}
	limit := fi.Size()
	sc, ours, err := readMboxSidecar(abs)
	if err != nil {
		f.Close()
		return nil, err
	}
	if ours && sc.pending && sc.length < limit {
		// A live writer's unconfirmed batch, or a read-only store.
		limit = sc.length
	}
	return s.withKind(&readView{rel: rel, ours: ours, r: f, limit: limit, close: f.Close}), nil
}

// withKind fills v.kind for another program's file.
func (s *Mbox) withKind(v *readView) *readView {
	if !v.ours {
		v.kind = s.foreignKind(v)
	}
	return v
}

// recover cuts back an interrupted append of a file this store does not
// hold: if the sidecar says pending and the file is longer than recorded,
// and nobody holds the lock, the file is truncated to the recorded length.
func (s *Mbox) recover(rel string) error {
	if s.opts.ReadOnly {
		return nil
	}
	abs := s.abs(rel)
	sc, ok, err := readMboxSidecar(abs)
	if err != nil || !ok || !sc.pending {
		return err
	}
	if fi, err := os.Stat(abs); err != nil || fi.Size() == sc.length {
		return nil // nothing to cut (or no file: the caller reports it)
	}
	f, err := os.OpenFile(abs, os.O_RDWR, 0)
	if err != nil {
		return nil // cannot write here: reading stops at the recorded length
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil // a live writer: reading stops at the recorded length
	}
	if _, err = s.cutBack(f, abs, sc); err != nil {
		// Shorter than recorded: read what is there, and say so.
		s.warn(rel, formats.MboxWarning{Index: -1, Reason: strings.TrimPrefix(err.Error(), "mbox: ")})
	}
	return nil
}

// cutBack, with the lock held, truncates f to the sidecar's length when the
// sidecar says pending, and records pending=0. It returns the file's size.
func (s *Mbox) cutBack(f *os.File, abs string, sc mboxSidecar) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("mbox: %w", err)
	}
	size := fi.Size()
	if size < sc.length {
		return 0, fmt.Errorf("mbox: %s is %d bytes but %d were recorded as written: it was truncated or replaced", abs, size, sc.length)
	}
	if !sc.pending {
		return size, nil
	}
	if size > sc.length {
		if err := f.Truncate(sc.length); err != nil {
			return 0, fmt.Errorf("mbox: cutting back an interrupted append: %w", err)
		}
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("mbox: fsync: %w", err)
		}
		size = sc.length
	}
	if err := writeMboxSidecar(abs, mboxSidecar{length: size}); err != nil {
		return 0, fmt.Errorf("mbox: %w", err)
	}
	return size, nil
}

// scan reads every message of a view in file order. fn gets the entry (its
// Size final), and the header block when withHeader (not to be kept).
func (s *Mbox) scan(ctx context.Context, v *readView, withHeader bool, fn func(e *formats.MboxEntry, header []byte) error) error {
	mr := s.reader(v, io.NewSectionReader(v.r, 0, v.limit), true)
	var buf []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := mr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mbox: %s: %w", v.rel, err)
		}
		var h []byte
		if withHeader {
			if h, buf, err = mboxHeader(e.Body, buf); err != nil {
				return fmt.Errorf("mbox: %s: %w", v.rel, err)
			}
		}
		if _, err := io.Copy(io.Discard, e.Body); err != nil {
			return fmt.Errorf("mbox: %s: %w", v.rel, err)
		}
		if err := fn(e, h); err != nil {
			return err
		}
	}
}

// mboxHeader reads r until the end of its header block (or EOF, or
// formats.MaxHeaderBytes) and returns the block; buf is reused storage.
func mboxHeader(r io.Reader, buf []byte) (header, storage []byte, err error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(32<<10, len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), formats.MaxHeaderBytes)])
		buf = buf[:len(buf)+n]
		h := formats.HeaderBlock(buf)
		if len(h) < len(buf) || len(buf) >= formats.MaxHeaderBytes || err == io.EOF {
			return h, buf, nil
		}
		if err != nil {
			return nil, buf, err
		}
	}
}

// List returns the folder's messages in file order: ID the From_ line's
// offset, Size the exact message length, Date from the From_ line and Flags
// from the Status and X-Status headers. It reads the whole file.
func (s *Mbox) List(ctx context.Context, folder formats.Folder) (uint32, []formats.Message, error) {
	v, err := s.view(folder)
	if err != nil {
		return 0, nil, err
	}
	defer v.close()
	var validity uint32 = 1
	if st, err := os.Stat(s.abs(v.rel)); err == nil {
		validity = mboxValidity(st)
	}
	var msgs []formats.Message
	err = s.scan(ctx, v, true, func(e *formats.MboxEntry, h []byte) error {
		size := e.Size()
		if v.kind.meta {
			size -= int64(len(h) - len(stripMeta(h)))
		}
		if e.Status != nil {
			h = e.Status
		}
		msgs = append(msgs, formats.Message{
			ID:    strconv.FormatInt(e.Offset, 10),
			Size:  size,
			Date:  e.Date,
			Flags: mboxFlags(h),
		})
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return validity, msgs, nil
}

// mboxFlags maps Status and X-Status letters to IMAP flags: R \Seen,
// A \Answered, F \Flagged, T \Draft, D \Deleted (O, "old", maps to nothing),
// and the words of X-Keywords to keywords.
func mboxFlags(h []byte) []string {
	var flags []string
	for _, name := range []string{"Status", "X-Status"} {
		for _, c := range formats.HeaderValue(h, name) {
			switch c {
			case 'R':
				flags = append(flags, formats.FlagSeen)
			case 'A':
				flags = append(flags, formats.FlagAnswered)
			case 'F':
				flags = append(flags, formats.FlagFlagged)
			case 'T':
				flags = append(flags, formats.FlagDraft)
			case 'D':
				flags = append(flags, formats.FlagDeleted)
			}
		}
	}
	flags = append(flags, strings.Fields(formats.HeaderValue(h, "X-Keywords"))...)
	return formats.CleanFlags(flags)
}

// at opens the message at the offset id within v, or reports ok false when
// there is no message there.
func (s *Mbox) at(v *readView, id string) (e *formats.MboxEntry, ok bool, err error) {
	off, err := strconv.ParseInt(id, 10, 64)
	if err != nil || off < 0 || off >= v.limit || strconv.FormatInt(off, 10) != id {
		return nil, false, nil
	}
	mr := s.reader(v, io.NewSectionReader(v.r, off, v.limit-off), false)
	e, err = mr.Next()
	if err == io.EOF || errors.Is(err, formats.ErrNotMbox) || (err == nil && e.Offset != 0) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("mbox: %s: %w", v.rel, err)
	}
	return e, true, nil
}

// Headers calls fn with the header block of each message of msgs that still
// exists, reading no further than the end of the header block.
func (s *Mbox) Headers(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(m formats.Message, header []byte) error) error {
	v, err := s.view(folder)
	if err != nil {
		return err
	}
	defer v.close()
	var buf []byte
	for _, msg := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, ok, err := s.at(v, msg.ID)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		var h []byte
		if h, buf, err = mboxHeader(e.Body, buf); err != nil {
			return fmt.Errorf("mbox: %s: %w", v.rel, err)
		}
		if v.kind.meta {
			h = stripMeta(h)
		}
		if err := fn(msg, h); err != nil {
			return err
		}
	}
	return nil
}

// Fetch calls fn with each message of msgs that still exists, streaming it
// with the mboxrd escaping undone; a message that vanished is skipped.
func (s *Mbox) Fetch(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(m formats.Message, body io.Reader) error) error {
	v, err := s.view(folder)
	if err != nil {
		return err
	}
	defer v.close()
	for _, msg := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, ok, err := s.at(v, msg.ID)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		body, err := v.body(e)
		if err != nil {
			return fmt.Errorf("mbox: %s: %w", v.rel, err)
		}
		if err := fn(msg, body); err != nil {
			return err
		}
	}
	return nil
}

// Open returns the bytes of one stored message (the escaping undone) and
// its file relative to the root (slash-separated).
func (s *Mbox) Open(folder formats.Folder, id string) (io.ReadCloser, string, error) {
	v, err := s.view(folder)
	if err != nil {
		return nil, "", err
	}
	e, ok, err := s.at(v, id)
	if err == nil && !ok {
		err = fmt.Errorf("mbox: %s: no message at offset %s: %w", v.rel, id, fs.ErrNotExist)
	}
	var body io.Reader
	if err == nil {
		body, err = v.body(e)
	}
	if err != nil {
		v.close()
		return nil, "", err
	}
	return mboxReadCloser{body, v.close}, v.rel, nil
}

// body is a message's bytes as the view gives them (an IMAP server's
// metadata headers taken out, see mboxforeign.go).
func (v *readView) body(e *formats.MboxEntry) (io.Reader, error) {
	if !v.kind.meta {
		return e.Body, nil
	}
	return metaStripped(e.Body)
}

type mboxReadCloser struct {
	io.Reader
	close func() error
}

func (r mboxReadCloser) Close() error { return r.close() }

// Locate returns the file and offset of a stored message (also before
// Flush) without reading it. See Locator.
func (s *Mbox) Locate(folder formats.Folder, id string) (file string, offset int64, err error) {
	rel, err := s.fileOf(folder)
	if err != nil {
		return "", -1, err
	}
	off, err := strconv.ParseInt(id, 10, 64)
	if err != nil || off < 0 {
		return "", -1, fmt.Errorf("mbox: bad message id %q", id)
	}
	return rel, off, nil
}

// Index calls fn with the ID and identity key of every message whose ID
// known does not report. The whole file is read (an mbox has no index).
func (s *Mbox) Index(ctx context.Context, folder formats.Folder, known func(id string) bool,
	fn func(id string, key formats.Key) error) error {
	v, err := s.view(folder)
	if err != nil {
		return err
	}
	defer v.close()
	return s.scan(ctx, v, true, func(e *formats.MboxEntry, h []byte) error {
		id := strconv.FormatInt(e.Offset, 10)
		if known(id) {
			return nil
		}
		if v.kind.meta {
			h = stripMeta(h)
		}
		return fn(id, formats.IdentityKey(h))
	})
}

// appender returns the folder's file opened for appending: locked, with an
// interrupted append cut back, ready at its end.
func (s *Mbox) appender(folder formats.Folder) (*mboxFile, error) {
	if s.opts.ReadOnly {
		return nil, errors.New("mbox: store is read-only")
	}
	rel, err := s.fileOf(folder)
	if err != nil {
		return nil, err
	}
	if mf := s.open[rel]; mf != nil {
		return mf, nil
	}
	abs := s.abs(rel)
	f, err := os.OpenFile(abs, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("mbox: folder %q does not exist: %w", folderLabel(folder), err)
	}
	if err != nil {
		return nil, fmt.Errorf("mbox: %w", err)
	}
	fail := func(err error) (*mboxFile, error) {
		f.Close()
		return nil, err
	}
	if fi, err := f.Stat(); err != nil {
		return fail(fmt.Errorf("mbox: %w", err))
	} else if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("mbox: %s is not a regular file", rel))
	}
	if err := flockWaiting(f, syscall.LOCK_EX); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fail(fmt.Errorf("%w: %s (another mailferry or a mail program is writing to it)", ErrMboxLocked, abs))
		}
		return fail(fmt.Errorf("mbox: locking %s: %w", abs, err))
	}
	// Without a sidecar (another program's file) sc is zero: the whole
	// file is taken as good.
	sc, _, err := readMboxSidecar(abs)
	if err != nil {
		return fail(err)
	}
	size, err := s.cutBack(f, abs, sc)
	if err != nil {
		return fail(fmt.Errorf("%w; not appending to it", err))
	}
	if size > 0 {
		// Never append to something that is not an mbox file.
		mr := formats.NewMboxReader(io.NewSectionReader(f, 0, size))
		if _, err := mr.Next(); err != nil && err != io.EOF {
			return fail(fmt.Errorf("mbox: %s: %w; not appending to it", rel, err))
		}
	}
	mf := &mboxFile{rel: rel, abs: abs, f: f, size: size, good: size}
	s.open[rel] = mf
	return mf, nil
}

// begin makes sure the sidecar durably says pending before the first append
// of a batch, and that the file ends in a newline so that the next From_
// line starts a line (adding one to a file that lacks it changes no
// message: the reader takes that newline away again).
func (mf *mboxFile) begin() error {
	if mf.dirty {
		return nil
	}
	if !mf.pending {
		if err := writeMboxSidecar(mf.abs, mboxSidecar{length: mf.good, pending: true}); err != nil {
			return fmt.Errorf("mbox: %w", err)
		}
		mf.pending = true
	}
	mf.dirty = true
	if mf.size == 0 {
		return nil
	}
	var last [1]byte
	if _, err := mf.f.ReadAt(last[:], mf.size-1); err != nil {
		return fmt.Errorf("mbox: %w", err)
	}
	if last[0] == '\n' {
		return nil
	}
	// Another program's file without a final newline. The reader takes
	// the last message's From_ line ending away from its end: add that.
	term, err := lastFromLineEnding(mf.f, mf.size)
	if err != nil {
		return fmt.Errorf("mbox: %s: %w; not appending to it", mf.rel, err)
	}
	if _, err := mf.f.WriteAt(term, mf.size); err != nil {
		return fmt.Errorf("mbox: %w", err)
	}
	mf.size += int64(len(term))
	return nil
}

// lastFromLineEnding returns the line ending (LF or CRLF) of the last From_
// line of the first size bytes of f.
func lastFromLineEnding(f io.ReaderAt, size int64) ([]byte, error) {
	mr := formats.NewMboxReader(io.NewSectionReader(f, 0, size))
	last := int64(-1)
	for {
		e, err := mr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		last = e.Offset
	}
	if last < 0 {
		return nil, formats.ErrNotMbox
	}
	line := make([]byte, 64<<10)
	n, err := f.ReadAt(line, last)
	if err != nil && err != io.EOF {
		return nil, err
	}
	line = line[:n]
	if i := bytes.IndexByte(line, '\n'); i > 0 && line[i-1] == '\r' {
		return []byte("\r\n"), nil
	}
	return []byte("\n"), nil
}

// storeReaders are Store's 64 KB read buffers, kept from one message to the
// next (one made for each message was 64 KB zeroed for every message). At
// formats' mboxBufSize, WriteMboxMessage reads through one as it is.
var storeReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// Store appends one message (exactly size bytes when size >= 0, else until
// EOF) to the folder's file under the file's lock and returns its ID, the
// offset of its From_ line. The From_ line carries m.Date and the header's
// Return-Path address; its flags go into status lines (see the layout
// comment), which reading takes away again. The message is durable once
// Flush returns nil; a failed Store leaves nothing behind.
func (s *Mbox) Store(ctx context.Context, folder formats.Folder, m formats.Message, size int64, body io.Reader) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	mf, err := s.appender(folder)
	if err != nil {
		return "", err
	}
	if mf.broken != nil {
		return "", mf.broken
	}
	if err := mf.begin(); err != nil {
		return "", err
	}
	src := body
	if size >= 0 {
		src = io.LimitReader(body, size)
	}
	// The count is taken under the buffer, which WriteMboxMessage then
	// reads through as it is (one buffer, one copy): at its end the buffer
	// has read the whole body.
	cr := &formats.CountingReader{R: src}
	br := storeReaders.Get().(*bufio.Reader)
	br.Reset(cr)
	defer func() {
		br.Reset(nil) // hold on to nothing of the message
		storeReaders.Put(br)
	}()
	head, _ := br.Peek(64 << 10) // for the Return-Path; errors resurface on reading
	sender := returnPath(formats.HeaderBlock(head))
	off := mf.size
	status := formats.MboxStatusLines(m.Flags)
	if off == 0 {
		status = append(s.baseLine(folder, m.Flags), status...)
	}
	n, err := formats.WriteMboxMessage(io.NewOffsetWriter(mf.f, off), sender, m.Date, status, br)
	if err == nil && size >= 0 && cr.N != size {
		err = fmt.Errorf("mbox: message is %d bytes, expected %d", cr.N, size)
	}
	if err != nil {
		if terr := mf.f.Truncate(off); terr != nil {
			mf.broken = fmt.Errorf("mbox: %s: a failed append could not be undone (%v); it is cut back on the next open", mf.rel, terr)
		}
		if strings.HasPrefix(err.Error(), "mbox: ") {
			return "", err
		}
		return "", fmt.Errorf("mbox: writing message: %w", err)
	}
	mf.size = off + n
	return strconv.FormatInt(off, 10), nil
}

// DeclareKeywords names keywords that messages about to be stored into
// folder carry. The first message of a folder's file gets, among its status
// lines, the X-IMAPbase line that declares them (with its own): Dovecot
// shows a message's X-Keywords only when that line lists them. An
// append-only file cannot declare later: a keyword first stored into a file
// that already has messages is in the manifest and X-Keywords (mutt,
// Python), not in what Dovecot shows.
func (s *Mbox) DeclareKeywords(folder formats.Folder, keywords []string) {
	s.declMu.Lock()
	defer s.declMu.Unlock()
	if s.declared == nil {
		s.declared = map[string][]string{}
	}
	k := strings.Join(folder.Path, "\x00")
	s.declared[k] = append(s.declared[k], keywords...)
}

// baseLine is the X-IMAPbase line for the first message of folder's file,
// whose flags are flags: the keywords declared for the folder and its own.
func (s *Mbox) baseLine(folder formats.Folder, flags []string) []byte {
	s.declMu.Lock()
	kw := append(slices.Clone(s.declared[strings.Join(folder.Path, "\x00")]), flags...)
	s.declMu.Unlock()
	return formats.MboxBaseLine(uint32(time.Now().Unix()), kw)
}

// returnPath returns the address of the Return-Path header, or "" (the
// From_ line then says MAILER-DAEMON).
func returnPath(h []byte) string {
	v := formats.HeaderValue(h, "Return-Path")
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			v = v[i+1 : i+j]
		}
	}
	return strings.TrimSpace(v)
}

// Flush makes every message stored since the last Flush durable: each
// touched file is fsynced, then its new length recorded (pending=0).
func (s *Mbox) Flush(ctx context.Context) error {
	var firstErr error
	for _, rel := range slices.Sorted(maps.Keys(s.open)) {
		mf := s.open[rel]
		if !mf.dirty {
			continue
		}
		if mf.broken != nil {
			if firstErr == nil {
				firstErr = mf.broken
			}
			continue
		}
		if err := mf.f.Sync(); err != nil {
			mf.broken = fmt.Errorf("mbox: fsync %s: %w", mf.rel, err)
			if firstErr == nil {
				firstErr = mf.broken
			}
			continue
		}
		if err := writeMboxSidecar(mf.abs, mboxSidecar{length: mf.size}); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("mbox: %w", err)
			}
			continue
		}
		mf.good, mf.pending, mf.dirty = mf.size, false, false
	}
	return firstErr
}

// Close releases the files and their locks. Messages stored since the last
// Flush were never reported durable: they are cut back now (or, if that
// fails, on the next open).
func (s *Mbox) Close() error {
	var firstErr error
	for rel, mf := range s.open {
		if mf.dirty || mf.pending {
			if _, err := s.cutBack(mf.f, mf.abs, mboxSidecar{length: mf.good, pending: true}); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		if err := mf.f.Close(); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("mbox: %w", err)
		}
		delete(s.open, rel)
	}
	return firstErr
}

// mboxSidecar is the record in NAME.mbox.len.
type mboxSidecar struct {
	length  int64
	pending bool
}

const mboxSidecarMagic = "mailferry-mbox v1"

// readMboxSidecar reads the sidecar of the mbox file abs; ok is false when
// there is none (a file another program made).
func readMboxSidecar(abs string) (sc mboxSidecar, ok bool, err error) {
	path := mboxSidecarPath(abs)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return sc, false, nil
	}
	if err != nil {
		return sc, false, fmt.Errorf("mbox: %w", err)
	}
	var pending int
	line := strings.TrimSuffix(string(b), "\n")
	if _, err := fmt.Sscanf(line, mboxSidecarMagic+" length=%d pending=%d", &sc.length, &pending); err != nil ||
		sc.length < 0 || pending < 0 || pending > 1 || line != formatMboxSidecar(mboxSidecar{sc.length, pending == 1}) {
		return sc, false, fmt.Errorf("mbox: %s: unreadable length record %q", path, b)
	}
	sc.pending = pending == 1
	return sc, true, nil
}

func formatMboxSidecar(sc mboxSidecar) string {
	p := 0
	if sc.pending {
		p = 1
	}
	return fmt.Sprintf("%s length=%d pending=%d", mboxSidecarMagic, sc.length, p)
}

// sidecarTemp is the temporary file writeMboxSidecar writes the sidecar
// at path (mboxSidecarPath) through.
func sidecarTemp(path string) string {
	dir, base := filepath.Split(path)
	return filepath.Join(dir, ".tmp."+base+".lock") // hidden from Dovecot too
}

// removeSidecarTemp removes the temporary file of rel's sidecar that a run
// killed while writing it left behind (verify reports it as a stray
// file), where no one holds rel's lock: every sidecar write holds it. A
// read-only store, or a file this store holds open, is left alone.
func (s *Mbox) removeSidecarTemp(rel string) {
	if s.opts.ReadOnly || s.open[rel] != nil {
		return
	}
	abs := s.abs(rel)
	tmp := sidecarTemp(mboxSidecarPath(abs))
	if _, err := os.Lstat(tmp); err != nil {
		return
	}
	f, err := os.Open(abs)
	if err != nil {
		return
	}
	defer f.Close() // and the lock with it
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return // a live writer
	}
	os.Remove(tmp)
}

// writeMboxSidecar replaces the sidecar of abs durably: a hidden temporary
// file, fsync, rename, fsync of the directory. The caller holds abs's lock.
func writeMboxSidecar(abs string, sc mboxSidecar) error {
	path := mboxSidecarPath(abs)
	dir := filepath.Dir(path)
	tmp := sidecarTemp(path)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(formatMboxSidecar(sc) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// mkdirAllSynced makes dir and any missing parents (0700), fsyncing the
// parent of each directory it makes.
func mkdirAllSynced(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSynced(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// syncDir fsyncs a directory so that the entries made in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
