package archive

// Interop: our mbox archives as other programs read them (issue 12, "our
// archives, read by others"). go-mbox (the mandated library, which splits
// like mutt and Python) is the independent check that each .mbox file
// frames exactly the messages the manifest lists; Python's mailbox.mbox,
// when python3 is installed, checks the bytes and the flags it shows.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	gombox "github.com/emersion/go-mbox"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/formats/corpus"
)

// ioArchive is an mbox archive of the shared corpus written through the
// manifest Writer, with the source bytes by SHA-256.
type ioArchive struct {
	dir     string
	entries []ManifestEntry
	source  map[string][]byte // SHA-256 hex -> source bytes
	// base is the X-IMAPbase line on the first message of each file, as
	// written (its UIDVALIDITY is the time of writing), by file.
	base map[string][]byte
}

// ioKeywords are the keywords of ioFlags: declared for every folder, as a
// pass declares those of the messages it is about to copy.
var ioKeywords = []string{"Work", "$Label1", "$Forwarded"}

// ioFolders spread the corpus: nested, non-ASCII, a dot in a name.
var ioFolders = [][]string{{"INBOX"}, {"Privé"}, {"Lists", "go.nuts"}, {"Archive", "2023"}}

// ioFlags gives message i its flags: system flags and keywords.
func ioFlags(i int) []string {
	return [][]string{
		{formats.FlagSeen},
		nil,
		{formats.FlagSeen, formats.FlagFlagged, "Work"},
		{formats.FlagSeen, formats.FlagAnswered, "$Label1", "$Forwarded"},
		{formats.FlagDraft},
		{formats.FlagSeen, formats.FlagDeleted},
	}[i%6]
}

func ioBuildMboxArchive(t *testing.T) *ioArchive { return ioBuildMboxArchiveOf(t, 1) }

// ioBuildMboxArchiveOf archives every step-th message of the corpus.
func ioBuildMboxArchiveOf(t *testing.T, step int) *ioArchive {
	t.Helper()
	src := corpus.Require(t, "dev")
	all, err := filepath.Glob(filepath.Join(src, "*.eml"))
	if err != nil || len(all) == 0 {
		t.Fatalf("no corpus messages in %s: %v", src, err)
	}
	sort.Strings(all)
	var names []string
	for i := 0; i < len(all); i += step {
		names = append(names, all[i])
	}
	dir := t.TempDir()
	w := rpOpen(t, "mbox", dir)
	ctx := context.Background()
	a := &ioArchive{dir: dir, source: map[string][]byte{}}
	folders := make([]formats.Folder, len(ioFolders))
	for i, p := range ioFolders {
		if folders[i], err = w.Ensure(ctx, p); err != nil {
			t.Fatal(err)
		}
		w.DeclareKeywords(folders[i], ioKeywords)
	}
	for i, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		a.source[hex.EncodeToString(sum[:])] = b
		m := formats.Message{ID: filepath.Base(name), Size: int64(len(b)), Flags: ioFlags(i),
			Date: time.Date(2020, 1, 1, 0, 0, i, 0, time.UTC)}
		if _, err := w.Store(ctx, folders[i%len(folders)], m, m.Size, bytes.NewReader(b)); err != nil {
			t.Fatalf("store %s: %v", name, err)
		}
		if i%100 == 99 {
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil { // closes the store too
		t.Fatal(err)
	}
	_, a.entries = mfLines(t, dir)
	if len(a.entries) != len(names) {
		t.Fatalf("manifest lists %d messages, stored %d", len(a.entries), len(names))
	}
	rep := vfVerify(t, dir, VerifyOptions{})
	if !rep.OK() {
		t.Fatalf("verify of the fresh archive: %v", rep.Problems)
	}
	a.base = map[string][]byte{}
	for file := range a.byFile() {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(file)))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := bytes.Cut(b, []byte("\n"))
		if line, _, _ := bytes.Cut(rest, []byte("\n")); bytes.HasPrefix(line, []byte("X-IMAPbase: ")) {
			a.base[file] = append(line, '\n')
		}
	}
	return a
}

