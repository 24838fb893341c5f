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
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/mailferry/mailferry/formats"
)

// Kinds of Problem.
const (
	ProblemMissing  = "missing"        // a listed message is not there
	ProblemAltered  = "altered"        // its bytes do not hash to the recorded SHA-256
	ProblemSize     = "size"           // its size is not the recorded size
	ProblemUnlisted = "unlisted"       // a message file the manifest does not list
	ProblemChain    = "manifest-chain" // a manifest line edited, removed, reordered or damaged
	ProblemHead     = "manifest-head"  // the manifest's end is not the one MANIFEST.head records
	ProblemSums     = "sha256sums"     // SHA256SUMS disagrees with the manifest
	ProblemLength   = "mbox-length"    // an mbox file disagrees with its .len record
	ProblemStray    = "stray"          // a file that is no part of the archive (tmp/, beside the mbox files)
)

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// Quick checks presence and sizes only; by default every message is
	// read back and hashed.
	Quick bool
	// LastHash, when set, is the chain head printed at the end of the run
	// that wrote the archive. The archive keeps its own copy in
	// MANIFEST.head, which catches accidental damage to the manifest's end;
	// LastHash, kept elsewhere, also catches a deliberate and consistent
	// rewrite of the archive's records.
	LastHash string
	// Workers is how many files are hashed at once (Maildir); default
	// GOMAXPROCS, at most 8.
	Workers int
	// OpenStore opens the archive's store read-only, for archives whose
	// messages are not whole files (mbox): their bytes are read back
	// through Store.Open. Nil: OpenMbox with ReadOnly.
	OpenStore func(dir string) (Store, error)
}

// Problem is one thing wrong with an archive.
type Problem struct {
	File   string `json:"file"`           // relative to the archive directory
	Line   int    `json:"line,omitempty"` // manifest line, when one is concerned
	Kind   string `json:"kind"`           // one of the Problem* constants
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s: %s (manifest line %d): %s", p.Kind, p.File, p.Line, p.Detail)
	}
	return fmt.Sprintf("%s: %s: %s", p.Kind, p.File, p.Detail)
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Dir      string `json:"dir"`
	Format   string `json:"format"`   // "maildir" or "mbox"
	Messages int    `json:"messages"` // manifest entries checked
	Bytes    int64  `json:"bytes"`    // their recorded sizes, summed
	LastHash string `json:"last_hash"`
	// FlagRecords and GoneAtSource count the manifest's records of flags
	// changed and of messages gone at the source (records.go).
	FlagRecords  int       `json:"flag_records"`
	GoneAtSource int       `json:"gone_at_source"`
	Problems     []Problem `json:"problems"`
	// Notes are hints that are not problems of the archive itself.
	Notes []string `json:"notes,omitempty"`
}

// OK reports whether no problem was found.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// listed is one manifest entry with its line number.
type listed struct {
	line int
	e    ManifestEntry
}

