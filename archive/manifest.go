package archive

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/mailferry/mailferry/formats"
)

// The integrity manifest
//
// An archive directory DIR holds, next to the store's own files:
//
//	MANIFEST.jsonl       one JSON line per archived message (ManifestEntry), each
//	                     carrying the SHA-256 of the line before it ("prev"), so an
//	                     edited, removed or reordered line breaks the chain
//	SHA256SUMS           "<sha256>  <file>" for every message kept as a whole file
//	                     (Maildir): `cd DIR && sha256sum -c SHA256SUMS` checks the
//	                     archive without mailferry
//	MANIFEST.head        the chain's head after the last Flush: "mailferry-manifest-head
//	                     v1 seq=N sha256=H", N the last line's seq and H its hash, so
//	                     that Verify notices lines cut from or edited at the end
//	MANIFEST.journal*    present only while a Flush runs (or after a crash in one):
//	                     the entries of the batch being made durable
//
// A line's hash is the SHA-256 of its bytes without the final newline; the
// first line's prev is 64 zeros. The hash of the last line is the chain's
// head (Writer.LastHash): a user who keeps it elsewhere can later prove
// that nothing was cut from the end (VerifyOptions.LastHash).
//
// Order of a Flush, so that a crash at any point loses nothing that was
// reported durable and leaves no message unlisted:
//
//  1. the batch's entries go to this writer's journal, fsynced;
//  2. the store's Flush makes the messages durable;
//  3. the entries are appended to MANIFEST.jsonl, fsynced, then to SHA256SUMS,
//     then MANIFEST.head is replaced;
//  4. the journal is emptied.
//
// NewWriter finishes an interrupted Flush: it cuts a torn last line, adopts
// each journal entry whose message the store serves with the recorded
// SHA-256 and that the manifest lacks, rebuilds SHA256SUMS from the
// manifest, and removes the journals. Without a journal to explain it, a
// manifest whose end is not the one MANIFEST.head records is refused.
//
// Repairs. A message the manifest lists but the store no longer holds (a
// deleted Maildir file, a folder removed, an mbox cut short) is "lost". The
// Writer reports the store's truth to the engine (Ensure: the real message
// count and, while something is lost, a Validity of its own so that the
// engine's index of the folder is rebuilt; Index: only messages really
// there), so the engine copies the lost messages again. A new entry whose
// SHA-256 is that of a lost entry of the same folder records the repair:
// "repairs" is the lost entry's seq and "repair" says what was wrong. The
// lost entry is then superseded: SHA256SUMS lists only entries that are not,
// and Verify accepts a superseded entry's absence.
//
// One process writes an archive at a time: MANIFEST.jsonl is held under an
// exclusive flock(2) while a Writer is open (Verify takes a shared one).
// Inside a process, Writer.Share gives each worker its own Writer over the
// same manifest.

// File names inside an archive directory.
const (
	ManifestFile  = "MANIFEST.jsonl"
	SumsFile      = "SHA256SUMS"
	HeadFile      = "MANIFEST.head"
	journalPrefix = "MANIFEST.journal"
)

// zeroHash is the prev of the first line, and the head of an empty chain.
var zeroHash = strings.Repeat("0", 64)

