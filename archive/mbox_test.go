package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/mailferry/mailferry/formats/corpus"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// testMessage is one message to store, with what the store should say.
type testMessage struct {
	folder []string
	body   []byte
	date   time.Time
	flags  []string // as its own Status/X-Status headers say
	stored []string // the flags given to Store (written as status lines)
}

// variedMessages returns n messages covering the framing's hard cases.
func variedMessages(n int) []testMessage {
	rng := rand.New(rand.NewPCG(1, 2))
	folders := [][]string{{"INBOX"}, {"Archive"}, {"Archive", "2023"}, {"Lists", "go-nuts"}}
	var out []testMessage
	for i := 0; i < n; i++ {
		eol := "\n"
		if i%3 == 1 {
			eol = "\r\n"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "Message-ID: <m%d@example.com>%s", i, eol)
		fmt.Fprintf(&b, "From: Sender %d <s%d@example.com>%s", i, i, eol)
		fmt.Fprintf(&b, "Subject: test %d%s", i, eol)
		if i%4 == 0 {
			fmt.Fprintf(&b, "Return-Path: <bounce+%d@example.com>%s", i, eol)
		}
		var flags []string
		if i%5 == 0 {
			fmt.Fprintf(&b, "Status: RO%sX-Status: AF%s", eol, eol)
			flags = []string{formats.FlagSeen, formats.FlagAnswered, formats.FlagFlagged}
		}
		if i%5 != 0 && i%7 == 3 {
			fmt.Fprintf(&b, "Status: O%sX-Status: DT%s", eol, eol)
			flags = []string{formats.FlagDeleted, formats.FlagDraft}
		}
		b.WriteString(eol)
		lines := []string{
			"Hello,", "From the start of a line", ">From an escaped one", ">>From a doubly escaped one",
			"From", "From ", ">>>From ", "", "nul \x00 byte", "tab\tand trailing space ", "Fromage",
			"From someone@example.com Mon Jan  1 00:00:00 2001",
		}
		for j := 0; j < 3+rng.IntN(20); j++ {
			b.WriteString(lines[rng.IntN(len(lines))])
			b.WriteString(eol)
		}
		body := b.String()
		switch i % 6 {
		case 2:
			body = strings.TrimSuffix(body, eol) // no final newline
		case 4:
			body += "From "
		case 5:
			body += "last line ends in CR\r"
		}
		date := time.Date(2000+i%25, time.Month(1+i%12), 1+i%28, i%24, i%60, (i*7)%60, 0, time.FixedZone("", (i%5-2)*3600))
		if i == 17 {
			date = time.Time{} // unknown
		}
		stored := [][]string{{formats.FlagSeen}, {formats.FlagSeen, "Work", "$Label1"}, nil,
			{formats.FlagAnswered, formats.FlagFlagged, formats.FlagDraft, formats.FlagDeleted, "$Forwarded"}}[i%4]
		out = append(out, testMessage{folder: folders[i%len(folders)], body: []byte(body), date: date, flags: flags, stored: stored})
	}
	// One large message: 5 MB of lines, some of them "From ".
	var big bytes.Buffer
	big.WriteString("Message-ID: <big@example.com>\r\nSubject: big\r\n\r\n")
	for big.Len() < 5<<20 {
		if big.Len()%7 == 0 {
			big.WriteString("From here to there\r\n")
		}
		big.WriteString(strings.Repeat("0123456789abcdef", 4) + "\r\n")
	}
	out[n-1].body = big.Bytes()
	return out
}

func storeAll(t *testing.T, s *Mbox, msgs []testMessage) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		f, err := s.Ensure(ctx, m.folder)
		if err != nil {
			t.Fatalf("Ensure %v: %v", m.folder, err)
		}
		size := int64(len(m.body))
		if i%2 == 1 {
			size = -1 // until EOF
		}
		id, err := s.Store(ctx, f, formats.Message{Date: m.date, Flags: m.stored}, size, bytes.NewReader(m.body))
		if err != nil {
			t.Fatalf("Store %d: %v", i, err)
		}
		ids[i] = id
	}
	return ids
}