// added is what we wrote before e's message (src): its status lines
// (ioStatus), after the X-IMAPbase line on the first message of a file.
func (a *ioArchive) added(e ManifestEntry, src []byte) []byte {
	st := ioStatus(e.Flags, src)
	if len(st) == 0 || *e.Offset != 0 {
		return st
	}
	return append(slices.Clip(a.base[e.File]), st...)
}

// byFile groups the manifest entries by .mbox file, in offset order.
func (a *ioArchive) byFile() map[string][]ManifestEntry {
	out := map[string][]ManifestEntry{}
	for _, e := range a.entries {
		out[e.File] = append(out[e.File], e)
	}
	for _, es := range out {
		slices.SortFunc(es, func(x, y ManifestEntry) int { return int(*x.Offset - *y.Offset) })
	}
	return out
}

// ioCanon is what survives every mbox reader's documented changes: line
// endings as LF (go-mbox makes them CRLF), no trailing newlines (a reader
// keeps or drops the blank line before the next From_ line, and a message
// without a final newline gains one), and ">" runs before "From " removed
// (mboxo readers take one ">" away, mboxrd readers one per level).
func ioCanon(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	for i, l := range lines {
		if t := bytes.TrimLeft(l, ">"); bytes.HasPrefix(t, []byte("From ")) {
			lines[i] = t
		}
	}
	return bytes.Join(lines, []byte("\n"))
}

// TestInteropGoMboxFramesManifest: go-mbox splits each .mbox file of an
// archive of the whole corpus into exactly the messages the manifest lists,
// in order, each the source message (with the status lines we add in front)
// modulo go-mbox's documented changes.
func TestInteropGoMboxFramesManifest(t *testing.T) {
	a := ioBuildMboxArchive(t)
	total := 0
	for file, es := range a.byFile() {
		f, err := os.Open(filepath.Join(a.dir, filepath.FromSlash(file)))
		if err != nil {
			t.Fatal(err)
		}
		mr := gombox.NewReader(f)
		var got [][]byte
		for {
			r, err := mr.NextMessage()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: go-mbox: %v", file, err)
			}
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("%s: go-mbox: %v", file, err)
			}
			got = append(got, b)
		}
		f.Close()
		if len(got) != len(es) {
			t.Errorf("%s: go-mbox reads %d messages, the manifest lists %d", file, len(got), len(es))
			continue
		}
		for i, e := range es {
			want := append(a.added(e, a.source[e.SHA256]), a.source[e.SHA256]...)
			if !bytes.Equal(ioCanon(got[i]), ioCanon(want)) {
				t.Errorf("%s: message %d (offset %d, source %s) differs as go-mbox reads it", file, i, *e.Offset, e.ID)
			}
		}
		total += len(got)
	}
	if total != len(a.entries) {
		t.Errorf("go-mbox read %d messages in all, the manifest lists %d", total, len(a.entries))
	}
}

const ioPythonScript = `
import base64, json, mailbox, sys
out = []
mb = mailbox.mbox(sys.argv[1], create=False)
for key in mb.iterkeys():
    m = mb.get_message(key)
    out.append({"from": m.get_from(), "flags": m.get_flags(), "b64": base64.b64encode(mb.get_bytes(key)).decode()})
json.dump(out, sys.stdout)
`

