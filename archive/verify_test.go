package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// vfMaildirArchive writes a Maildir archive of n varied messages and
// returns its directory, the manifest entries and the chain head.
func vfMaildirArchive(t *testing.T, n int) (string, []ManifestEntry, string) {
	t.Helper()
	dir := t.TempDir()
	w := mfOpen(t, dir)
	mdStoreAll(t, w, mdVariedMessages(n), 4)
	head := w.LastHash()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, entries := mfLines(t, dir)
	return dir, entries, head
}

// vfVerify runs Verify and fails the test if it errors.
func vfVerify(t *testing.T, dir string, opts VerifyOptions) *VerifyReport {
	t.Helper()
	rep, err := Verify(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// vfExpect asserts that rep holds exactly the problems want, each given as
// "kind file" or "kind file line".
func vfExpect(t *testing.T, rep *VerifyReport, want ...string) {
	t.Helper()
	var got []string
	for _, p := range rep.Problems {
		s := p.Kind + " " + p.File
		if p.Line > 0 {
			s += " " + strconv.Itoa(p.Line)
		}
		got = append(got, s)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n got %q\nwant %q\n%v", got, want, rep.Problems)
	}
}

// vfRewriteManifest replaces the manifest's lines with edit(lines).
func vfRewriteManifest(t *testing.T, dir string, edit func(lines [][]byte) [][]byte) {
	t.Helper()
	lines, _ := mfLines(t, dir)
	lines = edit(lines)
	var buf bytes.Buffer
	for _, l := range lines {
		buf.Write(l)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyMaildirClean(t *testing.T) {
	dir, entries, head := vfMaildirArchive(t, 24)
	for _, quick := range []bool{false, true} {
		rep := vfVerify(t, dir, VerifyOptions{Quick: quick, LastHash: head})
		vfExpect(t, rep)
		if rep.Format != "maildir" || rep.Messages != len(entries) || rep.LastHash != head {
			t.Errorf("quick=%v: report %+v", quick, rep)
		}
	}
}

func TestVerifyMaildirFailures(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string, e []ManifestEntry) []string // returns the expected problems
		opts   VerifyOptions
	}{
		{"one flipped bit", func(t *testing.T, dir string, e []ManifestEntry) []string {
			p := filepath.Join(dir, e[9].File)
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 0x10
			os.WriteFile(p, data, 0o600)
			return []string{"altered " + e[9].File + " 10"}
		}, VerifyOptions{}},
		{"one flipped bit, quick", func(t *testing.T, dir string, e []ManifestEntry) []string {
			p := filepath.Join(dir, e[9].File)
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 0x10
			os.WriteFile(p, data, 0o600)
			return nil // Quick checks sizes only: documented blind spot
		}, VerifyOptions{Quick: true}},
		{"a byte appended", func(t *testing.T, dir string, e []ManifestEntry) []string {
			f, _ := os.OpenFile(filepath.Join(dir, e[2].File), os.O_WRONLY|os.O_APPEND, 0)
			f.WriteString("!")
			f.Close()
			return []string{"size " + e[2].File + " 3"}
		}, VerifyOptions{Quick: true}},
		{"a deleted message", func(t *testing.T, dir string, e []ManifestEntry) []string {
			os.Remove(filepath.Join(dir, e[5].File))
			return []string{"missing " + e[5].File + " 6"}
		}, VerifyOptions{}},
		{"added files in cur and new", func(t *testing.T, dir string, e []ManifestEntry) []string {
			os.WriteFile(filepath.Join(dir, ".Archive.2023", "cur", "1.evil:2,S"), []byte("x"), 0o600)
			os.WriteFile(filepath.Join(dir, "new", "2.evil"), []byte("y"), 0o600)
			return []string{"unlisted .Archive.2023/cur/1.evil:2,S", "unlisted new/2.evil"}
		}, VerifyOptions{Quick: true}},
		{"flags changed by a mail program", func(t *testing.T, dir string, e []ManifestEntry) []string {
			old := filepath.Join(dir, e[0].File)
			u, _, _ := formats.ParseMaildirName(filepath.Base(old))
			os.Rename(old, filepath.Join(filepath.Dir(old), u+":2,RS"))
			return []string{"missing " + e[0].File + " 1"} // and not also unlisted
		}, VerifyOptions{}},
		{"an edited line", func(t *testing.T, dir string, e []ManifestEntry) []string {
			vfRewriteManifest(t, dir, func(l [][]byte) [][]byte {
				l[3] = bytes.Replace(l[3], []byte(`"flags":[`), []byte(`"flags":["\\Seen",`), 1)
				return l
			})
			return []string{"manifest-chain " + ManifestFile + " 4"}
		}, VerifyOptions{}},
		{"the last line edited, head known", func(t *testing.T, dir string, e []ManifestEntry) []string {
			vfRewriteManifest(t, dir, func(l [][]byte) [][]byte {
				n := len(l) - 1
				l[n] = bytes.Replace(l[n], []byte(`"folder":"`), []byte(`"folder":"X`), 1)
				return l
			})
			return []string{fmt.Sprintf("manifest-head %s %d", HeadFile, len(e)), fmt.Sprintf("manifest-chain %s %d", ManifestFile, len(e))}
		}, VerifyOptions{LastHash: "set by the test"}},
		{"a removed line", func(t *testing.T, dir string, e []ManifestEntry) []string {
			vfRewriteManifest(t, dir, func(l [][]byte) [][]byte { return append(l[:4], l[5:]...) })
			return []string{"manifest-chain " + ManifestFile + " 5", "sha256sums " + SumsFile, "unlisted " + e[4].File}
		}, VerifyOptions{}},
		{"the last line removed, head known", func(t *testing.T, dir string, e []ManifestEntry) []string {
			vfRewriteManifest(t, dir, func(l [][]byte) [][]byte { return l[:len(l)-1] })
			return []string{fmt.Sprintf("manifest-head %s %d", HeadFile, len(e)-1), fmt.Sprintf("manifest-chain %s %d", ManifestFile, len(e)-1),
				"unlisted " + e[len(e)-1].File, "sha256sums " + SumsFile}
		}, VerifyOptions{LastHash: "set by the test"}},
		{"two lines swapped", func(t *testing.T, dir string, e []ManifestEntry) []string {
			vfRewriteManifest(t, dir, func(l [][]byte) [][]byte { l[6], l[7] = l[7], l[6]; return l })
			return []string{"manifest-chain " + ManifestFile + " 7", "manifest-chain " + ManifestFile + " 8",
				"manifest-chain " + ManifestFile + " 9"}
		}, VerifyOptions{}},
		{"a garbled line", func(t *testing.T, dir string, e []ManifestEntry) []string {
			vfRewriteManifest(t, dir, func(l [][]byte) [][]byte { l[1] = []byte("{not json"); return l })
			return []string{"manifest-chain " + ManifestFile + " 2", "manifest-chain " + ManifestFile + " 3",
				"unlisted " + e[1].File, "sha256sums " + SumsFile}
		}, VerifyOptions{}},
		{"a torn last line", func(t *testing.T, dir string, e []ManifestEntry) []string {
			f, _ := os.OpenFile(filepath.Join(dir, ManifestFile), os.O_WRONLY|os.O_APPEND, 0)
			f.WriteString(`{"seq":`)
			f.Close()
			return []string{fmt.Sprintf("manifest-chain %s %d", ManifestFile, len(e)+1)}
		}, VerifyOptions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, entries, head := vfMaildirArchive(t, 12)
			want := tt.damage(t, dir, entries)
			opts := tt.opts
			if opts.LastHash != "" {
				opts.LastHash = head
			}
			rep := vfVerify(t, dir, opts)
			vfExpect(t, rep, want...)
			if len(want) > 0 && rep.OK() {
				t.Error("OK() with problems")
			}
		})
	}
}

// A manifest naming a path outside the archive is refused, not followed.
func TestVerifyHostileManifestPath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(filepath.Dir(dir), "outside"), []byte("x"), 0o600)
	var buf bytes.Buffer
	prev := zeroHash
	for i, file := range []string{"../outside", "/etc/passwd", "cur/../../outside"} {
		line, _ := json.Marshal(ManifestEntry{Seq: uint64(i + 1), File: file, Size: 1, Flags: []string{}, Prev: prev})
		prev = lineHash(line)
		buf.Write(line)
		buf.WriteByte('\n')
	}
	os.WriteFile(filepath.Join(dir, ManifestFile), buf.Bytes(), 0o600)
	os.WriteFile(filepath.Join(dir, HeadFile), []byte(formatHead(3, prev)), 0o600)
	rep := vfVerify(t, dir, VerifyOptions{})
	vfExpect(t, rep, "manifest-chain "+ManifestFile+" 1", "manifest-chain "+ManifestFile+" 2",
		"manifest-chain "+ManifestFile+" 3")
	if rep.Messages != 0 {
		t.Errorf("%d unsafe entries were checked", rep.Messages)
	}
}