// ManifestEntry is one line of MANIFEST.jsonl.
type ManifestEntry struct {
	Seq uint64 `json:"seq"` // 1, 2, 3... in file order
	// File is where the message lives, relative to DIR, slash-separated.
	File string `json:"file"`
	// Offset is the byte offset of the message's From_ line inside File for
	// stores that keep many messages per file (mbox); absent otherwise.
	Offset *int64 `json:"offset,omitempty"`
	Size   int64  `json:"size"`   // bytes the source served
	SHA256 string `json:"sha256"` // of exactly those bytes, hex
	Key    string `json:"key"`    // formats.Key, hex
	// Flags and Date as the source reported them; the manifest keeps what a
	// store cannot (keywords in Maildir, anything in mbox).
	Flags []string `json:"flags"`
	Date  string   `json:"date,omitempty"` // RFC 3339; absent when unknown
	// Folder and ID name the message at the source (display name, UID/UIDL).
	Folder string `json:"folder"`
	ID     string `json:"id"`
	// DestFolder and DestID name it in the archive's store: Store.Open of
	// formats.Folder{Path: DestFolder} and DestID returns its bytes.
	DestFolder []string `json:"dest_folder"`
	DestID     string   `json:"dest_id"`
	// Repairs, on an entry that re-adds a lost message, is the seq of the
	// lost entry (same SHA-256, same destination folder), and Repair says
	// what had become of it ("message missing: cur/…").
	Repairs uint64 `json:"repairs,omitempty"`
	Repair  string `json:"repair,omitempty"`
	// Record, on a line that is not a message's entry, says what it records
	// of the entry whose seq is Of: RecordFlags or RecordGone (records.go).
	Record string `json:"record,omitempty"`
	Of     uint64 `json:"of,omitempty"`
	Prev   string `json:"prev"` // SHA-256 of the previous line, hex
}

// Locator is an optional Store capability: naming the file (and, for mbox,
// the offset; -1 otherwise) of a stored message without opening it, also
// for a message stored but not yet flushed. The manifest Writer uses it
// when present and falls back to Store.Open after Flush otherwise, taking
// the offset from the ID for ".mbox" files (an mbox ID is its offset).
type Locator interface {
	Locate(folder formats.Folder, id string) (file string, offset int64, err error)
}

// placeOf returns where a stored message lives: its file relative to the
// store root and its offset (-1 for a whole file).
func placeOf(st Store, folder formats.Folder, id string) (string, int64, error) {
	if l, ok := st.(Locator); ok {
		return l.Locate(folder, id)
	}
	rc, file, err := st.Open(folder, id)
	if err != nil {
		return "", -1, err
	}
	rc.Close()
	if strings.HasSuffix(file, ".mbox") {
		if off, err := strconv.ParseInt(id, 10, 64); err == nil {
			return file, off, nil
		}
	}
	return file, -1, nil
}

// Writer wraps a Store and records every message stored through it in the
// archive's manifest. It has the Store method set: the sink side delegates
// and tees each body through SHA-256 on its way into the store; the source
// side delegates too, with List giving back the flags and dates the
// manifest recorded (which a store may not keep: keywords in Maildir file
// names, anything at all in mbox).
//
// Like a Store, a Writer is used by one goroutine at a time; Writers made
// with Share may be used by different goroutines at once.
type Writer struct {
	st      Store
	log     *manifestLog
	journal string       // this writer's journal file
	jf      *os.File     // open once the first batch was journaled
	jbuf    bytes.Buffer // writeJournal's, kept from one batch to the next
	pending []pendingEntry
	broken  error // set once a Flush failed half-way; see Flush
	closed  bool
}

// pendingEntry is a message stored but not yet flushed.
type pendingEntry struct {
	folder formats.Folder
	e      ManifestEntry // without Seq, File, Offset and Prev
}

// keptBufMax is the largest batch buffer kept for the next batch: one
// grown by a batch much larger than a Flush's (a rerun recording the flags
// of many messages at once) is left to the collector.
const keptBufMax = 4 << 20

// dropLarge lets go of the arrays of bufs larger than keptBufMax.
func dropLarge(bufs ...*bytes.Buffer) {
	for _, b := range bufs {
		if b.Cap() > keptBufMax {
			*b = bytes.Buffer{}
		}
	}
}