// Verify checks the archive in dir against every record it keeps: the
// manifest's hash chain (and LastHash if given), MANIFEST.head, every
// listed message (present, right size, and unless Quick, right SHA-256),
// SHA256SUMS (Maildir), each mbox file's .len record and, unless Quick,
// that every message in an mbox file is listed; and that nothing else is
// there: no unlisted message file, nothing in tmp/, no stray file. An
// entry whose message was lost is accepted when a later entry repairs it
// (same SHA-256, same folder; see Writer), and the repair is noted. It returns an error only when it
// cannot check at all (no manifest, an I/O error, ctx done, the archive
// being written); everything wrong with the archive is a Problem.
func Verify(ctx context.Context, dir string, opts VerifyOptions) (*VerifyReport, error) {
	f, err := os.Open(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	if err := flockWaiting(f, syscall.LOCK_SH); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("verify: %s is being written by a running mailferry", dir)
		}
		return nil, fmt.Errorf("verify: lock: %w", err)
	}
	rep := &VerifyReport{Dir: dir}
	entries, ch, err := readChain(f, opts.LastHash, rep)
	if err != nil {
		return nil, err
	}
	interrupted := nonEmptyJournal(dir)
	if js, _ := filepath.Glob(filepath.Join(dir, journalPrefix+"*")); len(js) > 0 {
		rep.Notes = append(rep.Notes, "an interrupted run left "+filepath.Base(js[0])+
			": the next archive run into this directory finishes it")
	}
	checkHead(dir, ch, interrupted, rep)
	rep.Format = detectFormat(dir, entries)
	for _, le := range entries {
		rep.Messages++
		rep.Bytes += le.e.Size
	}
	sup := superseded(entries, rep)
	switch rep.Format {
	case "mbox":
		err = verifyMbox(ctx, dir, entries, opts, rep)
	default:
		err = verifyMaildir(ctx, dir, entries, opts, rep)
		if err == nil {
			checkSums(dir, entries, sup, interrupted, rep)
		}
	}
	if err != nil {
		return nil, err
	}
	dropRepaired(sup, rep)
	// Problems tied to a manifest line first, in line order; then the rest
	// (unlisted files) by file.
	slices.SortStableFunc(rep.Problems, func(a, b Problem) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return strings.Compare(a.File, b.File)
	})
	return rep, nil
}

// chainInfo is what readChain learnt of the lines, for checkHead.
type chainInfo struct {
	lines  int      // lines read
	hashes []string // the hash of line n at n-1
	seqs   []uint64 // the seq of line n at n-1 (0: did not parse)
	head   string   // the hash of the last line
}

// readChain reads every manifest line, checks the chain and returns the
// entries that parse and name a safe path; chain problems go into rep.
func readChain(f *os.File, wantHead string, rep *VerifyReport) ([]listed, *chainInfo, error) {
	chain := func(line int, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{File: ManifestFile, Line: line, Kind: ProblemChain,
			Detail: fmt.Sprintf(format, args...)})
	}
	var (
		entries []listed
		prev    = zeroHash
		lastSeq uint64
		places  = map[string]int{} // place -> index in entries
		bySeq   = map[uint64]int{} // seq -> index in entries
		n       int
		ch      = &chainInfo{}
	)
	r := bufio.NewReaderSize(f, 256<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return nil, nil, fmt.Errorf("verify: %w", err)
		}
		n++
		if err == io.EOF {
			chain(n, "incomplete last line (an interrupted write: the next archive run cuts it)")
			n--
			break
		}
		line = line[:len(line)-1]
		ch.hashes = append(ch.hashes, lineHash(line))
		var e ManifestEntry
		var why []string
		if jerr := json.Unmarshal(line, &e); jerr != nil {
			chain(n, "line does not parse: %v", jerr)
			prev = lineHash(line)
			ch.seqs = append(ch.seqs, 0)
			continue
		}
		ch.seqs = append(ch.seqs, e.Seq)
		if e.Prev != prev {
			if n > 1 && e.Seq == lastSeq+1 && ch.seqs[n-2] != 0 {
				// Nothing is missing in between: the line before was edited.
				chain(n-1, "line %d does not hash to the prev that line %d records (%.12s…, not %.12s…): "+
					"line %d was edited", n-1, n, e.Prev, prev, n-1)
			} else {
				why = append(why, fmt.Sprintf("prev %.12s… is not the hash of line %d (%.12s…): "+
					"a line before it was edited, removed or moved", e.Prev, n-1, prev))
			}
		}
		if e.Seq != lastSeq+1 {
			why = append(why, fmt.Sprintf("seq %d follows seq %d", e.Seq, lastSeq))
		}
		prev, lastSeq = lineHash(line), e.Seq
		if !safeRelPath(e.File) {
			why = append(why, fmt.Sprintf("file %q is not a path inside the archive", e.File))
		}
		if e.Record != "" && safeRelPath(e.File) {
			if len(why) > 0 {
				chain(n, "%s", strings.Join(why, "; "))
			}
			record(n, &e, entries, bySeq, places, rep)
			continue
		}
		place := e.File
		if e.Offset != nil {
			place = fmt.Sprintf("%s@%d", e.File, *e.Offset)
		}
		first, dup := places[place]
		if dup && e.Repairs != 0 && entries[first].e.Seq == e.Repairs {
			dup = false // an mbox message re-added where the lost one was
		} else if dup {
			why = append(why, fmt.Sprintf("%s is already listed on line %d", place, entries[first].line))
		}
		if len(why) > 0 {
			chain(n, "%s", strings.Join(why, "; "))
		}
		if !safeRelPath(e.File) {
			continue
		}
		if !dup {
			places[place], bySeq[e.Seq] = len(entries), len(entries)
			entries = append(entries, listed{line: n, e: e})
		}
	}
	rep.LastHash = prev
	ch.lines, ch.head = n, prev
	if wantHead != "" && !strings.EqualFold(wantHead, prev) {
		chain(max(n, 1), "the chain ends in %s, not the expected %s: lines were removed from or changed at the end", prev, wantHead)
	}
	return entries, ch, nil
}

