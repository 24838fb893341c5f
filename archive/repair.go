package archive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// The chain head file, the ledger of live entries, and what the Writer
// does to find and record repairs (see "Repairs" in manifest.go).

const headMagic = "mailferry-manifest-head v1"

func formatHead(seq uint64, hash string) string {
	return fmt.Sprintf("%s seq=%d sha256=%s\n", headMagic, seq, hash)
}

// readHead reads DIR/MANIFEST.head; ok is false when there is none.
func readHead(dir string) (seq uint64, hash string, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, HeadFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("manifest: %w", err)
	}
	return parseHead(b)
}

func parseHead(b []byte) (uint64, string, bool, error) {
	var seq uint64
	var hash string
	if _, err := fmt.Sscanf(string(b), headMagic+" seq=%d sha256=%s", &seq, &hash); err != nil ||
		len(hash) != 64 || formatHead(seq, hash) != string(b) {
		if len(b) > 120 {
			b = b[:120]
		}
		return 0, "", false, fmt.Errorf("manifest: %s is unreadable: %q", HeadFile, b)
	}
	return seq, hash, true, nil
}

// writeHead replaces DIR/MANIFEST.head durably (temporary file, fsync,
// rename, fsync of the directory).
func writeHead(dir string, seq uint64, hash string) error {
	tmp := filepath.Join(dir, HeadFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	_, err = f.WriteString(formatHead(seq, hash))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, HeadFile))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("manifest: writing %s: %w", HeadFile, err)
	}
	return nil
}

// nonEmptyJournal reports whether an interrupted Flush left a journal with
// entries in dir: then the manifest, SHA256SUMS and MANIFEST.head may
// disagree at their ends until the next NewWriter finishes that Flush.
func nonEmptyJournal(dir string) bool {
	js, _ := filepath.Glob(filepath.Join(dir, journalPrefix+"*"))
	for _, j := range js {
		if fi, err := os.Stat(j); err == nil && fi.Size() > 0 {
			return true
		}
	}
	return false
}