// manifestLog is the open MANIFEST.jsonl shared by the Writers of one
// archive directory.
type manifestLog struct {
	dir string

	mu       sync.Mutex
	f        *os.File // MANIFEST.jsonl, flocked, O_APPEND
	size     int64    // known-good length of f
	sums     *os.File // SHA256SUMS, opened on first use
	seq      uint64   // seq of the last line
	last     string   // hash of the last line
	refs     int      // open Writers
	journals int      // journal names handed out
	overlay  map[string]entryMeta
	ledger   *ledger       // the live entries by folder, loaded on first use
	places   *folderPlaces // where each folder's lines are, built on first use
	// append's buffers, kept from one batch to the next so that a batch's
	// lines are not copied again each time a buffer doubles.
	lineBuf, sumsBuf bytes.Buffer
}

// entryMeta is what Writer.List takes from the manifest.
type entryMeta struct {
	flags []string
	date  time.Time
}

var _ Store = (*Writer)(nil)

// lockWait is how long flockWaiting waits for a lock that is taken.
var lockWait = time.Second

// flockWaiting takes f's flock (how: syscall.LOCK_EX or LOCK_SH), waiting
// up to lockWait for one that is taken. A flock belongs to the open file,
// not the process: a process that forks (a test binary starting programs
// beside an in-process run) copies the descriptor into the child until the
// child's exec closes it, so a run that has just closed the manifest can
// still hold its lock for that moment (TestArchiveRecordsFlagsAndGone
// failed in CI so: "in use by another mailferry process" between two runs
// in one process; TestNULBytesSurviveIMAPSource's verify, "being written
// by a running mailferry", right after its archive run). A real second run
// holds it for its whole length and is still refused. The error is
// syscall.EWOULDBLOCK when the lock stayed taken.
func flockWaiting(f *os.File, how int) error {
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil || !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// NewWriter opens (or creates) DIR/MANIFEST.jsonl for the store st, whose
// root must be dir, repairing what an interrupted run left (see the
// comment at the top of this file). It fails if another process has the
// archive open. Close the Writer to close st and release the manifest.
func NewWriter(dir string, st Store) (*Writer, error) {
	f, err := os.OpenFile(filepath.Join(dir, ManifestFile), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := flockWaiting(f, syscall.LOCK_EX); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("manifest: %s is in use by another mailferry process", dir)
		}
		return nil, fmt.Errorf("manifest: lock: %w", err)
	}
	l := &manifestLog{dir: dir, f: f, refs: 1, journals: 1}
	if err := l.openTail(); err != nil {
		f.Close()
		return nil, err
	}
	hseq, hhash, hok, err := readHead(dir)
	if err != nil {
		f.Close()
		return nil, err
	}
	interrupted := nonEmptyJournal(dir)
	if hok && !interrupted && (hseq != l.seq || hhash != l.last) {
		f.Close()
		return nil, fmt.Errorf("manifest: %s ends at seq %d (%.12s…) but %s records seq %d (%.12s…): "+
			"lines were cut from or changed at its end; run verify (remove %s to accept the manifest as it is)",
			ManifestFile, l.seq, l.last, HeadFile, hseq, hhash, HeadFile)
	}
	if err := l.recover(st); err != nil {
		l.close()
		return nil, err
	}
	if !hok || interrupted {
		if err := writeHead(dir, l.seq, l.last); err != nil {
			l.close()
			return nil, err
		}
	}
	return &Writer{st: st, log: l, journal: filepath.Join(dir, journalPrefix)}, nil
}

// Share returns another Writer over the same manifest for the store st
// (another worker's store on the same directory). Entries from all sharing
// Writers go into one chain, in the order their Flushes finish. The
// manifest is released when the last of them is closed.
func (w *Writer) Share(st Store) *Writer {
	l := w.log
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refs++
	name := fmt.Sprintf("%s.%d", journalPrefix, l.journals)
	l.journals++
	return &Writer{st: st, log: l, journal: filepath.Join(l.dir, name)}
}

// LastHash returns the chain's head: the SHA-256 of the manifest's last
// line, hex (64 zeros when it is empty). Print it at the end of a run.
func (w *Writer) LastHash() string {
	w.log.mu.Lock()
	defer w.log.mu.Unlock()
	return w.log.last
}