// record applies a record line (records.go) to the entry it names: a flags
// record moves it to the file it names (a Maildir rename) with its flags;
// both kinds are counted.
func record(n int, e *ManifestEntry, entries []listed, bySeq map[uint64]int, places map[string]int, rep *VerifyReport) {
	i, ok := bySeq[e.Of]
	if !ok || e.Of >= e.Seq {
		rep.Problems = append(rep.Problems, Problem{File: ManifestFile, Line: n, Kind: ProblemChain,
			Detail: fmt.Sprintf("a %s record for seq %d, which no earlier line lists", e.Record, e.Of)})
		return
	}
	switch e.Record {
	case RecordFlags:
		rep.FlagRecords++
		if e.Offset == nil && entries[i].e.Offset == nil && e.File != entries[i].e.File {
			delete(places, entries[i].e.File)
			places[e.File] = i
			entries[i].e.File = e.File
		}
		entries[i].e.Flags = e.Flags
	case RecordGone:
		rep.GoneAtSource++
	default:
		rep.Problems = append(rep.Problems, Problem{File: ManifestFile, Line: n, Kind: ProblemChain,
			Detail: fmt.Sprintf("unknown record %q", e.Record)})
	}
}

// checkHead compares the manifest's end with MANIFEST.head.
func checkHead(dir string, ch *chainInfo, interrupted bool, rep *VerifyReport) {
	add := func(line int, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{File: HeadFile, Line: line, Kind: ProblemHead,
			Detail: fmt.Sprintf(format, args...)})
	}
	seq, hash, ok, err := readHead(dir)
	switch {
	case err != nil:
		add(0, "%s", strings.TrimPrefix(err.Error(), "manifest: "))
		return
	case !ok && ch.lines > 0:
		add(0, "missing: the end of the manifest cannot be checked (the next archive run writes it again)")
		return
	case !ok:
		return
	}
	at := 0 // the line whose seq the head records
	for i, s := range ch.seqs {
		if s == seq && seq != 0 {
			at = i + 1
			break
		}
	}
	switch {
	case seq == 0 && ch.lines == 0:
	case at == 0 && seq != 0:
		add(max(ch.lines, 1), "the last archive run ended at seq %d, but the manifest has no such line "+
			"(it ends at line %d): lines were cut from its end", seq, ch.lines)
	case at > 0 && ch.hashes[at-1] != hash:
		add(at, "line %d hashes to %.12s…, but the last archive run ended with %.12s… there: the line was edited",
			at, ch.hashes[at-1], hash)
	case at < ch.lines && interrupted:
		rep.Notes = append(rep.Notes, fmt.Sprintf("manifest lines %d to %d were added by an interrupted run "+
			"(the next archive run finishes it)", at+1, ch.lines))
	case at < ch.lines:
		add(at+1, "lines %d to %d come after the end of the last archive run (seq %d): they were added "+
			"by something else than mailferry", at+1, ch.lines, seq)
	}
}