// TestInteropPythonMailbox: Python's mailbox.mbox reads each .mbox file as
// the manifest lists it: the same count, each message's bytes equal to our
// status lines plus the source bytes plus the line ending we added to a
// message without one (Python documents neither unescaping ">From " nor
// hiding Status headers, so ">" runs before "From " are compared undone),
// and get_flags() shows the flags (R read, A answered, F flagged, D deleted,
// T draft).
func TestInteropPythonMailbox(t *testing.T) {
	py := ioNeed(t, "python3", "python3")
	a := ioBuildMboxArchive(t)
	for file, es := range a.byFile() {
		cmd := exec.Command(py, "-c", ioPythonScript, filepath.Join(a.dir, filepath.FromSlash(file)))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: python: %v", file, err)
		}
		var got []struct {
			From  string `json:"from"`
			Flags string `json:"flags"`
			B64   string `json:"b64"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(es) {
			t.Errorf("%s: Python reads %d messages, the manifest lists %d", file, len(got), len(es))
			continue
		}
		for i, e := range es {
			b, _ := base64.StdEncoding.DecodeString(got[i].B64)
			src := a.source[e.SHA256]
			want := append(a.added(e, src), src...)
			if !bytes.HasSuffix(src, []byte("\n")) {
				if bytes.Contains(src, []byte("\r\n")) && !bytes.HasSuffix(src, []byte("\r")) {
					want = append(want, '\r')
				}
				want = append(want, '\n')
			}
			if !bytes.Equal(ioUnescape(b), want) {
				t.Errorf("%s: message %d (source %s): Python's bytes differ from what we added plus the source", file, i, e.ID)
			}
			var wantFlags string
			if len(ioStatus(e.Flags, src)) == 0 {
				e.Flags = nil
			}
			for _, m := range []struct {
				flag string
				c    byte
			}{{formats.FlagSeen, 'R'}, {formats.FlagAnswered, 'A'}, {formats.FlagFlagged, 'F'}, {formats.FlagDeleted, 'D'}} {
				if slices.Contains(e.Flags, m.flag) {
					wantFlags += string(m.c)
				}
			}
			if gf := strings.Map(func(r rune) rune {
				if strings.ContainsRune("RAFD", r) {
					return r
				}
				return -1
			}, got[i].Flags); ioSorted(gf) != ioSorted(wantFlags) {
				t.Errorf("%s: message %d: Python flags %q, want %q", file, i, got[i].Flags, wantFlags)
			}
		}
	}
}

func ioSorted(s string) string {
	b := []byte(s)
	slices.Sort(b)
	return string(b)
}

// ioUnescape takes one ">" from every line matching ^>+From (mboxrd).
func ioUnescape(b []byte) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	for i, l := range lines {
		if t := bytes.TrimLeft(l, ">"); len(t) < len(l) && bytes.HasPrefix(t, []byte("From ")) {
			lines[i] = l[1:]
		}
	}
	return bytes.Join(lines, nil)
}

// ioStatus is the status lines written before src: none where they do not
// fit (a continuation line or a first line that is no header field).
func ioStatus(flags []string, src []byte) []byte {
	if !formats.StatusLinesFit(src) {
		return nil
	}
	return formats.MboxStatusLines(flags)
}

// Issue 12 item 6: after Dovecot opened a copy of the mbox archive (it adds
// X-IMAPbase to the first message and X-UID to every one), verify says the
// file was changed by a mail program, not "file does not exist".
func TestVerifyMboxRewrittenByDovecot(t *testing.T) {
	dir := t.TempDir()
	w := rpOpen(t, "mbox", dir)
	ctx := context.Background()
	f, err := w.Ensure(ctx, []string{"INBOX"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		b := []byte("Subject: m" + string(rune('0'+i)) + "\n\nbody\n")
		if _, err := w.Store(ctx, f, formats.Message{ID: "x", Size: int64(len(b)), Flags: []string{formats.FlagSeen}}, int64(len(b)), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p := filepath.Join(dir, "mail", "inbox")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// What Dovecot does to the headers (it also rewrites the length record
	// nobody else knows about: the .len no longer matches).
	lines := strings.SplitAfter(string(data), "\n")
	var out strings.Builder
	uid := 0
	for _, l := range lines {
		out.WriteString(l)
		if strings.HasPrefix(l, "From ") {
			uid++
			if uid == 1 {
				out.WriteString("X-IMAPbase: 1700000000 0000000004\n")
			}
			out.WriteString("X-UID: " + string(rune('0'+uid)) + "\n")
		}
	}
	if err := os.WriteFile(p, []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := vfVerify(t, dir, VerifyOptions{})
	if rep.OK() {
		t.Fatal("verify passed an archive Dovecot rewrote")
	}
	for _, pr := range rep.Problems {
		if strings.Contains(pr.Detail, "does not exist") {
			t.Errorf("misleading problem: %v", pr)
		}
	}
	found := false
	for _, pr := range rep.Problems {
		if pr.Kind == ProblemAltered && strings.Contains(pr.Detail, "X-IMAPbase") {
			found = true
		}
	}
	if !found {
		t.Errorf("no problem says a mail program rewrote the file: %v", rep.Problems)
	}
}