// Folders delegates to the wrapped store, then reports, for each folder
// that lost messages the manifest lists, a Validity of its own (see
// Repairs at the top of this file). For mbox only lost messages past the
// file's end are noticed here; Ensure looks at every message.
func (w *Writer) Folders(ctx context.Context) ([]formats.Folder, error) {
	fs, err := w.st.Folders(ctx)
	if err != nil {
		return nil, err
	}
	for i := range fs {
		if fs[i].NoSelect {
			continue
		}
		if quick, err := w.whole(fs[i]); err != nil {
			return nil, err
		} else if quick {
			continue
		}
		if fs[i], err = w.truth(ctx, fs[i], false); err != nil {
			return nil, err
		}
	}
	return fs, nil
}

// whole says, without reading the manifest, that f needs no closer look
// in a listing: a Maildir folder's count of files is in the listing (a
// lost file shows there, and Ensure looks at every message), and an mbox
// file as long as its .len record has lost nothing past its end. A no-op
// rerun then costs no manifest scan.
func (w *Writer) whole(f formats.Folder) (bool, error) {
	switch st := w.st.(type) {
	case *Maildir:
		return true, nil
	case *Mbox:
		_, agrees, err := st.readableSize(f)
		return agrees, err
	}
	return false, nil
}

// List lists the store's messages, replacing Flags and Date with what the
// manifest recorded for those it lists.
func (w *Writer) List(ctx context.Context, folder formats.Folder) (uint32, []formats.Message, error) {
	v, msgs, err := w.st.List(ctx, folder)
	if err != nil {
		return v, msgs, err
	}
	l := w.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.loadOverlay(); err != nil {
		return 0, nil, err
	}
	for i := range msgs {
		if meta, ok := l.overlay[destKey(folder.Path, msgs[i].ID)]; ok {
			msgs[i].Flags = meta.flags
			if !meta.date.IsZero() {
				msgs[i].Date = meta.date
			}
		}
	}
	return v, msgs, nil
}