// superseded returns, for each entry that a later repair entry re-adds
// (same SHA-256, same destination folder), its line -> the repair's line.
// A repair that names no such entry is a chain problem.
func superseded(entries []listed, rep *VerifyReport) map[int]int {
	bySeq := map[uint64]*listed{}
	sup := map[int]int{}
	for i := range entries {
		le := &entries[i]
		if r := le.e.Repairs; r != 0 {
			t := bySeq[r]
			if t == nil || t.e.SHA256 != le.e.SHA256 || folderKey(t.e.DestFolder) != folderKey(le.e.DestFolder) {
				rep.Problems = append(rep.Problems, Problem{File: ManifestFile, Line: le.line, Kind: ProblemChain,
					Detail: fmt.Sprintf("repairs seq %d, which is no earlier entry of the same message and folder", r)})
			} else {
				sup[t.line] = le.line
				rep.Notes = append(rep.Notes, fmt.Sprintf("manifest line %d re-added the message of line %d (%s)",
					le.line, t.line, le.e.Repair))
			}
		}
		if _, dup := bySeq[le.e.Seq]; !dup {
			bySeq[le.e.Seq] = le
		}
	}
	return sup
}

// dropRepaired removes the problems of lost messages that a later entry
// re-added, when that entry itself has no problem.
func dropRepaired(sup map[int]int, rep *VerifyReport) {
	if len(sup) == 0 {
		return
	}
	bad := map[int]bool{}
	for _, p := range rep.Problems {
		if p.Line > 0 {
			bad[p.Line] = true
		}
	}
	out := rep.Problems[:0]
	for _, p := range rep.Problems {
		r, ok := sup[p.Line]
		lostKind := p.Kind == ProblemMissing || p.Kind == ProblemSize || p.Kind == ProblemAltered
		if ok && lostKind && !bad[r] && p.File != ManifestFile {
			continue
		}
		out = append(out, p)
	}
	rep.Problems = out
}

// checkSums compares SHA256SUMS with the manifest's whole-file entries
// that no repair superseded.
func checkSums(dir string, entries []listed, sup map[int]int, interrupted bool, rep *VerifyReport) {
	add := func(line int, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{File: SumsFile, Line: line, Kind: ProblemSums,
			Detail: fmt.Sprintf(format, args...)})
	}
	want := map[string][]int{} // expected line -> manifest lines
	byFile := map[string]*listed{}
	n := 0
	for i := range entries {
		le := &entries[i]
		if le.e.Offset != nil {
			continue
		}
		byFile[le.e.File] = le
		if _, ok := sup[le.line]; ok {
			continue
		}
		l := sumsLine(le.e.SHA256, le.e.File)
		want[l] = append(want[l], le.line)
		n++
	}
	data, err := os.ReadFile(filepath.Join(dir, SumsFile))
	if errors.Is(err, fs.ErrNotExist) {
		if n > 0 {
			add(0, "missing: the manifest lists %d message files", n)
		}
		return
	}
	if err != nil {
		add(0, "cannot be read: %v", err)
		return
	}
	reported := map[string]bool{}
	for i, l := range strings.SplitAfter(string(data), "\n") {
		if l == "" {
			continue
		}
		if ls := want[l]; len(ls) > 0 {
			want[l] = ls[1:]
			continue
		}
		sum, file, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(l, "\\"), "\n"), "  ")
		if le := byFile[file]; le != nil {
			reported[file] = true
			add(le.line, "line %d gives %s the SHA-256 %.12s…, the manifest %.12s…", i+1, file, sum, le.e.SHA256)
			continue
		}
		add(0, "line %d names %q, which the manifest does not list", i+1, strings.TrimSuffix(l, "\n"))
	}
	if interrupted {
		return // an interrupted Flush may have left SHA256SUMS behind the manifest
	}
	for l, lines := range want {
		for _, ml := range lines {
			_, file, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(l, "\\"), "\n"), "  ")
			if !reported[file] {
				add(ml, "has no line for %s", file)
			}
		}
	}
}

