package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// Maildir++ layout, as this store writes it (maildir_layout.go says what
// else it reads):
//
//	ROOT/{cur,new,tmp}/            INBOX
//	ROOT/.A/{cur,new,tmp}/         folder [A], with an empty ROOT/.A/maildirfolder
//	ROOT/.A.B/{cur,new,tmp}/       folder [A B]; [A] itself may not exist (then it
//	                               is listed as a NoSelect tree node)
//
// Each path component is encoded with formats.EncodeMaildirComponent:
// modified UTF-7, as Dovecot, Courier and mbsync expect (".Priv&AOk-"),
// over the escapes of formats.EncodeFSComponent, so a component never
// holds '.', '/', NUL or a leading '-' and a hostile server name cannot
// leave ROOT. A Folder's Name is the store's own spelling: "INBOX", or the
// directory name without its leading dot ("A.B").
//
// Messages are written to tmp/, made durable by Flush and then renamed to
// cur/UNIQUE:2,FLAGS; the file's mtime is the message's internal date.
// Keywords get Dovecot's letters 'a'-'z' after the system flags' letters,
// with a dovecot-keywords file in the folder (maildir_keywords.go). A
// message's ID is its unique name (formats.ParseMaildirName). Files are
// 0600 and directories 0700.

// MaildirOptions tunes OpenMaildir.
type MaildirOptions struct {
	// Create makes the root (as an INBOX Maildir) if it does not exist.
	// Without it a missing root is an error: what a destination given on
	// the command line needs, so that a typo does not start a new archive.
	Create bool
	// Host goes into new file names; default os.Hostname.
	Host string
	// SyncWorkers is how many fsyncs Flush runs at once; default 16.
	SyncWorkers int
	// Warn, if set, receives each warning about what had to be guessed
	// while reading the tree (a folder name in no known encoding, a mixed
	// layout, a keyword letter dovecot-keywords does not name), once.
	// Warnings are also kept; see Warnings.
	Warn func(msg string)
}

// tmpMaxAge is how old a file in tmp/ must be before Ensure removes it as
// the leftover of a crashed delivery (the Maildir specification's 36 hours).
const tmpMaxAge = 36 * time.Hour

// Maildir is a Maildir++ tree used as a source or a sink (archive.Store).
// Like every endpoint it is used by one goroutine at a time; several
// Maildir values may work on the same tree at once (one per worker), each
// on its own folders.
type Maildir struct {
	root string // absolute
	host string
	pid  int
	opts MaildirOptions

	// files caches, per folder directory (relative to root, "" for INBOX),
	// the file of each message by unique name ("cur/NAME:2,S"). It is filled
	// by scans, and refreshed when a file is not found.
	files map[string]map[string]string
	// flushed is where the last Flush put its messages, by folder directory
	// and unique name: what the manifest asks next (Locate). Flush does not
	// add them to files, so that a first copy's memory does not grow with
	// the folder; a later lookup finds them by a scan.
	flushed map[string]map[string]string
	// pending holds messages written to tmp/ and not yet flushed.
	pending []pendingFile
	buf     []byte // copy buffer for Store

	inboxDir string                   // where INBOX lives, relative to root (maildir_layout.go)
	keywords map[string]*keywordTable // per folder directory, loaded on first use
	warnings []string                 // each once, in order
	// syncer, where the root's file system allows, makes a batch durable
	// with one syncfs instead of an fsync per file (syncfs_linux.go).
	syncer *fsSyncer
}

// pendingFile is a message in tmp/ waiting for Flush.
type pendingFile struct {
	dir    string // folder directory relative to root
	tmp    string // name in dir/tmp
	final  string // name in dir/cur
	unique string
}

var _ Store = (*Maildir)(nil)

