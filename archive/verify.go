package archive

import (
	"bufio"
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
)

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// Quick checks presence and sizes only; by default every message is
	// read back and hashed.
	Quick bool
	// LastHash, when set, is the chain head printed at the end of the run
	// that wrote the archive: lines cut from the end of the manifest, or an
	// edit of its last line, are caught only this way.
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
	Dir      string    `json:"dir"`
	Format   string    `json:"format"`   // "maildir" or "mbox"
	Messages int       `json:"messages"` // manifest entries checked
	Bytes    int64     `json:"bytes"`    // their recorded sizes, summed
	LastHash string    `json:"last_hash"`
	Problems []Problem `json:"problems"`
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

// Verify checks the archive in dir against its manifest: the manifest's
// hash chain (and LastHash if given), every listed message (present, right
// size, and unless Quick, right SHA-256), and that no message file is
// there that the manifest does not list. It returns an error only when it
// cannot check at all (no manifest, an I/O error, ctx done, the archive
// being written); everything wrong with the archive is a Problem.
func Verify(ctx context.Context, dir string, opts VerifyOptions) (*VerifyReport, error) {
	f, err := os.Open(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("verify: %s is being written by a running mailferry", dir)
		}
		return nil, fmt.Errorf("verify: lock: %w", err)
	}
	rep := &VerifyReport{Dir: dir}
	entries, err := readChain(f, opts.LastHash, rep)
	if err != nil {
		return nil, err
	}
	if js, _ := filepath.Glob(filepath.Join(dir, journalPrefix+"*")); len(js) > 0 {
		rep.Notes = append(rep.Notes, "an interrupted run left "+filepath.Base(js[0])+
			": the next archive run into this directory finishes it")
	}
	rep.Format = detectFormat(dir, entries)
	for _, le := range entries {
		rep.Messages++
		rep.Bytes += le.e.Size
	}
	switch rep.Format {
	case "mbox":
		err = verifyMbox(ctx, dir, entries, opts, rep)
	default:
		err = verifyMaildir(ctx, dir, entries, opts, rep)
	}
	if err != nil {
		return nil, err
	}
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

// readChain reads every manifest line, checks the chain and returns the
// entries that parse and name a safe path; chain problems go into rep.
func readChain(f *os.File, wantHead string, rep *VerifyReport) ([]listed, error) {
	chain := func(line int, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{File: ManifestFile, Line: line, Kind: ProblemChain,
			Detail: fmt.Sprintf(format, args...)})
	}
	var (
		entries []listed
		prev    = zeroHash
		lastSeq uint64
		places  = map[string]int{}
		n       int
	)
	r := bufio.NewReaderSize(f, 256<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("verify: %w", err)
		}
		n++
		if err == io.EOF {
			chain(n, "incomplete last line (an interrupted write: the next archive run cuts it)")
			break
		}
		line = line[:len(line)-1]
		var e ManifestEntry
		var why []string
		if jerr := json.Unmarshal(line, &e); jerr != nil {
			chain(n, "line does not parse: %v", jerr)
			prev = lineHash(line)
			continue
		}
		if e.Prev != prev {
			why = append(why, fmt.Sprintf("prev %.12s… is not the hash of line %d (%.12s…): "+
				"a line before it was edited, removed or moved", e.Prev, n-1, prev))
		}
		if e.Seq != lastSeq+1 {
			why = append(why, fmt.Sprintf("seq %d follows seq %d", e.Seq, lastSeq))
		}
		prev, lastSeq = lineHash(line), e.Seq
		if !safeRelPath(e.File) {
			why = append(why, fmt.Sprintf("file %q is not a path inside the archive", e.File))
		}
		place := e.File
		if e.Offset != nil {
			place = fmt.Sprintf("%s@%d", e.File, *e.Offset)
		}
		if first, dup := places[place]; dup {
			why = append(why, fmt.Sprintf("%s is already listed on line %d", place, first))
		}
		if len(why) > 0 {
			chain(n, "%s", strings.Join(why, "; "))
		}
		if !safeRelPath(e.File) {
			continue
		}
		if _, dup := places[place]; !dup {
			places[place] = n
			entries = append(entries, listed{line: n, e: e})
		}
	}
	rep.LastHash = prev
	if wantHead != "" && !strings.EqualFold(wantHead, prev) {
		chain(n, "the chain ends in %s, not the expected %s: lines were removed from or changed at the end", prev, wantHead)
	}
	return entries, nil
}

// safeRelPath reports whether p is a clean relative slash path that stays
// inside the directory it is relative to.
func safeRelPath(p string) bool {
	return p != "" && !path.IsAbs(p) && path.Clean(p) == p && p != ".." &&
		!strings.HasPrefix(p, "../") && !strings.ContainsRune(p, 0)
}

// detectFormat tells a Maildir archive from an mbox one: by the entries
// (an offset, or a .mbox file) and, for an empty manifest, by the files.
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
	folders := []string{""}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if n := e.Name(); len(n) > 1 && n[0] == '.' && n != ".." && e.IsDir() {
				folders = append(folders, n)
			}
		}
	}
	for _, fd := range folders {
		for _, sub := range []string{"cur", "new"} {
			ents, err := os.ReadDir(filepath.Join(dir, fd, sub))
			if err != nil {
				continue
			}
			for _, e := range ents {
				file := path.Join(fd, sub, e.Name())
				if isListed[file] || e.IsDir() {
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
	f, err := os.Open(p)
	if err != nil {
		return missingProblem(err), nil
	}
	defer f.Close()
	return hashProblem(f, e)
}

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
	n, err := io.Copy(h, r)
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
// undoes the mbox escaping), then looks for .mbox files the manifest does
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
	isListed := map[string]bool{}
	for _, le := range entries {
		isListed[le.e.File] = true
	}
	for _, file := range mboxFiles(dir) {
		if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(file))); err == nil && fi.Size() == 0 {
			continue // an empty folder holds no message to list
		}
		if !isListed[file] {
			rep.Problems = append(rep.Problems, Problem{File: file, Kind: ProblemUnlisted, Detail: "not in the manifest"})
		}
	}
	return nil
}

// mboxFiles lists the .mbox files under dir, slash-separated and relative.
func mboxFiles(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(p, ".mbox") {
			if rel, err := filepath.Rel(dir, p); err == nil {
				out = append(out, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	return out
}

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