// safeRelPath reports whether p is a clean relative slash path that stays
// inside the directory it is relative to.
func safeRelPath(p string) bool {
	return p != "" && !path.IsAbs(p) && path.Clean(p) == p && p != ".." &&
		!strings.HasPrefix(p, "../") && !strings.ContainsRune(p, 0)
}

// detectFormat tells a Maildir archive from an mbox one: by the entries
// (an offset, or a .mbox file) and, for an empty manifest, by the files
// (an mbox tree, see mboxArchiveFiles).
func detectFormat(dir string, entries []listed) string {
	for _, le := range entries {
		if le.e.Offset != nil || strings.HasSuffix(le.e.File, ".mbox") {
			return "mbox"
		}
	}
	if len(entries) > 0 {
		return "maildir"
	}
	if fi, err := os.Stat(filepath.Join(dir, "cur")); err == nil && fi.IsDir() {
		return "maildir"
	}
	if len(mboxFiles(dir)) > 0 {
		return "mbox"
	}
	return "maildir"
}

// verifyMaildir checks each listed file directly, then looks for files in
// any cur/ or new/ that the manifest does not list.
func verifyMaildir(ctx context.Context, dir string, entries []listed, opts VerifyOptions, rep *VerifyReport) error {
	var mu sync.Mutex
	workers := opts.Workers
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), 8)
	}
	// Missing files by folder directory and unique name, to tell a file
	// renamed by a mail program (its flags changed) from a deleted one.
	missing := map[string]int{}
	err := runParallel(len(entries), workers, func(i int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		le := entries[i]
		p, err := checkFile(filepath.Join(dir, filepath.FromSlash(le.e.File)), &le.e, opts.Quick)
		if err != nil || p == nil {
			return err
		}
		p.File, p.Line = le.e.File, le.line
		mu.Lock()
		defer mu.Unlock()
		rep.Problems = append(rep.Problems, *p)
		if k, ok := uniqueKey(le.e.File); ok && p.Kind == ProblemMissing {
			missing[k] = len(rep.Problems) // index + 1
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}

	// Unlisted files: every regular file in cur/ and new/ of the root and
	// of each .X folder directory.
	isListed := make(map[string]bool, len(entries))
	for _, le := range entries {
		isListed[le.e.File] = true
	}
	stray := func(file, detail string) {
		rep.Problems = append(rep.Problems, Problem{File: file, Kind: ProblemStray, Detail: detail})
	}
	folders := []string{""}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			n := e.Name()
			switch {
			case len(n) > 1 && n[0] == '.' && n != ".." && e.IsDir():
				folders = append(folders, n)
			case e.IsDir() && (n == "cur" || n == "new" || n == "tmp"):
			case archiveFile(n) || mailProgramFile(n):
			default:
				stray(n, "not part of a Maildir archive")
			}
		}
	}
	for _, fd := range folders {
		if fd != "" {
			ents, _ := os.ReadDir(filepath.Join(dir, fd))
			for _, e := range ents {
				n := e.Name()
				if !(e.IsDir() && (n == "cur" || n == "new" || n == "tmp")) && n != "maildirfolder" && !mailProgramFile(n) {
					stray(path.Join(fd, n), "not part of a Maildir folder")
				}
			}
		}
		if ents, err := os.ReadDir(filepath.Join(dir, fd, "tmp")); err == nil {
			for _, e := range ents {
				file := path.Join(fd, "tmp", e.Name())
				if _, _, ok := mailferryTmpName(e.Name()); ok && e.Type().IsRegular() {
					stray(file, "an unfinished delivery left by an interrupted mailferry run (the next archive run on the machine that wrote it removes it)")
				} else {
					stray(file, "a file in tmp/, which holds no message of the archive")
				}
			}
		}
		for _, sub := range []string{"cur", "new"} {
			ents, err := os.ReadDir(filepath.Join(dir, fd, sub))
			if err != nil {
				continue
			}
			for _, e := range ents {
				file := path.Join(fd, sub, e.Name())
				if isListed[file] {
					continue
				}
				if !e.Type().IsRegular() {
					stray(file, "not a message file")
					continue
				}
				if k, ok := uniqueKey(file); ok && missing[k] > 0 {
					i := missing[k] - 1
					rep.Problems[i].Detail += "; " + file + " has its unique name with other flags" +
						" (the archive was opened by a mail program)"
					continue
				}
				rep.Problems = append(rep.Problems, Problem{File: file, Kind: ProblemUnlisted,
					Detail: "not in the manifest"})
			}
		}
	}
	return nil
}