// OpenMaildir opens the Maildir++ tree at root; see MaildirOptions.
func OpenMaildir(root string, opts MaildirOptions) (*Maildir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.SyncWorkers <= 0 {
		opts.SyncWorkers = 16
	}
	m := &Maildir{root: abs, host: opts.Host, pid: os.Getpid(), opts: opts, files: map[string]map[string]string{},
		keywords: map[string]*keywordTable{}}
	fi, err := os.Stat(abs)
	switch {
	case err == nil && !fi.IsDir():
		return nil, fmt.Errorf("maildir: %s is not a directory", root)
	case errors.Is(err, fs.ErrNotExist) && opts.Create:
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
		if err := syncDir(filepath.Dir(abs)); err != nil {
			return nil, fmt.Errorf("maildir: fsync: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("maildir: %w", err)
	}
	m.inboxDir = inboxDirOf(abs)
	m.syncer = openFSSyncer(abs) // before any message is written
	if opts.Create {
		// Make the root a Maildir (INBOX) even if it existed empty.
		if _, _, err := m.ensure([]string{"INBOX"}); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Warnings returns every warning met so far, each once, in order.
func (m *Maildir) Warnings() []string { return slices.Clone(m.warnings) }

func (m *Maildir) warn(msg string) {
	msg = "Maildir " + m.root + ": " + msg
	if slices.Contains(m.warnings, msg) {
		return
	}
	m.warnings = append(m.warnings, msg)
	if m.opts.Warn != nil {
		m.opts.Warn(msg)
	}
}

// Root returns the absolute path of the tree.
func (m *Maildir) Root() string { return m.root }

// Separator returns '/'. Components are not joined with a separator the
// engine needs to know about: each is encoded for the file system (see the
// layout comment), so any character may appear in a component.
func (m *Maildir) Separator() rune { return '/' }

// folderInfo fills Validity, Messages and Bytes of f, stored in dir: what
// scan would find, counted as the names stream by, keeping none but those
// of new/ (a unique name in both cur/ and new/ counts once). A listing of
// a million-message archive by each of four workers built four caches of
// every file name: 687 MB for a rerun that copied nothing.
func (m *Maildir) folderInfo(dir string, f formats.Folder) (formats.Folder, error) {
	f.Validity = 1
	inNew := map[string]int64{}
	err := m.eachFile(dir, "new", func(unique string, size int64) { inNew[strings.Clone(unique)] = size })
	if err == nil {
		err = m.eachFile(dir, "cur", func(unique string, size int64) {
			if len(inNew) > 0 {
				delete(inNew, unique)
			}
			f.Messages++
			f.Bytes += size
		})
	}
	if err != nil {
		return f, err
	}
	for _, size := range inNew {
		f.Messages++
		f.Bytes += size
	}
	return f, nil
}

// eachFile calls fn with the unique name and size of each message file in
// dir/sub as scan(dir, true) takes them (eachName: the unique name is
// valid only during the call).
func (m *Maildir) eachFile(dir, sub string, fn func(unique string, size int64)) error {
	path := filepath.Join(m.root, dir, sub)
	return listNames(path, func(name string) error {
		unique, ok := maildirUnique(name)
		if !ok {
			return nil
		}
		size := sizeFromName(unique)
		if size < 0 {
			fi, err := os.Lstat(filepath.Join(path, name))
			if errors.Is(err, fs.ErrNotExist) {
				return nil // renamed or removed since it was listed
			}
			if err != nil {
				return fmt.Errorf("maildir: %w", err)
			}
			size = fi.Size()
		}
		fn(unique, size)
		return nil
	})
}

// listNames is eachName, a variable for the tests.
var listNames = eachName

// scannedFile is one message file found by List's scan.
type scannedFile struct {
	unique string
	sub    string // "cur/NAME" or "new/NAME"
	flags  []string
	size   int64
	mtime  time.Time
}

// scan refreshes the name cache of a folder directory (eachMessageFile)
// and, with list, returns its messages sorted by unique name with their
// flags and their size and mtime from stat (List's); without, sizes come
// from the names and nothing is listed (a lookup's rescan).
func (m *Maildir) scan(dir string, list bool) ([]scannedFile, error) {
	// The cache this scan replaces is let go first, so that a folder of
	// 300,000 files is not held twice while it is scanned again.
	delete(m.files, dir)
	var out []scannedFile
	names := map[string]string{}
	interned := map[string]string{} // cache values (cacheValue)
	var vb []byte
	err := m.eachMessageFile(dir, !list, func(sub, name, unique string, flags []string, size int64, mtime time.Time) error {
		if _, dup := names[unique]; dup {
			return nil // the same unique name in cur/ and new/: keep cur/
		}
		// The cache's value is one of a few strings shared by every file
		// (cacheValue); its key is inside the entry's own name string.
		vb = append(append(append(vb[:0], sub...), '/'), name[len(unique):]...)
		v, seen := interned[string(vb)]
		if !seen {
			v = string(vb)
			interned[v] = v
		}
		names[unique] = v
		if list {
			out = append(out, scannedFile{unique: unique, sub: sub + "/" + name, flags: flags, size: size, mtime: mtime})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.files[dir] = names
	slices.SortFunc(out, func(a, b scannedFile) int { return strings.Compare(a.unique, b.unique) })
	return out, nil
}

// eachMessageFile calls fn with each message file of a folder directory, cur/
// then new/ (tmp/ is never looked at; a missing cur/ or new/ counts as
// empty): its subdirectory, its name, its unique name (a prefix of name,
// inside name's string), with !sizeOnly its flags, and its size and mtime
// from stat, or with sizeOnly the size the name gives (",S="), stat only
// where it gives none. A file gone since it was listed is passed over. A
// unique name in both cur/ and new/ comes twice. Symbolic links are not
// read, and said.
func (m *Maildir) eachMessageFile(dir string, sizeOnly bool, fn func(sub, name, unique string, flags []string, size int64, mtime time.Time) error) error {
	for _, sub := range []string{"cur", "new"} {
		links := 0
		err := eachEntry(filepath.Join(m.root, dir, sub), func(e fs.DirEntry) error {
			name := e.Name()
			var (
				unique string
				flags  []string
				ok     bool
			)
			if sizeOnly {
				unique, ok = maildirUnique(name)
			} else {
				unique, flags, ok = formats.ParseMaildirName(name)
			}
			if ok && e.Type()&fs.ModeSymlink != 0 {
				links++
			}
			if !ok || !e.Type().IsRegular() {
				return nil
			}
			unique = name[:len(unique)]
			size := int64(-1)
			if sizeOnly {
				size = sizeFromName(unique)
			}
			var mtime time.Time
			if size < 0 {
				fi, err := e.Info()
				if errors.Is(err, fs.ErrNotExist) {
					return nil // renamed or removed since it was listed
				}
				if err != nil {
					return fmt.Errorf("maildir: %w", err)
				}
				size, mtime = fi.Size(), fi.ModTime()
			}
			return fn(sub, name, unique, flags, size, mtime)
		})
		if err != nil {
			return err
		}
		if links > 0 {
			// Not read: a link planted in a user's Maildir would have a
			// migration run as root copy any file of the machine into a
			// mailbox. Said, so that a search folder of links (mairix,
			// notmuch) is not copied empty without a word.
			m.warn(fmt.Sprintf("%s: %d message files are symbolic links, not read (a link can reach any file of the machine); copy the files they point to into the folder to migrate them",
				filepath.ToSlash(filepath.Join(dir, sub)), links))
		}
	}
	return nil
}

// heldFile is a message file as Ensure's look at a folder needs it: the
// first 16 bytes of its unique name's SHA-256 and its size. 24 bytes,
// where the name cache takes about 110 a file.
type heldFile struct {
	h    [16]byte
	size int64
}

func uniqueHash(unique string) [16]byte {
	sum := sha256.Sum256([]byte(unique))
	return [16]byte(sum[:16])
}

// heldFiles lists the messages of a folder directory (eachMessageFile, sizeOnly)
// sorted by hash, each unique name once (cur/'s where it is in both), and
// leaves the name cache alone.
func (m *Maildir) heldFiles(dir string) ([]heldFile, error) {
	var cur, inNew []heldFile
	err := m.eachMessageFile(dir, true, func(sub, _, unique string, _ []string, size int64, _ time.Time) error {
		if sub == "cur" {
			cur = append(cur, heldFile{uniqueHash(unique), size})
		} else {
			inNew = append(inNew, heldFile{uniqueHash(unique), size})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	byHash := func(a, b heldFile) int { return bytes.Compare(a.h[:], b.h[:]) }
	same := func(a, b heldFile) bool { return a.h == b.h }
	slices.SortFunc(cur, byHash)
	cur = slices.CompactFunc(cur, same)
	slices.SortFunc(inNew, byHash)
	inNew = slices.CompactFunc(inNew, same)
	// new/'s files whose unique name cur/ has too are left out.
	inCur := cur[:len(cur):len(cur)]
	for _, f := range inNew {
		if _, dup := slices.BinarySearchFunc(inCur, f, byHash); !dup {
			cur = append(cur, f)
		}
	}
	slices.SortFunc(cur, byHash)
	return cur, nil
}

// heldSize is the size of message id among files (heldFiles), or ok false.
func heldSize(files []heldFile, id string) (size int64, ok bool) {
	h := uniqueHash(id)
	i, ok := slices.BinarySearchFunc(files, h, func(f heldFile, h [16]byte) int { return bytes.Compare(f.h[:], h[:]) })
	if !ok {
		return 0, false
	}
	return files[i].size, true
}

// The name cache (Maildir.files) keeps a message's file "cur/NAME" as its
// directory and the part of NAME after the unique name it begins with:
// "cur/:2,S". Those are a few strings shared by a whole folder, where each
// file's own path took 64 bytes more a message.

// cacheValue is what the name cache keeps for sub ("cur/NAME", NAME
// beginning with unique).
func cacheValue(sub, unique string) string { return sub[:4] + sub[4+len(unique):] }

// cacheSub is the sub ("cur/NAME") a cache value v keeps for unique.
func cacheSub(v, unique string) string { return v[:4] + unique + v[4:] }

// eachEntry calls fn with each entry of dir, a thousand at a time: a
// folder of 300,000 files is never held as one slice of entries (nor
// sorted, as os.ReadDir does). A directory that does not exist has none.
func eachEntry(dir string, fn func(fs.DirEntry) error) error {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	defer f.Close()
	for {
		ents, err := f.ReadDir(1000)
		for _, e := range ents {
			if err := fn(e); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
	}
}

// maildirUnique is formats.ParseMaildirName's unique name and verdict,
// without the flags (a listing of a million files needs only those).
func maildirUnique(name string) (string, bool) {
	if name == "" || name[0] == '.' || strings.ContainsAny(name, "/\x00") {
		return "", false
	}
	unique, _, _ := strings.Cut(name, ":")
	return unique, unique != ""
}

// sizeFromName returns the ",S=<size>" of a unique name, or -1: the first
// comma-separated part after the first that is "S=" and a number.
func sizeFromName(unique string) int64 {
	_, rest, found := strings.Cut(unique, ",")
	for found {
		var part string
		part, rest, found = strings.Cut(rest, ",")
		if v, ok := strings.CutPrefix(part, "S="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				return n
			}
		}
	}
	return -1
}

// List returns the messages in cur/ and new/ sorted by ID (unique name),
// with Size from stat, Flags from the file name and Date from the mtime.
// Files in tmp/ are never messages. The validity token is always 1:
// unique names never change meaning.
func (m *Maildir) List(ctx context.Context, folder formats.Folder) (uint32, []formats.Message, error) {
	dir, err := m.dirOf(folder)
	if err != nil {
		return 0, nil, err
	}
	files, err := m.scan(dir, true)
	if err != nil {
		return 0, nil, err
	}
	msgs := make([]formats.Message, len(files))
	for i, sf := range files {
		flags, err := m.withKeywords(dir, sf.sub[len("cur/"):], sf.flags)
		if err != nil {
			return 0, nil, err
		}
		msgs[i] = formats.Message{ID: sf.unique, Size: sf.size, Flags: flags, Date: sf.mtime}
	}
	return 1, msgs, nil
}

// cached is where the name cache or the last Flush says message id of
// dir lives ("cur/NAME:2,S"), if either knows.
func (m *Maildir) cached(dir, id string) (string, bool) {
	if v, ok := m.files[dir][id]; ok {
		return cacheSub(v, id), true
	}
	sub, ok := m.flushed[dir][id]
	return sub, ok
}

// open opens the file of message id in dir, rescanning the folder once if
// the cache does not know it or the file moved (flags changed by another
// program). It returns an error wrapping fs.ErrNotExist when it is gone.
func (m *Maildir) open(dir, id string) (*readFile, string, error) {
	sub, ok := m.cached(dir, id)
	for rescanned := false; ; rescanned = true {
		if ok {
			f, err := openRead(filepath.Join(m.root, dir, sub))
			if err == nil {
				return f, filepath.ToSlash(filepath.Join(dir, sub)), nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return nil, "", fmt.Errorf("maildir: %w", err)
			}
		}
		if rescanned {
			return nil, "", fmt.Errorf("maildir: message %s: %w", id, fs.ErrNotExist)
		}
		if _, err := m.scan(dir, false); err != nil {
			return nil, "", err
		}
		sub, ok = m.cached(dir, id)
	}
}

// Headers calls fn with the header block of each message of msgs that still
// exists and can be opened, reading no further than the end of the header
// block.
func (m *Maildir) Headers(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(m formats.Message, header []byte) error) error {
	dir, err := m.dirOf(folder)
	if err != nil {
		return err
	}
	var buf []byte
	for _, msg := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, _, err := m.open(dir, msg.ID)
		if err != nil {
			continue // gone, or unreadable: Fetch names it as failed
		}
		var h []byte
		h, buf, err = readHeaderBlock(f, buf)
		f.Close()
		if err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
		if err := fn(msg, h); err != nil {
			return err
		}
	}
	return nil
}

// readHeaderBlock reads r until the end of its header block (or EOF, or
// formats.MaxHeaderBytes) and returns the block; buf is reused storage.
func readHeaderBlock(r io.Reader, buf []byte) (header, storage []byte, err error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(32<<10, len(buf)))
		}
		limit := min(cap(buf), formats.MaxHeaderBytes)
		n, err := r.Read(buf[len(buf):limit])
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

// Fetch calls fn with each message of msgs that still exists, streaming its
// file; a message that vanished is skipped, one whose file cannot be opened
// is passed as a formats.Unreadable.
func (m *Maildir) Fetch(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(m formats.Message, body io.Reader) error) error {
	dir, err := m.dirOf(folder)
	if err != nil {
		return err
	}
	for _, msg := range msgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, _, err := m.open(dir, msg.ID)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil { // that message alone: named as failed, and on to the next
			if err := fn(msg, formats.Unreadable{Err: err}); err != nil {
				return err
			}
			continue
		}
		if n, err := f.size(); err == nil {
			msg.Size = n
		}
		err = fn(msg, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// Open returns the bytes of one stored message and its file relative to the
// root (slash-separated).
func (m *Maildir) Open(folder formats.Folder, id string) (io.ReadCloser, string, error) {
	dir, err := m.dirOf(folder)
	if err != nil {
		return nil, "", err
	}
	f, file, err := m.open(dir, id)
	if err != nil {
		return nil, "", err
	}
	return f, file, nil
}

// Locate returns the file a message is (or, before Flush, will be) stored
// in, relative to the root, without opening it; offset is always -1 (one
// message per file). See Locator.
func (m *Maildir) Locate(folder formats.Folder, id string) (file string, offset int64, err error) {
	dir, err := m.dirOf(folder)
	if err != nil {
		return "", -1, err
	}
	for _, p := range m.pending {
		if p.dir == dir && p.unique == id {
			return filepath.ToSlash(filepath.Join(dir, "cur", p.final)), -1, nil
		}
	}
	sub, ok := m.cached(dir, id)
	if !ok {
		if _, err := m.scan(dir, false); err != nil {
			return "", -1, err
		}
		if sub, ok = m.cached(dir, id); !ok {
			return "", -1, fmt.Errorf("maildir: message %s: %w", id, fs.ErrNotExist)
		}
	}
	return filepath.ToSlash(filepath.Join(dir, sub)), -1, nil
}

// Ensure makes the folder's directory with tmp/, new/ and cur/ (0700) and,
// below the root, its maildirfolder file; what it creates is fsynced. It
// also removes files older than 36 hours from tmp/ (leftovers of a crash).
// Parents are not created: in Maildir++ they exist implicitly.
func (m *Maildir) Ensure(ctx context.Context, path []string) (formats.Folder, error) {
	dir, name, err := m.ensure(path)
	if err != nil {
		return formats.Folder{}, err
	}
	p := slices.Clone(path)
	if strings.EqualFold(p[0], "INBOX") {
		p[0] = "INBOX"
	}
	return m.folderInfo(dir, formats.Folder{Path: p, Name: name})
}

// ensure is Ensure without the count of the folder's messages, which
// lists its cur/ and new/: OpenMaildir, in each worker's connection, has
// no use for it (a million-message archive's INBOX of 300,000 listed by
// each of them took half the CPU of a rerun that copied nothing).
func (m *Maildir) ensure(path []string) (dir, name string, err error) {
	dir, name, err = m.resolve(path)
	if err != nil {
		return "", "", err
	}
	abs := filepath.Join(m.root, dir)
	var created []string // directories whose entries changed
	mkdir := func(p string) error {
		err := os.Mkdir(p, 0o700)
		if err == nil {
			created = append(created, filepath.Dir(p))
			return nil
		}
		if errors.Is(err, fs.ErrExist) {
			if fi, serr := os.Stat(p); serr == nil && fi.IsDir() {
				return nil
			}
		}
		return fmt.Errorf("maildir: %w", err)
	}
	if dir != "" {
		if err := mkdir(abs); err != nil {
			return "", "", err
		}
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := mkdir(filepath.Join(abs, sub)); err != nil {
			return "", "", err
		}
	}
	if name != "INBOX" {
		f, err := os.OpenFile(filepath.Join(abs, "maildirfolder"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		switch {
		case err == nil:
			f.Close()
			created = append(created, abs)
		case !errors.Is(err, fs.ErrExist):
			return "", "", fmt.Errorf("maildir: %w", err)
		}
	}
	slices.Sort(created)
	for _, d := range slices.Compact(created) {
		if err := syncDir(d); err != nil {
			return "", "", fmt.Errorf("maildir: fsync: %w", err)
		}
	}
	m.cleanTmp(filepath.Join(abs, "tmp"))
	return dir, name, nil
}

// cleanTmp removes files older than tmpMaxAge from a tmp/ directory. It is
// best effort: a failure here loses nothing.
func (m *Maildir) cleanTmp(tmp string) {
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	// A file of this process is never stale, whatever its mtime: Flush sets
	// the internal date (often years ago) before the rename, and another
	// worker's Ensure may look at the same tmp/ meanwhile. (Another process
	// cannot be writing: the manifest's lock keeps it out.)
	ours := fmt.Sprintf("P%dR", m.pid)
	cutoff := time.Now().Add(-tmpMaxAge)
	for _, e := range ents {
		if strings.Contains(e.Name(), ours) {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(tmp, e.Name()))
		}
	}
}

// Index calls fn with the ID and identity key of every message in folder
// that known does not report, reading only header blocks.
func (m *Maildir) Index(ctx context.Context, folder formats.Folder, known func(id string) bool,
	fn func(id string, key formats.Key) error) error {
	dir, err := m.dirOf(folder)
	if err != nil {
		return err
	}
	// Only the files known does not report are kept, and added to the
	// name cache for Headers: a rerun that finds new mail in a folder of
	// 300,000 messages held every file's name here (a scan).
	unknown := map[string]string{} // unique name -> cur/NAME or new/NAME
	err = m.eachMessageFile(dir, true, func(sub, name, unique string, _ []string, _ int64, _ time.Time) error {
		if _, dup := unknown[unique]; !dup && !known(unique) {
			unknown[unique] = sub + "/" + name
		}
		return nil
	})
	if err != nil {
		return err
	}
	cache := m.files[dir]
	if cache == nil && len(unknown) > 0 {
		cache = map[string]string{}
		m.files[dir] = cache
	}
	msgs := make([]formats.Message, 0, len(unknown))
	for id, sub := range unknown {
		cache[id] = cacheValue(sub, id)
		msgs = append(msgs, formats.Message{ID: id})
	}
	slices.SortFunc(msgs, func(a, b formats.Message) int { return strings.Compare(a.ID, b.ID) })
	return m.Headers(ctx, folder, msgs, func(msg formats.Message, h []byte) error {
		return fn(msg.ID, formats.IdentityKey(h))
	})
}

// Store writes a message into the folder's tmp/ (streaming, exactly size
// bytes when size >= 0), sets its mtime to m.Date and returns its ID. The
// message is neither visible nor durable until Flush.
func (m *Maildir) Store(ctx context.Context, folder formats.Folder, msg formats.Message, size int64, body io.Reader) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	dir, err := m.dirOf(folder)
	if err != nil {
		return "", err
	}
	tmpDir := filepath.Join(m.root, dir, "tmp")
	now := time.Now()
	var (
		f   *tmpFile
		rnd uint64
		tmp string
	)
	for attempt := 0; ; attempt++ {
		rnd = rand.Uint64()
		tmp = formats.NewUniqueName(now, m.pid, rnd, m.host, -1)
		f, err = createTmp(filepath.Join(tmpDir, tmp))
		if err == nil {
			break
		}
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("maildir: folder %q does not exist: %w", formats.DisplayName(folder.Path), err)
		}
		if !errors.Is(err, fs.ErrExist) || attempt == 3 {
			return "", fmt.Errorf("maildir: %w", err)
		}
	}
	tmpPath := filepath.Join(tmpDir, tmp)
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(tmpPath)
		return "", err
	}
	if m.buf == nil {
		m.buf = make([]byte, 64<<10)
	}
	src := body
	if size >= 0 {
		src = io.LimitReader(body, size)
	}
	// Hide any ReaderFrom/WriterTo so that the copy goes through m.buf.
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{src}, m.buf)
	if err != nil {
		return fail(fmt.Errorf("maildir: writing message: %w", err))
	}
	if size >= 0 && n != size {
		return fail(fmt.Errorf("maildir: message is %d bytes, expected %d", n, size))
	}
	// The internal date becomes the file's mtime through its descriptor.
	// In tmp/ the old mtime does not make it look like a crashed delivery:
	// Ensure's clean-up (possibly another worker's) passes over this
	// process's files, and Dovecot's asks for an old change time as well.
	if d := msg.Date; !d.IsZero() {
		if err := f.setTimes(d); err != nil {
			return fail(fmt.Errorf("maildir: %w", err))
		}
	}
	if err := f.Close(); err != nil {
		os.Remove(tmpPath)
		return "", fmt.Errorf("maildir: %w", err)
	}
	letters, err := m.keywordLetters(dir, msg.Flags)
	if err != nil {
		os.Remove(tmpPath)
		return "", err
	}
	unique := formats.NewUniqueName(now, m.pid, rnd, m.host, n)
	m.pending = append(m.pending, pendingFile{
		dir:    dir,
		tmp:    tmp,
		final:  formats.FormatMaildirName(unique, msg.Flags) + letters,
		unique: unique,
	})
	return unique, nil
}

// Flush makes every message stored since the last Flush durable and
// visible: it fsyncs their files (in parallel, or one syncfs), renames
// each into cur/ (never over a file of that name: fileops_linux.go), then
// fsyncs each cur/ directory it touched, once. When it returns nil
// every one of them survives a crash. The dovecot-keywords files of the
// folders whose keywords they brought are saved before any rename. On an
// fsync error nothing is renamed
// and the batch is removed; on a rename error the other messages are still
// renamed and synced, and the error is returned.
func (m *Maildir) Flush(ctx context.Context) error {
	batch := m.pending
	m.pending = nil
	if len(batch) == 0 {
		return nil
	}
	tmpPath := func(p pendingFile) string { return filepath.Join(m.root, p.dir, "tmp", p.tmp) }
	// The batch's folder directories, each once.
	folders := make([]string, len(batch))
	for i, p := range batch {
		folders[i] = p.dir
	}
	slices.Sort(folders)
	folders = slices.Compact(folders)
	// One syncfs for the batch where it covers every file (syncfs_linux.go).
	whole := m.syncer != nil
	for i := 0; whole && i < len(folders); i++ {
		whole = m.syncer.covers(filepath.Join(m.root, folders[i], "tmp"))
	}
	err := ctx.Err()
	if err == nil {
		if whole {
			err = m.syncer.sync()
		} else {
			err = runParallel(len(batch), m.opts.SyncWorkers, func(i int) error {
				return fsyncFile(tmpPath(batch[i]))
			})
		}
		if err != nil {
			err = fmt.Errorf("maildir: fsync: %w", err)
		}
	}
	if err == nil {
		err = m.saveKeywords(folders)
	}
	if err != nil {
		for _, p := range batch {
			os.Remove(tmpPath(p))
		}
		return err
	}
	var firstErr error
	dirs := map[string]bool{}
	m.flushed = map[string]map[string]string{}
	for _, p := range batch {
		err := renameNoReplace(tmpPath(p), filepath.Join(m.root, p.dir, "cur", p.final))
		if err != nil {
			os.Remove(tmpPath(p))
			if firstErr == nil {
				firstErr = fmt.Errorf("maildir: %w", err)
			}
			continue
		}
		dirs[p.dir] = true
		if m.flushed[p.dir] == nil {
			m.flushed[p.dir] = map[string]string{}
		}
		m.flushed[p.dir][p.unique] = "cur/" + p.final
	}
	for dir := range dirs {
		if err := syncDir(filepath.Join(m.root, dir, "cur")); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("maildir: fsync: %w", err)
		}
	}
	return firstErr
}

// Close removes the files of messages stored but never flushed: they were
// never reported durable, so nothing refers to them.
func (m *Maildir) Close() error {
	for _, p := range m.pending {
		os.Remove(filepath.Join(m.root, p.dir, "tmp", p.tmp))
	}
	m.pending = nil
	if m.syncer != nil {
		m.syncer.close()
		m.syncer = nil
	}
	return nil
}

// fsyncFile is fsyncPath for a message's file, a variable for the tests.
var fsyncFile = fsyncPath

// fsyncPath opens a file and fsyncs it. Any descriptor will do on Linux and
// the BSDs: fsync writes the inode's data, not the descriptor's.
func fsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// runParallel runs fn(0..n-1) on at most workers goroutines and returns the
// first error.
func runParallel(n, workers int, fn func(i int) error) error {
	if workers > n {
		workers = n
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return firstErr
}

// SetFlags renames a flushed message's file as a mail program does when
// its flags change: the unique name stays, the info suffix gets the
// letters of flags (keywords: their dovecot-keywords letters, the table
// saved first), and the file moves to cur/, which is fsynced. It returns
// the new file, relative to the root.
func (m *Maildir) SetFlags(folder formats.Folder, id string, flags []string) (string, error) {
	old, _, err := m.Locate(folder, id)
	if err != nil {
		return "", err
	}
	dir, err := m.dirOf(folder)
	if err != nil {
		return "", err
	}
	letters, err := m.keywordLetters(dir, flags)
	if err != nil {
		return "", err
	}
	if err := m.saveKeywords([]string{dir}); err != nil {
		return "", err
	}
	sub := "cur/" + formats.FormatMaildirName(id, flags) + letters
	file := filepath.ToSlash(filepath.Join(dir, sub))
	if file == old {
		return file, nil
	}
	if err := renameNoReplace(filepath.Join(m.root, old), filepath.Join(m.root, file)); err != nil {
		return "", fmt.Errorf("maildir: %w", err)
	}
	if err := syncDir(filepath.Join(m.root, dir, "cur")); err != nil {
		return "", fmt.Errorf("maildir: %w", err)
	}
	if m.files[dir] != nil {
		m.files[dir][id] = cacheValue(sub, id)
	}
	if _, ok := m.flushed[dir][id]; ok {
		m.flushed[dir][id] = sub
	}
	return file, nil
}