// rebuildSums rewrites SHA256SUMS from the manifest: one line per
// whole-file entry that no later entry supersedes. Callers hold l.mu (or
// are alone with l, as NewWriter is).
func (l *manifestLog) rebuildSums() error {
	shaOf := map[uint64]string{}
	sup := map[uint64]bool{}
	fileOf := map[uint64]string{} // where a flags record says a message lives now
	err := l.scan(func(_ []byte, e *ManifestEntry) error {
		if e.Record != "" {
			if e.Record == RecordFlags {
				fileOf[e.Of] = e.File
			}
			return nil
		}
		shaOf[e.Seq] = e.SHA256
		if e.Repairs != 0 && e.Repairs < e.Seq && shaOf[e.Repairs] == e.SHA256 {
			sup[e.Repairs] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	tmp := filepath.Join(l.dir, SumsFile+".tmp")
	sf, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	bw := bufio.NewWriter(sf)
	err = l.scan(func(_ []byte, e *ManifestEntry) error {
		if e.Offset == nil && !sup[e.Seq] && e.Record == "" {
			file := e.File
			if f, ok := fileOf[e.Seq]; ok {
				file = f
			}
			bw.WriteString(sumsLine(e.SHA256, file))
		}
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = sf.Sync()
	}
	if cerr := sf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(l.dir, SumsFile))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("manifest: rebuilding %s: %w", SumsFile, err)
	}
	if l.sums != nil { // the old file: appends must go to the new one
		l.sums.Close()
		l.sums = nil
	}
	return nil
}

// ledger is what the Writer knows of the manifest's entries by folder.
//
// It holds the entries of a folder only while they are needed (loadFolder):
// Ensure's look at a folder loads them and lets them go (truth), the
// records of the cutover keep them (entryOf, DestFlags). Entries appended
// to a folder that is not loaded are not kept, so that a first copy's
// memory does not grow with the archive: a million entries took more than
// 150 MB.
type ledger struct {
	bySeq    map[uint64]*liveEntry   // the entries of the loaded folders
	byFolder map[string][]*liveEntry // by folderKey, loaded folders only
	loaded   map[string]bool
	// lost is, per folder, what the last full look (Ensure) found lost;
	// checked says which folders had that look.
	lost    map[string]*lostSet
	checked map[string]bool
}

// liveEntry is what the ledger keeps of one manifest entry.
type liveEntry struct {
	seq        uint64
	file       string
	offset     int64 // -1 for a whole file
	size       int64
	sha        string
	destID     string
	src        string // the source folder and ID it was copied from (sourceKey)
	superseded bool   // a later entry repairs it
}

// sourceKey names a message of the source as the manifest records it.
func sourceKey(folder, id string) string { return folder + "\x00" + id }

func (le *liveEntry) place() string {
	if le.offset >= 0 {
		return fmt.Sprintf("%s@%d", le.file, le.offset)
	}
	return le.file
}

// lostSet is the lost entries of one folder.
type lostSet struct {
	ids   map[string]bool // dest IDs the store serves with another size
	bySha map[string][]lostEntry
}

type lostEntry struct {
	e   *liveEntry
	why string
}

func folderKey(path []string) string { return destKey(path, "") }

// newLiveEntry is what the ledger keeps of the message entry e.
func newLiveEntry(e *ManifestEntry) *liveEntry {
	le := &liveEntry{seq: e.Seq, file: e.File, offset: -1, size: e.Size, sha: e.SHA256, destID: e.DestID,
		src: sourceKey(e.Folder, e.ID)}
	if e.Offset != nil {
		le.offset = *e.Offset
	}
	return le
}

func (lg *ledger) add(e *ManifestEntry) {
	if e.Record != "" { // records.go: a flags record moves a Maildir file
		if old := lg.bySeq[e.Of]; old != nil && e.Record == RecordFlags {
			old.file = e.File
		}
		return
	}
	le := newLiveEntry(e)
	if old := lg.bySeq[e.Repairs]; e.Repairs != 0 && old != nil && old.sha == e.SHA256 {
		old.superseded = true
	}
	lg.bySeq[e.Seq] = le
	k := folderKey(e.DestFolder)
	lg.byFolder[k] = append(lg.byFolder[k], le)
}

// theLedger returns l.ledger, made on first use. Callers hold l.mu.
func (l *manifestLog) theLedger() *ledger {
	if l.ledger == nil {
		l.ledger = &ledger{bySeq: map[uint64]*liveEntry{}, byFolder: map[string][]*liveEntry{},
			loaded: map[string]bool{}, lost: map[string]*lostSet{}, checked: map[string]bool{}}
	}
	return l.ledger
}

// loadFolder reads the entries of the folder at path from the manifest
// into the ledger, unless they are there, and returns its folderKey and
// whether this call loaded them. Only the folder's lines are read and
// decoded (folderPlaces). Callers hold l.mu.
func (l *manifestLog) loadFolder(path []string) (k string, loadedNow bool, err error) {
	lg := l.theLedger()
	k = folderKey(path)
	if lg.loaded[k] {
		return k, false, nil
	}
	if err := l.freshPlaces(); err != nil {
		return k, false, err
	}
	err = l.scanSpans(l.places.placesFor(k), func(_ []byte, e *ManifestEntry) error {
		if folderKey(e.DestFolder) == k {
			lg.add(e)
		}
		return nil
	})
	if err != nil {
		return k, false, err
	}
	lg.loaded[k] = true
	return k, true, nil
}

// freshPlaces makes l.places cover the whole manifest. Callers hold l.mu.
func (l *manifestLog) freshPlaces() error {
	if l.places != nil && l.places.upTo == l.size {
		return nil
	}
	var err error
	l.places, err = l.buildPlaces()
	return err
}

// badEntries returns, in manifest order, the entries of the folder k (a
// folderKey) that bad reports and no later entry repairs, as the ledger
// would hold them (with the file a later flags record gives them). It
// reads the folder's lines as loadFolder does but keeps only those
// entries: a look at a folder (truth) held every entry of it, 235 bytes a
// message, 70 MB for a folder of 300,000. bad sees each entry as it is
// read; what it looks at (destID, size, offset) no later record changes.
// Callers hold l.mu.
func (l *manifestLog) badEntries(k string, bad func(*liveEntry) bool) ([]*liveEntry, error) {
	if err := l.freshPlaces(); err != nil {
		return nil, err
	}
	kept := map[uint64]*liveEntry{}
	var out []*liveEntry
	err := l.scanSpans(l.places.placesFor(k), func(_ []byte, e *ManifestEntry) error {
		if folderKey(e.DestFolder) != k {
			return nil
		}
		if e.Record != "" { // as ledger.add
			if old := kept[e.Of]; old != nil && e.Record == RecordFlags {
				old.file = e.File
			}
			return nil
		}
		if old := kept[e.Repairs]; e.Repairs != 0 && old != nil && old.sha == e.SHA256 {
			old.superseded = true
		}
		if le := newLiveEntry(e); bad(le) {
			kept[le.seq] = le
			out = append(out, le)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(le *liveEntry) bool { return le.superseded }), nil
}

// unloadFolder lets go of the entries of the folder k (a folderKey).
// Callers hold l.mu.
func (l *manifestLog) unloadFolder(k string) {
	lg := l.theLedger()
	for _, le := range lg.byFolder[k] {
		delete(lg.bySeq, le.seq)
	}
	delete(lg.byFolder, k)
	delete(lg.loaded, k)
}

// truth returns f with Messages counted and, when messages the manifest
// lists are lost, a Validity of its own and UIDNext 0. full looks at every
// message (and remembers what is lost, for Flush and Index); otherwise an
// mbox folder is checked only for messages past its end.
func (w *Writer) truth(ctx context.Context, f formats.Folder, full bool) (formats.Folder, error) {
	var (
		// held is the size of the message the store holds under an ID;
		// nil: see limit. count is how many it holds.
		held  func(id string) (int64, bool)
		count int
		limit int64 = -1
	)
	switch st := w.st.(type) {
	case *Maildir:
		dir, err := st.dirOf(f)
		if err != nil {
			return f, err
		}
		files, err := st.heldFiles(dir)
		if err != nil {
			return f, err
		}
		held = func(id string) (int64, bool) { return heldSize(files, id) }
		count = len(files)
	case *Mbox:
		if !full {
			n, agrees, err := st.readableSize(f)
			if err != nil {
				return f, err
			}
			if agrees {
				limit = n
				break
			}
			// The file is not the length its .len records: look at
			// every message, as Ensure does.
		}
		_, msgs, err := st.List(ctx, f)
		if err != nil {
			return f, err
		}
		ids := make(map[string]int64, len(msgs))
		for _, m := range msgs {
			ids[m.ID] = m.Size
		}
		held = func(id string) (int64, bool) { n, ok := ids[id]; return n, ok }
		count = len(ids)
	default:
		return f, nil // a store this file does not know: as it says
	}
	// bad says whether the store lacks le's message or holds it with
	// another size.
	bad := func(le *liveEntry) bool {
		if held == nil {
			return le.offset >= limit
		}
		n, ok := held(le.destID)
		return !ok || n != le.size
	}
	l := w.log
	l.mu.Lock()
	defer l.mu.Unlock()
	k := folderKey(f.Path)
	var bads []*liveEntry
	if lg := l.theLedger(); lg.loaded[k] {
		for _, le := range lg.byFolder[k] {
			if !le.superseded && bad(le) {
				bads = append(bads, le)
			}
		}
	} else {
		var err error
		if bads, err = l.badEntries(k, bad); err != nil {
			return f, err
		}
	}
	ls := &lostSet{ids: map[string]bool{}, bySha: map[string][]lostEntry{}}
	h := fnv.New32a()
	lost := 0
	for _, le := range bads {
		why := "message missing: " + le.place()
		if held != nil {
			if n, ok := held(le.destID); ok {
				why = fmt.Sprintf("message changed: %s is %d bytes, %d were recorded", le.place(), n, le.size)
				ls.ids[le.destID] = true
			}
		}
		ls.bySha[le.sha] = append(ls.bySha[le.sha], lostEntry{le, why})
		fmt.Fprintf(h, "%d,", le.seq)
		lost++
	}
	if full {
		l.ledger.checked[k] = true
		if lost > 0 {
			l.ledger.lost[k] = ls
		} else {
			delete(l.ledger.lost, k)
		}
	}
	if held != nil {
		f.Messages, f.Uncounted = uint32(count), false
	}
	if lost > 0 {
		v := f.Validity ^ (h.Sum32() | 1<<31)
		if v == 0 || v == f.Validity {
			v = f.Validity + 1
		}
		f.Validity, f.UIDNext = v, 0
	}
	return f, nil
}

// lostOf returns the IDs of folder that the store serves with another size
// than the manifest records (looking at the folder first if Ensure did
// not).
func (w *Writer) lostOf(ctx context.Context, folder formats.Folder) (map[string]bool, error) {
	if _, ok := w.st.(*Mbox); !ok {
		return nil, nil // Maildir: a lost file is not listed by the store
	}
	k := folderKey(folder.Path)
	w.log.mu.Lock()
	checked := w.log.theLedger().checked[k]
	w.log.mu.Unlock()
	if !checked {
		if _, err := w.truth(ctx, folder, true); err != nil {
			return nil, err
		}
	}
	w.log.mu.Lock()
	defer w.log.mu.Unlock()
	if ls := w.log.ledger.lost[k]; ls != nil {
		return ls.ids, nil
	}
	return nil, nil
}

// LostSources returns the IDs of the messages of sourceFolder whose copies
// in folder Ensure found lost (migrate.LostReporter), as the manifest
// recorded them when it archived them. Where the source holds several
// messages with the same identity key, the engine cannot tell by keys
// which one's copy is gone: without this it copied one of them again, not
// necessarily the lost one (one message twice, the other still missing).
func (w *Writer) LostSources(folder formats.Folder, sourceFolder string) map[string]bool {
	w.log.mu.Lock()
	defer w.log.mu.Unlock()
	if w.log.ledger == nil {
		return nil
	}
	ls := w.log.ledger.lost[folderKey(folder.Path)]
	if ls == nil {
		return nil
	}
	ids := map[string]bool{}
	for _, c := range ls.bySha {
		for _, le := range c {
			if f, id, ok := strings.Cut(le.e.src, "\x00"); ok && f == sourceFolder && id != "" {
				ids[id] = true
			}
		}
	}
	return ids
}

// appendRepairs marks each entry that re-adds a lost message of its folder
// (same SHA-256) as its repair, appends the entries, and rebuilds
// SHA256SUMS when an entry was superseded.
func (l *manifestLog) appendRepairs(entries []ManifestEntry) error {
	repaired := false
	l.mu.Lock()
	if l.ledger != nil {
		for i := range entries {
			e := &entries[i]
			ls := l.ledger.lost[folderKey(e.DestFolder)]
			if ls == nil || len(ls.bySha[e.SHA256]) == 0 {
				continue
			}
			c := ls.bySha[e.SHA256]
			e.Repairs, e.Repair = c[0].e.seq, c[0].why
			ls.bySha[e.SHA256] = c[1:]
			delete(ls.ids, c[0].e.destID)
			repaired = true
		}
	}
	l.mu.Unlock()
	if err := l.append(entries); err != nil {
		return err
	}
	if !repaired {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rebuildSums()
}

// mailferryTmpName reports whether name is a name Maildir.Store gives a
// file in tmp/ (formats.NewUniqueName without a size), and returns the
// process id and host part in it.
func mailferryTmpName(name string) (pid int, host string, ok bool) {
	secs, rest, ok1 := strings.Cut(name, ".M")
	usec, rest, ok2 := strings.Cut(rest, "P")
	pidS, rest, ok3 := strings.Cut(rest, "R")
	rnd, host, ok4 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return 0, "", false
	}
	s, err1 := strconv.ParseInt(secs, 10, 64)
	u, err2 := strconv.ParseInt(usec, 10, 64)
	p, err3 := strconv.Atoi(pidS)
	r, err4 := strconv.ParseUint(rnd, 16, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || u >= 1e6 {
		return 0, "", false
	}
	if formats.NewUniqueName(time.Unix(s, u*1000), p, r, host, -1) != name {
		return 0, "", false
	}
	return p, host, true
}

// removeDeadTmp removes from dir/tmp the files that are this store's own
// unfinished deliveries from another (dead) process: a name Store gives,
// this host, another process id. Only the manifest Writer calls it: its
// lock proves that no other mailferry process writes to the archive, so
// such a process is gone and its files were never reported durable.
func (m *Maildir) removeDeadTmp(dir string) {
	tmp := filepath.Join(m.root, dir, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	_, ourHost, _ := mailferryTmpName(formats.NewUniqueName(time.Unix(1, 0), 1, 1, m.host, -1))
	for _, e := range ents {
		pid, host, ok := mailferryTmpName(e.Name())
		if !ok || pid == m.pid || host != ourHost || !e.Type().IsRegular() {
			continue
		}
		os.Remove(filepath.Join(tmp, e.Name()))
	}
}

// readableSize returns how many bytes of a folder's file a reader sees
// (the file's size, or the recorded length while an append is pending),
// and whether the file is as long as its .len records (true without one).
func (s *Mbox) readableSize(f formats.Folder) (size int64, agrees bool, err error) {
	rel, err := s.fileOf(f)
	if err != nil {
		return 0, false, err
	}
	if mf := s.open[rel]; mf != nil {
		return mf.size, true, nil
	}
	abs := s.abs(rel)
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("mbox: %w", err)
	}
	size, agrees = fi.Size(), true
	if sc, ok, err := readMboxSidecar(abs); err == nil && ok {
		switch {
		case sc.pending && sc.length < size:
			size = sc.length
		case !sc.pending && sc.length != size:
			agrees = false
		}
	}
	return size, agrees, nil
}

// checkRecordedEnd compares a folder's file with the length its length
// record holds (when no append of this store is under way): bytes past it that
// no pending append explains were written by someone else, and are
// refused; a file shorter than recorded is accepted as it is (its .len
// rewritten under the file's lock), so that the lost messages can be
// appended again.
func (s *Mbox) checkRecordedEnd(f formats.Folder) error {
	rel, err := s.fileOf(f)
	if err != nil || s.open[rel] != nil || s.opts.ReadOnly {
		return err
	}
	abs := s.abs(rel)
	sc, ok, err := readMboxSidecar(abs)
	if err != nil || !ok || sc.pending {
		return err // no record, or an interrupted append the appender cuts back
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("mbox: %w", err)
	}
	switch {
	case fi.Size() > sc.length:
		return fmt.Errorf("mbox: %s holds %d bytes past its recorded end (offset %d) that mailferry did not write; "+
			"not appending to it, so that they never count as archived: run verify, then cut them off "+
			"(truncate -s %d) or remove %s to take them as they are",
			rel, fi.Size()-sc.length, sc.length, sc.length, mboxSidecarRel(s.root, rel))
	case fi.Size() < sc.length:
		fh, err := os.OpenFile(abs, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("mbox: %w", err)
		}
		defer fh.Close()
		if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return fmt.Errorf("%w: %s", ErrMboxLocked, abs)
		}
		fi, err := fh.Stat()
		if err != nil {
			return fmt.Errorf("mbox: %w", err)
		}
		if err := writeMboxSidecar(abs, mboxSidecar{length: fi.Size()}); err != nil {
			return fmt.Errorf("mbox: %w", err)
		}
	}
	return nil
}