// uniqueKey returns "folder directory + unique name" of a Maildir file
// path such as ".A.B/cur/UNIQUE:2,S".
func uniqueKey(file string) (string, bool) {
	dir, name := path.Split(file)
	unique, _, ok := formats.ParseMaildirName(name)
	return path.Dir(path.Clean(dir)) + "/" + unique, ok
}

// checkFile checks one whole-file message against its entry: its size,
// and unless quick its SHA-256.
func checkFile(p string, e *ManifestEntry, quick bool) (*Problem, error) {
	sizeProblem := func(n int64) *Problem {
		return &Problem{Kind: ProblemSize, Detail: fmt.Sprintf("%d bytes, the manifest says %d", n, e.Size)}
	}
	if quick {
		fi, err := os.Stat(p)
		if err != nil {
			return missingProblem(err), nil
		}
		if fi.Size() != e.Size {
			return sizeProblem(fi.Size()), nil
		}
		return nil, nil
	}
	f, err := openRead(p)
	if err != nil {
		return missingProblem(err), nil
	}
	defer f.Close()
	return hashProblem(f, e)
}

// hashBufs are hashProblem's read buffers: verify hashes every message
// file, and io.Copy would make one for each.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// missingProblem describes a listed file that cannot be found or opened.
func missingProblem(err error) *Problem {
	if errors.Is(err, fs.ErrNotExist) {
		return &Problem{Kind: ProblemMissing, Detail: "listed but not there"}
	}
	return &Problem{Kind: ProblemMissing, Detail: err.Error()}
}