func TestMboxRoundTrip(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "archive")
	msgs := variedMessages(50)
	s, err := OpenMbox(root, MboxOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := storeAll(t, s, msgs)
	// Locate works before Flush.
	f0, _ := s.Ensure(ctx, msgs[0].folder)
	if file, off, err := s.Locate(f0, ids[0]); err != nil || file != "mail/inbox" || strconv.FormatInt(off, 10) != ids[0] {
		t.Errorf("Locate: %q %d %v", file, off, err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenMbox(root, MboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	folders, err := s.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range folders {
		names = append(names, fmt.Sprintf("%s=%s%v", formats.DisplayName(f.Path), f.Name, map[bool]string{true: "(noselect)"}[f.NoSelect]))
	}
	// Archive holds messages and a subfolder: its directory (made second)
	// is Archive.mbox, which mbox needs and Dovecot shows as it is.
	want := "INBOX=INBOX Archive=Archive Archive/2023=Archive.mbox/2023 Lists=Lists(noselect) Lists/go-nuts=Lists/go-nuts"
	if strings.Join(names, " ") != want {
		t.Errorf("Folders:\n got %s\nwant %s", strings.Join(names, " "), want)
	}
	for _, rel := range []string{"mail/inbox", "mail/Archive", "mail/Archive.mbox/2023", "mail/Lists/go-nuts"} {
		fi, err := os.Stat(filepath.Join(root, rel))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", rel, fi.Mode(), err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(root, "mail", "Lists")); fi.Mode().Perm() != 0o700 {
		t.Errorf("Lists/ mode %v", fi.Mode())
	}

	byFolder := map[string][]int{}
	for i, m := range msgs {
		k := formats.DisplayName(m.folder)
		byFolder[k] = append(byFolder[k], i)
	}
	for _, f := range folders {
		if f.NoSelect {
			continue
		}
		idx := byFolder[formats.DisplayName(f.Path)]
		validity, list, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if validity == 0 || validity != f.Validity {
			t.Errorf("%v: validity %d, Folders said %d", f.Path, validity, f.Validity)
		}
		if len(list) != len(idx) {
			t.Fatalf("%v: %d messages, want %d", f.Path, len(list), len(idx))
		}
		for j, m := range list {
			want := msgs[idx[j]]
			if m.ID != ids[idx[j]] {
				t.Errorf("message %d: ID %s, Store said %s", idx[j], m.ID, ids[idx[j]])
			}
			if m.Size != int64(len(want.body)) {
				t.Errorf("message %d: Size %d want %d", idx[j], m.Size, len(want.body))
			}
			if wd := want.date.Truncate(time.Second); !m.Date.Equal(wd) || m.Date.IsZero() != wd.IsZero() {
				t.Errorf("message %d: Date %v want %v", idx[j], m.Date, wd)
			}
			// The stored flags (status lines) win over the message's own
			// Status headers, which stay part of its bytes.
			if !slices.Equal(m.Flags, want.stored) && !(len(m.Flags) == 0 && len(want.stored) == 0) {
				t.Errorf("message %d: Flags %v want %v", idx[j], m.Flags, want.stored)
			}
		}
		// Fetch in reverse order: each body is exactly what was stored.
		rev := slices.Clone(list)
		slices.Reverse(rev)
		seen := 0
		err = s.Fetch(ctx, f, rev, func(m formats.Message, body io.Reader) error {
			seen++
			j := slices.IndexFunc(list, func(x formats.Message) bool { return x.ID == m.ID })
			h := sha256.New()
			n, err := io.Copy(h, body)
			if err != nil {
				return err
			}
			want := msgs[idx[j]].body
			if n != int64(len(want)) || !bytes.Equal(h.Sum(nil), sha(want)) {
				t.Errorf("message %d: fetched %d bytes, sha256 differs from the %d stored", idx[j], n, len(want))
			}
			return nil
		})
		if err != nil || seen != len(list) {
			t.Fatalf("Fetch: %v (%d of %d)", err, seen, len(list))
		}
		// Headers and Index agree with the stored bytes.
		err = s.Headers(ctx, f, list, func(m formats.Message, h []byte) error {
			j := slices.IndexFunc(list, func(x formats.Message) bool { return x.ID == m.ID })
			if want := formats.HeaderBlock(msgs[idx[j]].body); !bytes.Equal(h, want) {
				t.Errorf("message %d: header %q want %q", idx[j], h, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]formats.Key{}
		err = s.Index(ctx, f, func(id string) bool { return id == list[0].ID }, func(id string, k formats.Key) error {
			keys[id] = k
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != len(list)-1 {
			t.Errorf("Index gave %d keys, want %d", len(keys), len(list)-1)
		}
		for j, m := range list[1:] {
			if keys[m.ID] != formats.IdentityKey(msgs[idx[j+1]].body) {
				t.Errorf("message %d: wrong identity key", idx[j+1])
			}
		}
		// Open gives the bytes and the file.
		rc, file, err := s.Open(f, list[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if wantFile, _ := s.fileOf(f); file != wantFile || !bytes.Equal(b, msgs[idx[0]].body) {
			t.Errorf("Open: file %q, %d bytes", file, len(b))
		}
		if _, _, err := s.Open(f, "1"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open at a non-message offset: %v", err)
		}
	}
	// The From_ line carries the Return-Path.
	raw, _ := os.ReadFile(filepath.Join(root, "mail", "inbox"))
	if !bytes.HasPrefix(raw, []byte("From bounce+0@example.com ")) {
		t.Errorf("first From_ line: %q", raw[:60])
	}
	if w := s.Warnings(); len(w) != 0 {
		t.Errorf("warnings on our own files: %q", w)
	}
}

func sha(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func listBodies(t *testing.T, s *Mbox, path []string) []string {
	t.Helper()
	ctx := context.Background()
	f := formats.Folder{Path: path}
	_, list, err := s.List(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	err = s.Fetch(ctx, f, list, func(m formats.Message, body io.Reader) error {
		b, err := io.ReadAll(body)
		out = append(out, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func store(t *testing.T, s *Mbox, path []string, body string) string {
	t.Helper()
	ctx := context.Background()
	f, err := s.Ensure(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Store(ctx, f, formats.Message{Date: time.Unix(1e9, 0)}, int64(len(body)), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// crash drops the store's files as a killed process would: no Flush, no
// cutting back, locks released by the kernel.
func crash(s *Mbox) {
	for rel, mf := range s.open {
		mf.f.Close()
		delete(s.open, rel)
	}
}

func TestMboxCrashRecovery(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	inbox := []string{"INBOX"}
	s, err := OpenMbox(root, MboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Subject: one\n\nbody\n", "Subject: two\r\n\r\nno newline", "Subject: three\n\nFrom x\n"}
	for _, b := range want {
		store(t, s, inbox, b)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "mail", "inbox")
	fi, _ := os.Stat(path)
	good := fi.Size()
	if sc, _ := os.ReadFile(mboxSidecarPath(path)); string(sc) != fmt.Sprintf("mailferry-mbox v1 length=%d pending=0\n", good) {
		t.Errorf("sidecar %q", sc)
	}
	// A whole message stored but not flushed, then half of another one
	// written when the process dies.
	store(t, s, inbox, "Subject: four\n\nnever flushed\n")
	if sc, _ := os.ReadFile(mboxSidecarPath(path)); string(sc) != fmt.Sprintf("mailferry-mbox v1 length=%d pending=1\n", good) {
		t.Errorf("sidecar during a batch %q", sc)
	}
	mf := s.open["mail/inbox"]
	if _, err := mf.f.WriteAt([]byte("From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nSubject: fi"), mf.size); err != nil {
		t.Fatal(err)
	}
	crash(s)
	if fi, _ := os.Stat(path); fi.Size() <= good {
		t.Fatal("test setup: nothing past the good length")
	}

	s, err = OpenMbox(root, MboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := listBodies(t, s, inbox); !slices.Equal(got, want) {
		t.Errorf("after recovery: %q\nwant %q", got, want)
	}
	if fi, _ := os.Stat(path); fi.Size() != good {
		t.Errorf("file is %d bytes, want it cut back to %d", fi.Size(), good)
	}
	if sc, _ := os.ReadFile(mboxSidecarPath(path)); string(sc) != fmt.Sprintf("mailferry-mbox v1 length=%d pending=0\n", good) {
		t.Errorf("sidecar after recovery %q", sc)
	}
	// Appending goes on from the good length.
	store(t, s, inbox, "Subject: five\n\n")
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listBodies(t, s, inbox); !slices.Equal(got, append(slices.Clone(want), "Subject: five\n\n")) {
		t.Errorf("after appending: %q", got)
	}
}

// A failed Store (short body, reader error) leaves nothing behind; Close
// without Flush cuts unflushed messages back.
func TestMboxFailedStoreAndClose(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	inbox := []string{"INBOX"}
	s, err := OpenMbox(root, MboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store(t, s, inbox, "Subject: a\n\nA\n")
	f := formats.Folder{Path: inbox}
	if _, err := s.Store(ctx, f, formats.Message{}, 100, strings.NewReader("Subject: short\n\n")); err == nil || !strings.HasPrefix(err.Error(), "mbox: ") {
		t.Errorf("short body: %v", err)
	}
	bad := io.MultiReader(strings.NewReader("Subject: b\n\nhalf"), iotestErrReader{})
	if _, err := s.Store(ctx, f, formats.Message{}, -1, bad); err == nil {
		t.Error("reader error: no error")
	}
	store(t, s, inbox, "Subject: c\n\nC")
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listBodies(t, s, inbox); !slices.Equal(got, []string{"Subject: a\n\nA\n", "Subject: c\n\nC"}) {
		t.Errorf("got %q", got)
	}
	store(t, s, inbox, "Subject: d\n\nnot flushed\n")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = OpenMbox(root, MboxOptions{ReadOnly: true})
	if got := listBodies(t, s, inbox); !slices.Equal(got, []string{"Subject: a\n\nA\n", "Subject: c\n\nC"}) {
		t.Errorf("after Close without Flush: %q", got)
	}
	if _, err := s.Store(ctx, f, formats.Message{}, -1, strings.NewReader("x")); err == nil {
		t.Error("Store on a read-only store succeeded")
	}
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// Another program's file: appended to after a clean Flush (kept), and one
// that ends without a newline in a CRLF file (its last message unchanged).
func TestMboxForeignFiles(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	inbox := []string{"INBOX"}
	s, _ := OpenMbox(root, MboxOptions{})
	store(t, s, inbox, "Subject: ours\n\n")
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	fh, _ := os.OpenFile(filepath.Join(root, "mail", "inbox"), os.O_WRONLY|os.O_APPEND, 0)
	fh.WriteString("From mutt@example.com Mon Jan  1 00:00:00 2001\nSubject: theirs\n\n")
	fh.Close()
	s, _ = OpenMbox(root, MboxOptions{})
	if got := listBodies(t, s, inbox); !slices.Equal(got, []string{"Subject: ours\n\n", "Subject: theirs\n"}) {
		t.Errorf("got %q", got)
	}
	s.Close()

	other := filepath.Join(root, "other.mbox")
	os.WriteFile(other, []byte("From a@b Mon Jan  1 00:00:00 2001\r\nSubject: x\r\n\r\nbody\r"), 0o600)
	s, err := OpenMbox(other, MboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store(t, s, inbox, "Subject: y\n\n")
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listBodies(t, s, inbox); !slices.Equal(got, []string{"Subject: x\r\n\r\nbody\r", "Subject: y\n\n"}) {
		t.Errorf("got %q", got)
	}
	if _, err := s.Ensure(ctx, []string{"Sent"}); err == nil {
		t.Error("a single-file store made a second folder")
	}
	s.Close()

	// Not an mbox file: never appended to.
	notMbox := filepath.Join(root, "notes.mbox")
	os.WriteFile(notMbox, []byte("shopping list\n"), 0o600)
	s, _ = OpenMbox(notMbox, MboxOptions{})
	if _, err := s.Store(ctx, formats.Folder{Path: inbox}, formats.Message{}, -1, strings.NewReader("x")); err == nil {
		t.Error("appended to a file that is not an mbox")
	}
	s.Close()
	if b, _ := os.ReadFile(notMbox); string(b) != "shopping list\n" {
		t.Errorf("file changed: %q", b)
	}
}

func TestMboxSingleFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "mail.mbox")
	s, err := OpenMbox(path, MboxOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if fs, _ := s.Folders(ctx); len(fs) != 0 {
		t.Errorf("folders before Ensure: %v", fs)
	}
	id := store(t, s, []string{"inbox"}, "Subject: x\n\n")
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, _ = OpenMbox(path, MboxOptions{})
	defer s.Close()
	folders, _ := s.Folders(ctx)
	if len(folders) != 1 || !formats.IsInbox(folders[0].Path) {
		t.Fatalf("folders %v", folders)
	}
	_, list, err := s.List(ctx, folders[0])
	if err != nil || len(list) != 1 || list[0].ID != id || id != "0" {
		t.Fatalf("List: %v %v (id %s)", list, err, id)
	}
	if _, file, err := s.Open(folders[0], id); err != nil || file != "mail.mbox" {
		t.Errorf("Open: %q %v", file, err)
	}
}

// Hostile folder names never create anything outside the root, and each
// comes back from Folders as it went in.
func TestMboxHostileNames(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	s, err := OpenMbox(root, MboxOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hostile := [][]string{
		{".."}, {"..", "..", "etc", "passwd"}, {"../../escape"}, {"/abs"}, {"."}, {"a/b"}, {""},
		{"x", ""}, {"-rf"}, {".hidden"}, {"nul\x00byte"}, {"ctl\x01\x7f"}, {"A.mbox"}, {"A.mbox", "B"},
		{"A"}, {"INBOX.mbox"}, {"x.len"}, {"x.mbox.len"}, {"%2E%2E"}, {"\xff\xfe"}, {"Zürich"},
		{"inbox", "sub"}, {"~"}, {"con"}, {"a\\..\\b"},
	}
	for _, p := range hostile {
		f, err := s.Ensure(ctx, p)
		if err != nil {
			t.Errorf("Ensure %q: %v", p, err)
			continue
		}
		if _, err := s.Store(ctx, f, formats.Message{}, -1, strings.NewReader("Subject: "+strconv.Quote(strings.Join(p, "/"))+"\n\n")); err != nil {
			t.Errorf("Store %q: %v", p, err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing next to root.
	ents, _ := os.ReadDir(parent)
	if len(ents) != 1 || ents[0].Name() != "root" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("outside the root: %q", names)
	}
	// Every name below root is harmless.
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if p == root {
			return nil
		}
		n := d.Name()
		if n == "." || n == ".." || strings.ContainsRune(n, 0) || strings.HasPrefix(n, "-") ||
			(strings.HasPrefix(n, ".") && !strings.HasSuffix(n, ".tmp") && !strings.HasSuffix(n, mboxHiddenLen)) {
			t.Errorf("bad name %q", p)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			t.Errorf("symlink %q", p)
		}
		return nil
	})
	folders, err := s.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range folders {
		if !f.NoSelect {
			got[strings.Join(f.Path, "\x00")] = true
			bodies := listBodies(t, s, f.Path)
			if len(bodies) != 1 {
				t.Errorf("%q: %d messages", f.Path, len(bodies))
			}
		}
	}
	for _, p := range hostile {
		if !got[strings.Join(canonicalPath(p), "\x00")] {
			t.Errorf("folder %q not listed back", p)
		}
	}
	// A Name that would leave the root is refused.
	for _, name := range []string{"../x", "/etc/passwd", "a/../../b", "a//b", "a/"} {
		if _, _, err := s.List(ctx, formats.Folder{Name: name}); err == nil || !strings.Contains(err.Error(), "bad folder name") {
			t.Errorf("Name %q: %v", name, err)
		}
	}
}

// An mbox file whose lock is let go a moment later (a forked child's copy
// of the last run's descriptor, until its exec) is waited for.
func TestMboxLockWaitsForAHolderThatLetsGo(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	inbox := []string{"INBOX"}
	a, _ := OpenMbox(root, MboxOptions{})
	store(t, a, inbox, "Subject: a1\n\n")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	h := holdLock(t, filepath.Join(root, "mail", "inbox"))
	time.AfterFunc(100*time.Millisecond, func() { h.Close() })
	b, _ := OpenMbox(root, MboxOptions{})
	defer b.Close()
	f, _ := b.Ensure(ctx, inbox)
	if _, err := b.Store(ctx, f, formats.Message{}, -1, strings.NewReader("Subject: b\n\n")); err != nil {
		t.Fatalf("Store while a lock is let go 100 ms later: %v", err)
	}
}

func TestMboxLockContention(t *testing.T) {
	defer func(old time.Duration) { lockWait = old }(lockWait)
	lockWait = 50 * time.Millisecond
	ctx := context.Background()
	root := t.TempDir()
	inbox := []string{"INBOX"}
	a, _ := OpenMbox(root, MboxOptions{})
	b, _ := OpenMbox(root, MboxOptions{})
	store(t, a, inbox, "Subject: a1\n\n")
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	store(t, a, inbox, "Subject: a2 (not yet flushed)\n\n")
	f, _ := b.Ensure(ctx, inbox)
	_, err := b.Store(ctx, f, formats.Message{}, -1, strings.NewReader("Subject: b\n\n"))
	if !errors.Is(err, ErrMboxLocked) || !strings.Contains(err.Error(), "mail/inbox") {
		t.Errorf("Store while another holds the lock: %v", err)
	}
	// A reader sees only what a live writer has confirmed, and cuts nothing.
	if got := listBodies(t, b, inbox); !slices.Equal(got, []string{"Subject: a1\n\n"}) {
		t.Errorf("reader during a batch: %q", got)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := b.Store(ctx, f, formats.Message{}, -1, strings.NewReader("Subject: b\n\n")); err != nil {
		t.Errorf("Store after the lock was released: %v", err)
	}
	b.Flush(ctx)
	b.Close()
	c, _ := OpenMbox(root, MboxOptions{ReadOnly: true})
	if got := listBodies(t, c, inbox); len(got) != 3 {
		t.Errorf("got %q", got)
	}
}

// Real mbox files read through the store: counts as PROVENANCE.md gives
// them, and a warning naming a message for the files it calls ambiguous.
func TestMboxCorpusFiles(t *testing.T) {
	dir := corpus.Require(t, "mbox-dev")
	ctx := context.Background()
	files := []struct {
		name      string
		count     int
		ambiguous bool
	}{
		{"hyperkitty__non-ascii-headers.txt.mbox", 6, false},
		{"mailbox__t--folders--mbox.src.mbox", 45, false},
		{"mailbox__t--folders--mbox.win.mbox", 45, false},
		{"mime4j__mbox--src--test--resources--test-1--mbox.rlug.mbox", 5, false},
		{"mimekit__mbox--content-length.mbox.txt.mbox", 29, true},
		{"mimekit__mbox--issue1189.mbox.txt.mbox", 4, false},
		{"mimekit__mbox--simple.mbox.txt.mbox", 3, false},
		{"mimekit__mbox--unmunged.mbox.txt.mbox", 2, true},
	}
	for _, c := range files {
		var warns []formats.MboxWarning
		s, err := OpenMbox(filepath.Join(dir, c.name), MboxOptions{ReadOnly: true,
			Warn: func(file string, w formats.MboxWarning) { warns = append(warns, w) }})
		if err != nil {
			t.Fatal(err)
		}
		folders, err := s.Folders(ctx)
		if err != nil || len(folders) != 1 {
			t.Fatalf("%s: folders %v %v", c.name, folders, err)
		}
		_, list, err := s.List(ctx, folders[0])
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(list) != c.count {
			t.Errorf("%s: %d messages, PROVENANCE.md says %d", c.name, len(list), c.count)
		}
		named := false
		for _, w := range warns {
			named = named || (w.Index >= 0 && w.Index < len(list))
		}
		if c.ambiguous && !named {
			t.Errorf("%s: ambiguous, but no warning names a message", c.name)
		}
		if !c.ambiguous && len(warns) > 0 {
			t.Errorf("%s: unexpected warnings %v", c.name, warns)
		}
		t.Logf("%s: %d messages, %d warnings %q", c.name, len(list), len(warns), s.Warnings())
		// Every listed message can be fetched at its size.
		err = s.Fetch(ctx, folders[0], list, func(m formats.Message, body io.Reader) error {
			n, err := io.Copy(io.Discard, body)
			if n != m.Size {
				t.Errorf("%s message %s: %d bytes, listed %d", c.name, m.ID, n, m.Size)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

// Every corpus .eml goes through the store byte for byte.
func TestMboxCorpusRoundTrip(t *testing.T) {
	emls, _ := filepath.Glob(filepath.Join(corpus.Require(t, "dev"), "*.eml"))
	if len(emls) == 0 {
		t.Skip("skipping: the shared corpus's dev directory holds no .eml")
	}
	ctx := context.Background()
	root := t.TempDir()
	s, err := OpenMbox(root, MboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Ensure(ctx, []string{"Corpus"})
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string][]byte{}
	names := map[string]string{}
	for i, p := range emls {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		id, err := s.Store(ctx, f, formats.Message{Date: time.Unix(int64(1e9+i), 0)}, int64(len(b)), bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		sums[id] = sha(b)
		names[id] = filepath.Base(p)
		if i%100 == 99 {
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, _ = OpenMbox(root, MboxOptions{})
	defer s.Close()
	_, list, err := s.List(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(emls) {
		t.Fatalf("%d messages back, stored %d", len(list), len(emls))
	}
	for i, m := range list {
		if want := time.Unix(int64(1e9+i), 0); !m.Date.Equal(want) {
			t.Errorf("%s: date %v want %v", names[m.ID], m.Date, want)
		}
	}
	err = s.Fetch(ctx, f, list, func(m formats.Message, body io.Reader) error {
		h := sha256.New()
		n, err := io.Copy(h, body)
		if err != nil {
			return err
		}
		if n != m.Size || !bytes.Equal(h.Sum(nil), sums[m.ID]) {
			t.Errorf("%s: differs after the round trip (%d bytes)", names[m.ID], n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := s.Warnings(); len(w) > 0 {
		t.Errorf("warnings on reading back our own file: %q", w)
	}
	t.Logf("%d corpus messages round-tripped", len(list))
}

// A run killed while it wrote a sidecar leaves its temporary file (verify
// calls it stray): the next store to list the folders removes it, unless
// a live writer holds the folder's lock, and a read-only store never does.
func TestMboxLeftoverSidecarTempRemoved(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	inbox := []string{"INBOX"}
	a, err := OpenMbox(root, MboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store(t, a, inbox, "Subject: one\n\nbody\n")
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "mail", "inbox")
	tmp := sidecarTemp(mboxSidecarPath(path))
	plant := func() {
		if err := os.WriteFile(tmp, []byte("mailferry-mbox v1 len"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	plant()
	// a holds the file's lock (it is open for appending): left alone.
	b, err := OpenMbox(root, MboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Folders(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Errorf("the temporary file of a locked folder was removed: %v", err)
	}
	a.Close()
	ro, err := OpenMbox(root, MboxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Folders(ctx); err != nil {
		t.Fatal(err)
	}
	ro.Close()
	if _, err := os.Stat(tmp); err != nil {
		t.Errorf("a read-only store removed the temporary file: %v", err)
	}
	if _, err := b.Folders(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the leftover temporary file is still there (%v)", err)
	}
	if got := listBodies(t, b, inbox); !slices.Equal(got, []string{"Subject: one\n\nbody\n"}) {
		t.Errorf("after the clean-up: %q", got)
	}
}