// Headers delegates to the wrapped store.
// loadOverlay reads the flags and dates the manifest has for each
// message (its entry, or its last flags record) into l.overlay once.
// Callers hold l.mu.
func (l *manifestLog) loadOverlay() error {
	if l.overlay != nil {
		return nil
	}
	ov := map[string]entryMeta{}
	err := l.scan(func(_ []byte, e *ManifestEntry) error {
		if e.Record != RecordGone {
			ov[destKey(e.DestFolder, e.DestID)] = metaOf(e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.overlay = ov
	return nil
}

func (w *Writer) Headers(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(m formats.Message, header []byte) error) error {
	return w.st.Headers(ctx, folder, msgs, fn)
}

// Fetch delegates to the wrapped store.
func (w *Writer) Fetch(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(m formats.Message, body io.Reader) error) error {
	return w.st.Fetch(ctx, folder, msgs, fn)
}

// Separator delegates to the wrapped store.
func (w *Writer) Separator() rune { return w.st.Separator() }

// Ensure delegates to the wrapped store, then makes the folder ready for
// appending and reports its truth:
//   - Maildir: files in tmp/ that this archive's earlier, killed runs left
//     (mailferry's own names, another process id; the manifest's lock
//     proves that process is gone) are removed: they were never reported
//     durable, and the engine copies their messages again;
//   - mbox: a file holding bytes past the length its .len records (written
//     by another program) is refused, so that they never become part of the
//     recorded region; a file shorter than recorded (cut) is accepted as it
//     is, its lost messages to be copied again;
//   - Messages is the number of messages the store holds and, while any
//     message the manifest lists is lost, Validity is changed and UIDNext
//     is 0, so that the engine indexes the folder afresh.
func (w *Writer) Ensure(ctx context.Context, path []string) (formats.Folder, error) {
	f, err := w.st.Ensure(ctx, path)
	if err != nil {
		return f, err
	}
	switch st := w.st.(type) {
	case *Maildir:
		if dir, err := st.dirOf(f); err == nil {
			st.removeDeadTmp(dir)
		}
	case *Mbox:
		if err := st.checkRecordedEnd(f); err != nil {
			return formats.Folder{}, err
		}
	}
	return w.truth(ctx, f, true)
}

// Index delegates to the wrapped store, leaving out messages that the
// manifest lists with another size than the store now gives (an mbox
// message cut short): they are not really there.
func (w *Writer) Index(ctx context.Context, folder formats.Folder, known func(id string) bool,
	fn func(id string, key formats.Key) error) error {
	lost, err := w.lostOf(ctx, folder)
	if err != nil {
		return err
	}
	return w.st.Index(ctx, folder, known, func(id string, key formats.Key) error {
		if lost[id] {
			return nil
		}
		return fn(id, key)
	})
}

// Open delegates to the wrapped store.
func (w *Writer) Open(folder formats.Folder, id string) (io.ReadCloser, string, error) {
	return w.st.Open(folder, id)
}

// Store stores the message in the wrapped store while hashing exactly the
// bytes the store consumed, and keeps its manifest entry until Flush.
func (w *Writer) Store(ctx context.Context, folder formats.Folder, m formats.Message, size int64, body io.Reader) (string, error) {
	if w.broken != nil {
		return "", w.broken
	}
	h := sha256.New()
	var kw formats.KeyWriter
	defer kw.Release() // the key is kept as a string, a copy
	var n byteCounter
	id, err := w.st.Store(ctx, folder, m, size, io.TeeReader(body, io.MultiWriter(h, &kw, &n)))
	if err != nil {
		return "", err
	}
	e := ManifestEntry{
		Size:       int64(n),
		SHA256:     hex.EncodeToString(h.Sum(nil)),
		Key:        kw.Key().String(),
		Flags:      formats.CleanFlags(m.Flags),
		Folder:     m.SourceFolder,
		ID:         m.ID,
		DestFolder: folder.Path,
		DestID:     id,
	}
	if !m.Date.IsZero() {
		e.Date = m.Date.Format(time.RFC3339)
	}
	w.pending = append(w.pending, pendingEntry{folder: folder, e: e})
	return id, nil
}

// byteCounter counts bytes.
type byteCounter int64

func (c *byteCounter) Write(p []byte) (int, error) { *c += byteCounter(len(p)); return len(p), nil }

// Flush makes the messages stored since the last Flush durable and records
// them in the manifest (see the order at the top of this file). When it
// returns nil they are durable and listed. After an error the Writer
// refuses further work: what the failed batch left is sorted out by the
// next NewWriter, from the journal.
func (w *Writer) Flush(ctx context.Context) error {
	if w.broken != nil {
		return w.broken
	}
	batch := w.pending
	w.pending = nil
	if len(batch) == 0 {
		return w.st.Flush(ctx)
	}
	fail := func(err error) error {
		w.broken = fmt.Errorf("manifest: writer stopped after an earlier error: %w", err)
		return err
	}
	if err := w.writeJournal(batch); err != nil {
		return fail(err)
	}
	if err := w.st.Flush(ctx); err != nil {
		return fail(err)
	}
	entries := make([]ManifestEntry, len(batch))
	for i, p := range batch {
		file, off, err := placeOf(w.st, p.folder, p.e.DestID)
		if err != nil {
			return fail(fmt.Errorf("manifest: locating stored message: %w", err))
		}
		entries[i] = p.e
		entries[i].File = file
		if off >= 0 {
			entries[i].Offset = &off
		}
	}
	if err := w.log.appendRepairs(entries); err != nil {
		return fail(err)
	}
	// The batch is listed: the journal is no longer needed. Emptying it
	// need not be durable (a stale journal's entries are found listed).
	if err := w.jf.Truncate(0); err != nil {
		return fail(fmt.Errorf("manifest: %w", err))
	}
	return nil
}

// writeJournal replaces the writer's journal with the batch's entries and
// makes it durable.
func (w *Writer) writeJournal(batch []pendingEntry) error {
	if w.jf == nil {
		f, err := os.OpenFile(w.journal, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		if err := syncDir(w.log.dir); err != nil {
			f.Close()
			return fmt.Errorf("manifest: fsync: %w", err)
		}
		w.jf = f
	}
	buf := &w.jbuf
	buf.Reset()
	defer dropLarge(buf)
	for _, p := range batch {
		line, err := json.Marshal(p.e)
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	if err := w.jf.Truncate(0); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if _, err := w.jf.WriteAt(buf.Bytes(), 0); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := w.jf.Sync(); err != nil {
		return fmt.Errorf("manifest: fsync: %w", err)
	}
	return nil
}

// Close closes the wrapped store and, for the last Writer of the
// manifest, the manifest itself. Messages stored since the last Flush are
// not recorded (and the store drops them). A journal is kept only when a
// failed Flush left entries in it, for the next NewWriter to sort out.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.st.Close()
	if w.jf != nil {
		fi, serr := w.jf.Stat()
		w.jf.Close()
		if serr == nil && fi.Size() == 0 {
			os.Remove(w.journal)
		}
	}
	l := w.log
	l.mu.Lock()
	l.refs--
	last := l.refs == 0
	l.mu.Unlock()
	if last {
		if cerr := l.close(); err == nil {
			err = cerr
		}
	}
	return err
}

// close releases the manifest (and its lock).
func (l *manifestLog) close() error {
	var err error
	if l.sums != nil {
		err = l.sums.Close()
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return nil
}

// openTail reads the chain's head from the last line, first cutting a torn
// line (one with no final newline) that a crash mid-append left.
func (l *manifestLog) openTail() error {
	line, end, err := lastLine(l.f)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	fi, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if fi.Size() > end {
		if err := l.f.Truncate(end); err != nil {
			return fmt.Errorf("manifest: cutting a torn last line: %w", err)
		}
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("manifest: fsync: %w", err)
		}
	}
	l.size = end
	l.last = zeroHash
	if line == nil {
		return nil
	}
	var e ManifestEntry
	if err := json.Unmarshal(line, &e); err != nil {
		return fmt.Errorf("manifest: the last line of %s is damaged (run verify): %w", ManifestFile, err)
	}
	l.seq = e.Seq
	l.last = lineHash(line)
	return nil
}

// lastLine returns the last newline-terminated line of f without its
// newline (nil if there is none) and the offset just after it.
func lastLine(f *os.File) ([]byte, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	for w := int64(64 << 10); ; w *= 2 {
		start := max(0, size-w)
		buf := make([]byte, size-start)
		if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
			return nil, 0, err
		}
		nl := bytes.LastIndexByte(buf, '\n')
		if nl < 0 && start > 0 {
			continue
		}
		if nl < 0 {
			return nil, 0, nil
		}
		prev := bytes.LastIndexByte(buf[:nl], '\n')
		if prev < 0 && start > 0 {
			continue
		}
		return buf[prev+1 : nl], start + int64(nl) + 1, nil
	}
}

// lineHash is the chain hash of one line (without its newline).
func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// scan calls fn for every line of the manifest, in order, with the line
// (without newline, valid only during the call) and its parsed entry.
// Callers hold l.mu.
func (l *manifestLog) scan(fn func(line []byte, e *ManifestEntry) error) error {
	n := 0
	return eachLine(l.f, 0, l.size, func(_ int64, line []byte) error {
		n++
		return decodeLine(line, fn, func() string { return fmt.Sprintf("line %d", n) })
	})
}

// eachLine calls fn with each whole line of f's bytes [start, end), its
// newline included (valid only during the call), and the line's offset. A
// last line without a newline is left out.
func eachLine(f io.ReaderAt, start, end int64, fn func(off int64, line []byte) error) error {
	r := bufio.NewReaderSize(io.NewSectionReader(f, start, end-start), int(min(end-start+1, 256<<10)))
	for off := start; ; {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			line, err = readLong(r, line)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		if err := fn(off, line); err != nil {
			return err
		}
		off += int64(len(line))
	}
}

// decodeLine calls fn with a manifest line (given with its newline, passed
// on without) and its entry; where names the line in the error for one
// that does not decode.
func decodeLine(line []byte, fn func(line []byte, e *ManifestEntry) error, where func() string) error {
	line = line[:len(line)-1]
	var e ManifestEntry
	if err := json.Unmarshal(line, &e); err != nil {
		return fmt.Errorf("manifest: %s is damaged (run verify): %w", where(), err)
	}
	return fn(line, &e)
}

// readLong finishes a line longer than r's buffer, whose start is first.
func readLong(r *bufio.Reader, first []byte) ([]byte, error) {
	line := append([]byte(nil), first...)
	rest, err := r.ReadBytes('\n')
	return append(line, rest...), err
}

// append adds entries at the end of the chain, fsyncs the manifest, then
// adds their SHA256SUMS lines and fsyncs that.
func (l *manifestLog) append(entries []ManifestEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	buf, sums := &l.lineBuf, &l.sumsBuf
	buf.Reset()
	sums.Reset()
	defer dropLarge(buf, sums)
	seq, prev := l.seq, l.last
	ends := make([]int, len(entries)) // each line's end in buf
	for i := range entries {
		e := &entries[i]
		seq++
		e.Seq, e.Prev = seq, prev
		if e.Flags == nil {
			e.Flags = []string{}
		}
		line, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		prev = lineHash(line)
		buf.Write(line)
		buf.WriteByte('\n')
		ends[i] = buf.Len()
		if e.Offset == nil && e.Record == "" {
			sums.WriteString(sumsLine(e.SHA256, e.File))
		}
	}
	if _, err := l.f.Write(buf.Bytes()); err != nil {
		l.f.Truncate(l.size) // best effort: keep the file a whole number of lines
		return fmt.Errorf("manifest: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		l.places = nil // the lines are in the file past l.size
		return fmt.Errorf("manifest: fsync: %w", err)
	}
	if p := l.places; p != nil && p.upTo == l.size {
		start := 0
		for _, end := range ends {
			p.add(p.keyOf(buf.Bytes()[start:end]), l.size+int64(start), l.size+int64(end))
			start = end
		}
		p.upTo += int64(buf.Len())
	} else {
		l.places = nil
	}
	l.size += int64(buf.Len())
	l.seq, l.last = seq, prev
	if l.overlay != nil {
		for i := range entries {
			if entries[i].Record != RecordGone {
				l.overlay[destKey(entries[i].DestFolder, entries[i].DestID)] = metaOf(&entries[i])
			}
		}
	}
	if l.ledger != nil {
		for i := range entries {
			if l.ledger.loaded[folderKey(entries[i].DestFolder)] {
				l.ledger.add(&entries[i])
			}
		}
	}
	if sums.Len() > 0 {
		if err := l.appendSums(sums.Bytes()); err != nil {
			return err
		}
	}
	return writeHead(l.dir, l.seq, l.last)
}

// appendSums appends lines to SHA256SUMS and fsyncs it.
func (l *manifestLog) appendSums(lines []byte) error {
	if l.sums == nil {
		f, err := os.OpenFile(filepath.Join(l.dir, SumsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		l.sums = f
	}
	if _, err := l.sums.Write(lines); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := l.sums.Sync(); err != nil {
		return fmt.Errorf("manifest: fsync: %w", err)
	}
	return nil
}

// sumsLine formats one SHA256SUMS line as GNU sha256sum does, escaping a
// file name that holds a backslash or a newline.
func sumsLine(sum, file string) string {
	if !strings.ContainsAny(file, "\\\n\r") {
		return sum + "  " + file + "\n"
	}
	r := strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r")
	return "\\" + sum + "  " + r.Replace(file) + "\n"
}

// recover finishes what an interrupted Flush left: see the comment at the
// top of this file. It runs in NewWriter, before any message is stored.
func (l *manifestLog) recover(st Store) error {
	journals, err := filepath.Glob(filepath.Join(l.dir, journalPrefix+"*"))
	if err != nil || len(journals) == 0 {
		return err
	}
	// Entries the journals announced, by destination.
	cand := map[string]*ManifestEntry{}
	var order []string
	for _, j := range journals {
		data, err := os.ReadFile(j)
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break // torn: its batch was never flushed
			}
			var e ManifestEntry
			if json.Unmarshal(data[:i], &e) == nil {
				k := destKey(e.DestFolder, e.DestID)
				if _, dup := cand[k]; !dup {
					cand[k] = &e
					order = append(order, k)
				}
			}
			data = data[i+1:]
		}
	}
	// One pass over the manifest: drop the candidates it lists. Then
	// rebuild SHA256SUMS, which may lag behind it.
	err = l.scan(func(_ []byte, e *ManifestEntry) error {
		delete(cand, destKey(e.DestFolder, e.DestID))
		return nil
	})
	if err != nil {
		return err
	}
	if err := l.rebuildSums(); err != nil {
		return err
	}
	// Adopt what the store holds exactly as announced.
	var adopt []ManifestEntry
	for _, k := range order {
		e, ok := cand[k]
		if !ok {
			continue
		}
		folder := formats.Folder{Path: e.DestFolder}
		if !storedAsAnnounced(st, folder, e) {
			continue
		}
		file, off, err := placeOf(st, folder, e.DestID)
		if err != nil {
			continue
		}
		e.File = file
		if off >= 0 {
			e.Offset = &off
		}
		adopt = append(adopt, *e)
	}
	if len(adopt) > 0 {
		if err := l.append(adopt); err != nil {
			return err
		}
	}
	for _, j := range journals {
		os.Remove(j)
	}
	if err := syncDir(l.dir); err != nil {
		return fmt.Errorf("manifest: fsync: %w", err)
	}
	return nil
}

// storedAsAnnounced reports whether st serves the message e names with the
// size and SHA-256 e records.
func storedAsAnnounced(st Store, folder formats.Folder, e *ManifestEntry) bool {
	rc, _, err := st.Open(folder, e.DestID)
	if err != nil {
		return false
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	return err == nil && n == e.Size && hex.EncodeToString(h.Sum(nil)) == e.SHA256
}

// destKey identifies a message in the store: destination folder and ID.
// A name is taken as the manifest gives it back (asJSON): a key made from
// a folder's own name and one made from a decoded entry are the same.
func destKey(path []string, id string) string {
	var b strings.Builder
	for i, c := range path {
		if i == 0 && strings.EqualFold(c, "INBOX") {
			c = "INBOX"
		}
		b.WriteString(asJSON(c))
		b.WriteByte(0)
	}
	b.WriteByte(1)
	b.WriteString(asJSON(id))
	return b.String()
}

// asJSON returns s as encoding/json writes and reads it back: each byte
// that is not part of valid UTF-8 becomes U+FFFD. An mbox file named in
// Latin-1 is a folder whose name is not UTF-8; keyed by its own bytes, the
// manifest's entries for it (which have U+FFFD) were never found, so that
// a rerun did not see its archived messages go missing.
func asJSON(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+w])
		}
		i += w
	}
	return b.String()
}

// metaOf extracts what Writer.List overlays.
func metaOf(e *ManifestEntry) entryMeta {
	m := entryMeta{flags: e.Flags}
	if e.Date != "" {
		m.date, _ = time.Parse(time.RFC3339, e.Date)
	}
	return m
}