// hashProblem hashes r and compares size and SHA-256 with e.
func hashProblem(r io.Reader, e *ManifestEntry) (*Problem, error) {
	h := sha256.New()
	buf := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(buf)
	// Hide any WriterTo (an os.File's copies through a buffer of its own).
	n, err := io.CopyBuffer(h, struct{ io.Reader }{r}, *buf)
	if err != nil {
		return &Problem{Kind: ProblemAltered, Detail: "cannot be read: " + err.Error()}, nil
	}
	if n != e.Size {
		return &Problem{Kind: ProblemSize, Detail: fmt.Sprintf("%d bytes, the manifest says %d", n, e.Size)}, nil
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != e.SHA256 {
		return &Problem{Kind: ProblemAltered, Detail: fmt.Sprintf("SHA-256 is %s, the manifest says %s", sum, e.SHA256)}, nil
	}
	return nil, nil
}

// verifyMbox checks each listed message through the store's Open (which
// undoes the mbox escaping), then looks for mbox files the manifest does
// not mention. Quick mode checks only that each file is long enough.
func verifyMbox(ctx context.Context, dir string, entries []listed, opts VerifyOptions, rep *VerifyReport) error {
	add := func(le listed, kind, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{File: le.e.File, Line: le.line, Kind: kind,
			Detail: fmt.Sprintf(format, args...)})
	}
	var st Store
	if !opts.Quick && len(entries) > 0 {
		open := opts.OpenStore
		if open == nil {
			open = defaultOpener("mbox")
		}
		if open == nil {
			return errors.New("verify: cannot read mbox archives in this build (no mbox store)")
		}
		var err error
		if st, err = open(dir); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		defer st.Close()
	}
	hints := map[string]string{} // file -> mailProgramHint, read once
	hint := func(file string) string {
		h, ok := hints[file]
		if !ok {
			h = mailProgramHint(filepath.Join(dir, filepath.FromSlash(file)))
			hints[file] = h
		}
		return h
	}
	for _, le := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(le.e.File)))
		if err != nil {
			add(le, ProblemMissing, "listed but not there")
			continue
		}
		if le.e.Offset != nil && fi.Size() < *le.e.Offset+le.e.Size {
			add(le, ProblemSize, "file is %d bytes, too short for a %d-byte message at offset %d",
				fi.Size(), le.e.Size, *le.e.Offset)
			continue
		}
		if st == nil {
			continue
		}
		rc, file, err := st.Open(formats.Folder{Path: le.e.DestFolder}, le.e.DestID)
		if err != nil && errors.Is(err, fs.ErrNotExist) && le.e.Offset != nil {
			// The file is there (stat above) but no message starts at
			// the recorded offset: the file was changed.
			add(le, ProblemAltered, "no message starts at the recorded offset %d any more: the file was changed%s",
				*le.e.Offset, hint(le.e.File))
			continue
		}
		if err != nil {
			add(le, ProblemMissing, "the store cannot find message %s: %v", le.e.DestID, err)
			continue
		}
		p, err := hashProblem(rc, &le.e)
		rc.Close()
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if p == nil && file != le.e.File {
			p = &Problem{Kind: ProblemMissing, Detail: fmt.Sprintf("the store has message %s in %s", le.e.DestID, file)}
		}
		if p != nil {
			add(le, p.Kind, "%s", p.Detail)
		}
	}
	// With the default store the layout is mbox.go's: each file has its
	// .len record, and nothing else belongs beside the files.
	// (An archive where no file has one was written through another store.)
	ownLayout := false
	for _, file := range mboxFiles(dir) {
		if _, err := os.Stat(mboxSidecarPath(filepath.Join(dir, filepath.FromSlash(file)))); err == nil {
			ownLayout = opts.OpenStore == nil
		}
	}
	isListed := map[string]bool{}
	offsets := map[string]map[string]bool{} // file -> listed offsets
	folderOf := map[string][]string{}
	for _, le := range entries {
		isListed[le.e.File] = true
		if le.e.Offset != nil {
			if offsets[le.e.File] == nil {
				offsets[le.e.File] = map[string]bool{}
			}
			offsets[le.e.File][fmt.Sprint(*le.e.Offset)] = true
			folderOf[le.e.File] = le.e.DestFolder
		}
	}
	for _, file := range mboxFiles(dir) {
		abs := filepath.Join(dir, filepath.FromSlash(file))
		fi, err := os.Stat(abs)
		if err != nil {
			continue
		}
		end := fi.Size() // where the recorded bytes end
		sc, ok, err := readMboxSidecar(abs)
		lenFile := mboxSidecarRel(dir, file)
		switch {
		case err != nil:
			rep.Problems = append(rep.Problems, Problem{File: lenFile, Kind: ProblemLength,
				Detail: "the length record cannot be read"})
		case !ok && isListed[file] && ownLayout:
			rep.Problems = append(rep.Problems, Problem{File: lenFile, Kind: ProblemMissing,
				Detail: "the length record of " + file + " is missing"})
		case ok && sc.pending:
			rep.Notes = append(rep.Notes, file+": an append was interrupted; the next archive run cuts it back")
			end = min(end, sc.length)
		case ok && fi.Size() < sc.length:
			rep.Problems = append(rep.Problems, Problem{File: file, Kind: ProblemLength,
				Detail: fmt.Sprintf("%d bytes, its length record records %d: the file was cut short", fi.Size(), sc.length)})
		case ok && fi.Size() > sc.length:
			rep.Problems = append(rep.Problems, Problem{File: file, Kind: ProblemUnlisted,
				Detail: fmt.Sprintf("%d bytes past its recorded end (offset %d) that mailferry did not write "+
					"(a message appended by another program?)", fi.Size()-sc.length, sc.length)})
			end = sc.length
		}
		if fi.Size() == 0 {
			continue // an empty folder holds no message to list
		}
		if !isListed[file] {
			rep.Problems = append(rep.Problems, Problem{File: file, Kind: ProblemUnlisted, Detail: "not in the manifest"})
			continue
		}
		if st == nil || folderOf[file] == nil {
			continue
		}
		// Every message in the file must be listed.
		_, msgs, err := st.List(ctx, formats.Folder{Path: folderOf[file]})
		if err != nil {
			rep.Problems = append(rep.Problems, Problem{File: file, Kind: ProblemAltered,
				Detail: "cannot be read as mbox: " + err.Error()})
			continue
		}
		for _, m := range msgs {
			if off, err := strconv.ParseInt(m.ID, 10, 64); err == nil && off < end && !offsets[file][m.ID] {
				rep.Problems = append(rep.Problems, Problem{File: file, Kind: ProblemUnlisted,
					Detail: fmt.Sprintf("the message at offset %s (%d bytes) is not in the manifest", m.ID, m.Size)})
			}
		}
	}
	if !ownLayout {
		return nil
	}
	// Anything else beside the mbox files.
	isFolderFile := map[string]bool{}
	for _, f := range mboxArchiveFiles(dir) {
		isFolderFile[f] = true
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		target, isLen := mboxSidecarTarget(rel)
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			rep.Problems = append(rep.Problems, Problem{File: rel, Kind: ProblemStray, Detail: "not a regular file"})
		case isFolderFile[rel]:
		case isLen:
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(target))); err != nil {
				rep.Problems = append(rep.Problems, Problem{File: rel, Kind: ProblemStray,
					Detail: "a length record without its mbox file"})
			}
		case !strings.Contains(rel, "/") && archiveFile(rel):
		case strings.HasPrefix(d.Name(), ".tmp.") && strings.HasSuffix(d.Name(), mboxHiddenLen+".lock"):
			rep.Problems = append(rep.Problems, Problem{File: rel, Kind: ProblemStray,
				Detail: "an unfinished length record left by an interrupted mailferry run (the next archive run removes it)"})
		default:
			rep.Problems = append(rep.Problems, Problem{File: rel, Kind: ProblemStray, Detail: "not part of an mbox archive"})
		}
		return nil
	})
	return nil
}