func TestVerifyNoManifest(t *testing.T) {
	if _, err := Verify(context.Background(), t.TempDir(), VerifyOptions{}); err == nil {
		t.Fatal("Verify of a directory with no manifest succeeded")
	}
}

// vfMboxStore is a minimal many-messages-per-file store, standing in for
// the mbox store in Verify's mbox branch: each folder is one NAME.mbox
// holding "From - \n" + body + "\n" per message, with NAME.idx recording
// each message's offset and length; the ID is the offset, as in mbox.
type vfMboxStore struct {
	dir     string
	pending []string
}

func (s *vfMboxStore) file(f formats.Folder) string {
	var enc []string
	for _, c := range f.Path {
		enc = append(enc, formats.EncodeFSComponent(c))
	}
	return strings.Join(enc, "/") + ".mbox"
}

func (s *vfMboxStore) Folders(context.Context) ([]formats.Folder, error) { return nil, nil }
func (s *vfMboxStore) List(context.Context, formats.Folder) (uint32, []formats.Message, error) {
	return 1, nil, nil
}
func (s *vfMboxStore) Headers(context.Context, formats.Folder, []formats.Message, func(formats.Message, []byte) error) error {
	return nil
}
func (s *vfMboxStore) Fetch(context.Context, formats.Folder, []formats.Message, func(formats.Message, io.Reader) error) error {
	return nil
}
func (s *vfMboxStore) Separator() rune { return '/' }
func (s *vfMboxStore) Ensure(_ context.Context, path []string) (formats.Folder, error) {
	f := formats.Folder{Path: path, Validity: 1}
	return f, os.MkdirAll(filepath.Dir(filepath.Join(s.dir, s.file(f))), 0o700)
}
func (s *vfMboxStore) Index(context.Context, formats.Folder, func(string) bool, func(string, formats.Key) error) error {
	return nil
}
func (s *vfMboxStore) Store(_ context.Context, f formats.Folder, _ formats.Message, _ int64, body io.Reader) (string, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	mb, err := os.OpenFile(filepath.Join(s.dir, s.file(f)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer mb.Close()
	fi, _ := mb.Stat()
	mb.Write(append(append([]byte("From - \n"), data...), '\n'))
	idx, _ := os.OpenFile(filepath.Join(s.dir, s.file(f)+".idx"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	defer idx.Close()
	fmt.Fprintf(idx, "%d %d\n", fi.Size(), len(data))
	return strconv.FormatInt(fi.Size(), 10), nil
}
func (s *vfMboxStore) Flush(context.Context) error { return nil }
func (s *vfMboxStore) Open(f formats.Folder, id string) (io.ReadCloser, string, error) {
	name := s.file(f)
	idx, err := os.ReadFile(filepath.Join(s.dir, name+".idx"))
	if err != nil {
		return nil, "", err
	}
	for _, l := range strings.Split(string(idx), "\n") {
		var off, n int64
		if _, err := fmt.Sscan(l, &off, &n); err == nil && strconv.FormatInt(off, 10) == id {
			mb, err := os.Open(filepath.Join(s.dir, name))
			if err != nil {
				return nil, "", err
			}
			sr := io.NewSectionReader(mb, off+int64(len("From - \n")), n)
			return struct {
				io.Reader
				io.Closer
			}{sr, mb}, name, nil
		}
	}
	return nil, "", fmt.Errorf("no message %s in %s", id, name)
}
func (s *vfMboxStore) Close() error { return nil }

// Verify's mbox branch: places by file and offset, bytes through the
// store's Open, unlisted .mbox files.
func TestVerifyMboxBranch(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWriter(dir, &vfMboxStore{dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mdStoreAll(t, w, mdVariedMessages(10), 3)
	head := w.LastHash()
	w.Close()
	_, entries := mfLines(t, dir)
	for _, e := range entries {
		if e.Offset == nil || strconv.FormatInt(*e.Offset, 10) != e.DestID || !strings.HasSuffix(e.File, ".mbox") {
			t.Fatalf("mbox entry without its offset: %+v", e)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, SumsFile)); err == nil {
		t.Error("SHA256SUMS written for an mbox archive")
	}
	open := func(dir string) (Store, error) { return &vfMboxStore{dir: dir}, nil }
	rep := vfVerify(t, dir, VerifyOptions{OpenStore: open, LastHash: head})
	vfExpect(t, rep)
	if rep.Format != "mbox" {
		t.Errorf("format %q", rep.Format)
	}

	// A flipped bit inside the third message of its file.
	e := entries[8]
	p := filepath.Join(dir, e.File)
	data, _ := os.ReadFile(p)
	data[*e.Offset+int64(len("From - \n"))+e.Size/2] ^= 1
	os.WriteFile(p, data, 0o600)
	// An added .mbox file, and another folder's file cut short.
	os.WriteFile(filepath.Join(dir, "Extra.mbox"), []byte("From - \nSubject: x\n\n"), 0o600)
	last := entries[len(entries)-1]
	os.Truncate(filepath.Join(dir, last.File), *last.Offset+2)

	rep = vfVerify(t, dir, VerifyOptions{OpenStore: open})
	want := []string{fmt.Sprintf("altered %s 9", e.File), fmt.Sprintf("size %s %d", last.File, len(entries)), "unlisted Extra.mbox"}
	vfExpect(t, rep, want...)
	rep = vfVerify(t, dir, VerifyOptions{Quick: true})
	vfExpect(t, rep, fmt.Sprintf("size %s %d", last.File, len(entries)), "unlisted Extra.mbox")

	// A deleted mbox file: every message in it is missing.
	os.Remove(filepath.Join(dir, e.File))
	rep = vfVerify(t, dir, VerifyOptions{OpenStore: open})
	n := 0
	for _, p := range rep.Problems {
		if p.Kind == ProblemMissing && p.File == e.File {
			n++
		}
	}
	if want := countFile(entries, e.File); n != want {
		t.Errorf("%d missing problems for the deleted %s, want %d", n, e.File, want)
	}
}

func countFile(entries []ManifestEntry, file string) int {
	n := 0
	for _, e := range entries {
		if e.File == file {
			n++
		}
	}
	return n
}

// The real mbox store end to end: archive through the manifest, verify
// with the default opener, then damage it.
func TestVerifyMboxArchive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := OpenMbox(dir, MboxOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(dir, st)
	if err != nil {
		t.Fatal(err)
	}
	msgs := mdVariedMessages(30)
	mdStoreAll(t, w, msgs, 8)
	head := w.LastHash()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, entries := mfLines(t, dir)
	if len(entries) != len(msgs) {
		t.Fatalf("%d entries for %d messages", len(entries), len(msgs))
	}
	rep := vfVerify(t, dir, VerifyOptions{LastHash: head})
	vfExpect(t, rep)
	if rep.Format != "mbox" || rep.Messages != len(msgs) {
		t.Fatalf("report %+v", rep)
	}

	// An empty folder file (a folder with no messages) is not a problem.
	if _, err := st.Ensure(ctx, []string{"Empty"}); err != nil {
		t.Fatal(err)
	}
	vfExpect(t, vfVerify(t, dir, VerifyOptions{LastHash: head}))

	// Writer.List over mbox gives back the manifest's flags and dates,
	// which the mbox file does not hold.
	st, _ = OpenMbox(dir, MboxOptions{})
	w, err = NewWriter(dir, st)
	if err != nil {
		t.Fatal(err)
	}
	folders, _ := w.Folders(ctx)
	byDest := map[string]ManifestEntry{}
	for _, e := range entries {
		byDest[destKey(e.DestFolder, e.DestID)] = e
	}
	listed := 0
	for _, f := range folders {
		if f.NoSelect {
			continue
		}
		_, list, err := w.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range list {
			e, ok := byDest[destKey(f.Path, m.ID)]
			if !ok {
				t.Fatalf("%q %s not in the manifest", f.Path, m.ID)
			}
			if strings.Join(m.Flags, " ") != strings.Join(e.Flags, " ") || m.Date.Format(time.RFC3339) != e.Date {
				t.Errorf("%q %s: flags %q date %v; manifest %q %s", f.Path, m.ID, m.Flags, m.Date, e.Flags, e.Date)
			}
			listed++
		}
	}
	w.Close()
	if listed != len(msgs) {
		t.Errorf("listed %d of %d", listed, len(msgs))
	}

	// One flipped bit in the middle of a message body.
	e := entries[17]
	p := filepath.Join(dir, filepath.FromSlash(e.File))
	data, _ := os.ReadFile(p)
	i := bytes.Index(data[*e.Offset:], []byte("\n\n"))
	if i < 0 {
		i = bytes.IndexByte(data[*e.Offset:], '\n')
	}
	data[*e.Offset+int64(i)+1] ^= 0x04
	os.WriteFile(p, data, 0o600)
	os.WriteFile(filepath.Join(dir, "mail", "Added"), []byte("From x@y Thu Jan  1 00:00:00 1970\nSubject: x\n\n"), 0o600)
	rep = vfVerify(t, dir, VerifyOptions{})
	vfExpect(t, rep, fmt.Sprintf("altered %s 18", e.File), "unlisted mail/Added")
}