// mailProgramHint says, for an mbox file that holds the headers Dovecot
// writes when it opens an mbox (X-IMAPbase, X-UID), that a mail program
// rewrote it; "" otherwise.
func mailProgramHint(abs string) string {
	f, err := os.Open(abs)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Bytes()
		if bytes.HasPrefix(l, []byte("X-IMAPbase:")) || bytes.HasPrefix(l, []byte("X-UID:")) {
			return " (it holds X-IMAPbase/X-UID headers: Dovecot or another mail program opened and rewrote it)"
		}
	}
	return ""
}

// archiveFile reports whether name is one of the manifest's files in the
// archive's root (or a leftover of an interrupted replacement of one).
func archiveFile(name string) bool {
	switch name {
	case ManifestFile, SumsFile, HeadFile, SumsFile + ".tmp", HeadFile + ".tmp":
		return true
	}
	return strings.HasPrefix(name, journalPrefix)
}

// mailProgramFile reports whether name is a file a mail program that
// opened the Maildir keeps there (Dovecot's index and lists).
func mailProgramFile(name string) bool {
	return strings.HasPrefix(name, "dovecot") || name == "subscriptions" || strings.HasPrefix(name, "courier")
}

// mboxFiles lists the folder files of the mbox archive in dir,
// slash-separated and relative (see mboxname.go).
func mboxFiles(dir string) []string { return mboxArchiveFiles(dir) }

// defaultOpener returns how to open an archive of the given format for
// Verify, or nil when this build has no store for it.
func defaultOpener(format string) func(dir string) (Store, error) {
	switch format {
	case "maildir":
		return func(dir string) (Store, error) { return OpenMaildir(dir, MaildirOptions{}) }
	case "mbox":
		return func(dir string) (Store, error) { return OpenMbox(dir, MboxOptions{ReadOnly: true}) }
	}
	return nil
}
