package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats/corpus"

	"github.com/mailferry/mailferry/formats"
)

// mdMessage is one test message with what the store is given for it.
type mdMessage struct {
	folder []string
	body   []byte
	flags  []string
	date   time.Time
	size   int64 // what Store is told: len(body) or -1
}

// mdVariedMessages returns n messages over a few folders covering the
// awkward cases: CRLF, bare LF, no final newline, a NUL byte, an empty
// message, no header block, a 5 MB body, unknown size, keywords.
func mdVariedMessages(n int) []mdMessage {
	folders := [][]string{{"INBOX"}, {"Archive", "2023"}, {"Zürich"}, {"a.b", "c/d"}}
	flagSets := [][]string{nil, {formats.FlagSeen}, {formats.FlagSeen, formats.FlagAnswered},
		{formats.FlagFlagged, "$Forwarded", formats.FlagDraft}, {formats.FlagDeleted, "$Junk", "Custom"}}
	zones := []*time.Location{time.UTC, time.FixedZone("", 2*3600), time.FixedZone("", -7*3600-1800)}
	var out []mdMessage
	for i := 0; i < n; i++ {
		var body []byte
		switch i % 8 {
		case 0:
			body = []byte(fmt.Sprintf("From: a@example.org\r\nSubject: crlf %d\r\nMessage-ID: <%d@x>\r\n\r\nbody\r\n", i, i))
		case 1:
			body = []byte(fmt.Sprintf("From: a@example.org\nSubject: lf %d\nMessage-ID: <%d@x>\n\nbody\n", i, i))
		case 2:
			body = []byte(fmt.Sprintf("Subject: no final newline %d\n\nlast line", i))
		case 3:
			body = []byte(fmt.Sprintf("Subject: nul %d\n\nbefore\x00after\n", i))
		case 4:
			body = nil // empty message
		case 5:
			body = []byte(fmt.Sprintf("no header block at all %d", i))
		case 6:
			body = []byte(fmt.Sprintf("Subject: from line %d\n\nFrom me\n>From you\n", i))
		case 7:
			body = []byte(fmt.Sprintf("Subject: binary %d\n\n", i))
			body = append(body, []byte{0xff, 0xfe, '\r', '\r', '\n', 0x80}...)
		}
		if i == 13 {
			big := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 5<<20/64)
			body = append([]byte("Subject: five megabytes\r\n\r\n"), big...)
		}
		size := int64(len(body))
		if i%5 == 4 {
			size = -1
		}
		out = append(out, mdMessage{
			folder: folders[i%len(folders)],
			body:   body,
			flags:  flagSets[i%len(flagSets)],
			date:   time.Date(2001+i%20, time.Month(1+i%12), 1+i%28, i%24, i%60, i%60, 0, zones[i%len(zones)]),
			size:   size,
		})
	}
	return out
}

// mdStoreAll stores msgs through st (Ensuring folders), flushing every
// batch messages, and returns the ID each got.
func mdStoreAll(t testing.TB, st Store, msgs []mdMessage, batch int) []string {
	t.Helper()
	ctx := context.Background()
	folders := map[string]formats.Folder{}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		k := strings.Join(m.folder, "\x00")
		f, ok := folders[k]
		if !ok {
			var err error
			if f, err = st.Ensure(ctx, m.folder); err != nil {
				t.Fatalf("Ensure(%q): %v", m.folder, err)
			}
			folders[k] = f
		}
		id, err := st.Store(ctx, f, formats.Message{ID: fmt.Sprint(i + 1), Flags: m.flags, Date: m.date,
			SourceFolder: formats.DisplayName(m.folder)}, m.size, bytes.NewReader(m.body))
		if err != nil {
			t.Fatalf("Store message %d: %v", i, err)
		}
		ids[i] = id
		if (i+1)%batch == 0 {
			if err := st.Flush(ctx); err != nil {
				t.Fatalf("Flush: %v", err)
			}
		}
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return ids
}

// mdMaildirFlags is what a Maildir file name keeps of flags: the system
// flags' letters, in their order, then every keyword (Dovecot's letters)
// in the order first stored in the folder.
func mdMaildirFlags(flags []string) []string {
	_, f, _ := formats.ParseMaildirName(formats.FormatMaildirName("x", flags))
	for _, k := range flags {
		if k != "" && k[0] != '\\' && !slices.ContainsFunc(f, func(g string) bool { return strings.EqualFold(g, k) }) {
			f = append(f, k)
		}
	}
	return f
}

func TestMaildirRoundTrip(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "mail")
	st, err := OpenMaildir(root, MaildirOptions{Create: true, Host: "test.host"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := mdVariedMessages(50)
	ids := mdStoreAll(t, st, msgs, 7)
	st.Close()

	// A fresh store sees everything, as a source.
	src, err := OpenMaildir(root, MaildirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	folders, err := src.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range folders {
		paths = append(paths, fmt.Sprintf("%q noselect=%v", f.Path, f.NoSelect))
	}
	want := []string{
		`["INBOX"] noselect=false`,
		`["Archive"] noselect=true`,
		`["Archive" "2023"] noselect=false`,
		`["Zürich"] noselect=false`,
		`["a.b"] noselect=true`,
		`["a.b" "c/d"] noselect=false`,
	}
	if !slices.Equal(paths, want) {
		t.Fatalf("Folders:\n got %q\nwant %q", paths, want)
	}
	byID := map[string]mdMessage{}
	for i, id := range ids {
		byID[id] = msgs[i]
	}
	seen := 0
	for _, f := range folders {
		if f.NoSelect {
			continue
		}
		v, list, err := src.List(ctx, f)
		if err != nil || v != 1 {
			t.Fatalf("List(%q) = %d, %v", f.Path, v, err)
		}
		if int(f.Messages) != len(list) {
			t.Errorf("Folders says %d messages in %q, List %d", f.Messages, f.Path, len(list))
		}
		if !slices.IsSortedFunc(list, func(a, b formats.Message) int { return strings.Compare(a.ID, b.ID) }) {
			t.Errorf("List(%q) not sorted by ID", f.Path)
		}
		for _, m := range list {
			want, ok := byID[m.ID]
			if !ok {
				t.Fatalf("List(%q) has unknown ID %q", f.Path, m.ID)
			}
			if !slices.Equal(want.folder, f.Path) {
				t.Errorf("%s listed in %q, stored in %q", m.ID, f.Path, want.folder)
			}
			if m.Size != int64(len(want.body)) {
				t.Errorf("%s: size %d, want %d", m.ID, m.Size, len(want.body))
			}
			if !slices.Equal(ioSortedFlags(m.Flags), ioSortedFlags(mdMaildirFlags(want.flags))) {
				t.Errorf("%s: flags %q, want %q", m.ID, m.Flags, mdMaildirFlags(want.flags))
			}
			if !m.Date.Equal(want.date) {
				t.Errorf("%s: date %v, want %v", m.ID, m.Date, want.date)
			}
		}
		seen += len(list)
		// Bytes, header blocks and identity keys come back exactly.
		n := 0
		err = src.Fetch(ctx, f, list, func(m formats.Message, body io.Reader) error {
			got, err := io.ReadAll(body)
			if err != nil {
				return err
			}
			if sha256.Sum256(got) != sha256.Sum256(byID[m.ID].body) {
				t.Errorf("%s: fetched bytes differ (%d bytes, want %d)", m.ID, len(got), len(byID[m.ID].body))
			}
			n++
			return nil
		})
		if err != nil || n != len(list) {
			t.Fatalf("Fetch(%q): %d of %d, %v", f.Path, n, len(list), err)
		}
		err = src.Headers(ctx, f, list, func(m formats.Message, h []byte) error {
			if want := formats.HeaderBlock(byID[m.ID].body); !bytes.Equal(h, want) {
				t.Errorf("%s: header %q, want %q", m.ID, h, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		keys := 0
		err = src.Index(ctx, f, func(id string) bool { return id == list[0].ID }, func(id string, k formats.Key) error {
			if id == list[0].ID {
				t.Errorf("Index passed known ID %s", id)
			}
			if k != formats.IdentityKey(byID[id].body) {
				t.Errorf("%s: key differs", id)
			}
			keys++
			return nil
		})
		if err != nil || keys != len(list)-1 {
			t.Fatalf("Index(%q): %d keys, want %d, %v", f.Path, keys, len(list)-1, err)
		}
	}
	if seen != len(msgs) {
		t.Fatalf("listed %d messages, stored %d", seen, len(msgs))
	}

	// Permissions: 0700 directories, 0600 files.
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		if want := fs.FileMode(0o600); d.IsDir() {
			want = 0o700
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
			}
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		return nil
	})
}

func TestMaildirStoreSizeMismatch(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := OpenMaildir(root, MaildirOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inbox, _ := st.Ensure(ctx, []string{"INBOX"})
	if _, err := st.Store(ctx, inbox, formats.Message{}, 10, strings.NewReader("short")); err == nil {
		t.Fatal("Store with a short body succeeded")
	}
	// Exactly size bytes are taken even if the reader has more.
	id, err := st.Store(ctx, inbox, formats.Message{}, 3, strings.NewReader("abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(root, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ holds %d files after a failed Store and a Flush", len(tmp))
	}
	rc, file, err := st.Open(inbox, id)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "abc" || !strings.HasPrefix(file, "cur/"+id+":2,") {
		t.Errorf("stored %q in %q", got, file)
	}
	// A folder never Ensured is an error, not a silent mkdir.
	if _, err := st.Store(ctx, formats.Folder{Path: []string{"Nope"}}, formats.Message{}, 1, strings.NewReader("x")); err == nil {
		t.Error("Store into a missing folder succeeded")
	}
	if _, err := OpenMaildir(filepath.Join(root, "absent"), MaildirOptions{}); err == nil {
		t.Error("OpenMaildir of a missing root without Create succeeded")
	}
}

// A crash after Store and before Flush leaves nothing visible: the file
// stays in tmp/, which no reader looks at.
func TestMaildirCrashBeforeFlush(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := OpenMaildir(root, MaildirOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.Ensure(ctx, []string{"Work"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Store(ctx, f, formats.Message{}, -1, strings.NewReader("Subject: lost\n\nnever flushed\n")); err != nil {
		t.Fatal(err)
	}
	// No Flush, no Close: the process "dies" here. Add some other garbage
	// to tmp/ as a crashed delivery by another program would.
	if err := os.WriteFile(filepath.Join(root, ".Work", "tmp", "123.garbage"), []byte("half a mess"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(root, ".Work", "tmp", "1.ancient")
	os.WriteFile(old, []byte("x"), 0o600)
	os.Chtimes(old, time.Now().Add(-48*time.Hour), time.Now().Add(-48*time.Hour))

	st2, err := OpenMaildir(root, MaildirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	_, list, err := st2.List(ctx, formats.Folder{Path: []string{"Work"}})
	if err != nil || len(list) != 0 {
		t.Fatalf("after a crash List = %v, %v; want nothing", list, err)
	}
	folders, _ := st2.Folders(ctx)
	for _, f := range folders {
		if f.Messages != 0 {
			t.Errorf("folder %q counts %d messages", f.Path, f.Messages)
		}
	}
	if tmp, _ := os.ReadDir(filepath.Join(root, ".Work", "tmp")); len(tmp) != 3 {
		t.Fatalf("tmp/ holds %d files, want 3", len(tmp))
	}
	// Ensure removes only what is older than 36 hours.
	if _, err := st2.Ensure(ctx, []string{"Work"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err == nil {
		t.Error("a 48-hour-old tmp file survived Ensure")
	}
	if tmp, _ := os.ReadDir(filepath.Join(root, ".Work", "tmp")); len(tmp) != 2 {
		t.Errorf("tmp/ holds %d files after Ensure, want 2", len(tmp))
	}
	// Close of a store with unflushed messages removes their tmp files.
	if _, err := st2.Store(ctx, f, formats.Message{}, 1, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	st2.Close()
	if tmp, _ := os.ReadDir(filepath.Join(root, ".Work", "tmp")); len(tmp) != 2 {
		t.Errorf("tmp/ holds %d files after Close, want 2", len(tmp))
	}
}

// Hostile folder names never make anything outside the root, and come
// back from Folders exactly as given.
func TestMaildirHostileFolderNames(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	st, err := OpenMaildir(root, MaildirOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hostile := [][]string{
		{".."}, {"../x"}, {"..", "..", "x"}, {"a/b"}, {"\x00"}, {"-rf"}, {".hidden"}, {"%"}, {"%2E"},
		{""}, {"."}, {"../../../../../../tmp/evil"}, {"/etc/passwd"}, {"Zürich", "日本"},
		{"cur"}, {"tmp"}, {"new"}, {"INBOX", ".."}, {"inbox", "x"}, {"line\nbreak"}, {"a:b"},
	}
	want := map[string]bool{`["INBOX"]`: true}
	for _, p := range hostile {
		f, err := st.Ensure(ctx, p)
		if err != nil {
			t.Fatalf("Ensure(%q): %v", p, err)
		}
		if _, err := st.Store(ctx, f, formats.Message{}, 4, strings.NewReader("test")); err != nil {
			t.Fatalf("Store into %q: %v", p, err)
		}
		q := slices.Clone(p)
		if strings.EqualFold(q[0], "INBOX") {
			q[0] = "INBOX"
		}
		want[fmt.Sprintf("%q", q)] = true
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 || ents[0].Name() != "root" {
		t.Fatalf("something was made next to the root: %v", ents)
	}
	if _, err := os.Stat("/tmp/evil"); err == nil {
		t.Log("note: /tmp/evil exists (not necessarily ours)")
	}
	// Every directory directly in root is cur/new/tmp or a Maildir++
	// folder; nothing nests deeper than folder/sub/file.
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		if depth := len(strings.Split(rel, string(filepath.Separator))); depth > 3 {
			t.Errorf("%q is nested %d deep", rel, depth)
		}
		return nil
	})
	folders, err := st.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range folders {
		if !f.NoSelect {
			got[fmt.Sprintf("%q", f.Path)] = true
			if f.Messages != 1 && !formats.IsInbox(f.Path) {
				t.Errorf("%q holds %d messages, want 1", f.Path, f.Messages)
			}
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("folder %s not listed back", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("unexpected folder %s", k)
		}
	}
	// A Name that would leave the root is refused.
	for _, name := range []string{".", "../x", "a/b", "x\x00"} {
		if _, _, err := st.List(ctx, formats.Folder{Name: name}); err == nil {
			t.Errorf("List of Name %q succeeded", name)
		}
	}
}

// Every corpus message survives the Maildir store byte for byte.
func TestMaildirCorpusRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpus.Require(t, "dev"), "*.eml"))
	if len(files) == 0 {
		t.Skip("skipping: the shared corpus's dev directory holds no .eml")
	}
	ctx := context.Background()
	st, err := OpenMaildir(t.TempDir(), MaildirOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inbox, _ := st.Ensure(ctx, []string{"INBOX"})
	sums := map[string][32]byte{}
	keys := map[string]formats.Key{}
	for i, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		id, err := st.Store(ctx, inbox, formats.Message{}, int64(len(data)), bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sums[id], keys[id] = sha256.Sum256(data), formats.IdentityKey(data)
		if i%200 == 199 {
			if err := st.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, list, err := st.List(ctx, inbox)
	if err != nil || len(list) != len(files) {
		t.Fatalf("List: %d messages, want %d, %v", len(list), len(files), err)
	}
	err = st.Fetch(ctx, inbox, list, func(m formats.Message, body io.Reader) error {
		h := sha256.New()
		io.Copy(h, body)
		if [32]byte(h.Sum(nil)) != sums[m.ID] {
			t.Errorf("%s: bytes differ", m.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Index(ctx, inbox, func(string) bool { return false }, func(id string, k formats.Key) error {
		if k != keys[id] {
			t.Errorf("%s: identity key from the header block differs from the whole message's", id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d corpus messages round-tripped", len(files))
}

// BenchmarkMaildirStore1K stores 1 KB messages, flushing after every
// message (what a per-message fsync costs) or every 500:
// go test -run X -bench MaildirStore -benchtime 10000x ./archive/
func BenchmarkMaildirStore1K(b *testing.B) {
	for _, batch := range []int{1, 500} {
		b.Run(fmt.Sprintf("flush=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			st, err := OpenMaildir(b.TempDir(), MaildirOptions{Create: true})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			inbox, _ := st.Ensure(ctx, []string{"INBOX"})
			body := make([]byte, 1024)
			for i := range body {
				body[i] = byte('a' + rand.IntN(26))
			}
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := st.Store(ctx, inbox, formats.Message{Date: time.Now()}, int64(len(body)), bytes.NewReader(body)); err != nil {
					b.Fatal(err)
				}
				if (i+1)%batch == 0 {
					if err := st.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := st.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// ioSortedFlags is a sorted copy of flags, for comparing flag sets.
func ioSortedFlags(flags []string) []string {
	out := slices.Clone(flags)
	slices.Sort(out)
	return out
}

// TestMaildirListingKeepsNoNames: listing the folders counts their
// messages and bytes as a scan does (a unique name in both cur/ and new/
// once, tmp/ and stray files not at all) without keeping a name of each.
func TestMaildirListingKeepsNoNames(t *testing.T) {
	root := t.TempDir()
	st, err := OpenMaildir(root, MaildirOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	inbox, err := st.Ensure(ctx, []string{"INBOX"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		body := fmt.Sprintf("Message-ID: <%d@names>\r\n\r\n%s", i, strings.Repeat("x", i))
		if _, err := st.Store(ctx, inbox, formats.Message{}, int64(len(body)), strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	ents, err := os.ReadDir(filepath.Join(root, "cur"))
	if err != nil || len(ents) != 500 {
		t.Fatalf("%d files in cur/: %v", len(ents), err)
	}
	// One message also in new/ (a crash between link and unlink), one only
	// in new/ (without ",S="), and files that are not messages.
	dup := strings.SplitN(ents[0].Name(), ":", 2)[0]
	os.WriteFile(filepath.Join(root, "new", dup), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(root, "new", "1700000000.M1P1.host"), []byte("12345"), 0o600)
	os.WriteFile(filepath.Join(root, "tmp", "1700000000.M2P1.host"), []byte("tmp"), 0o600)
	os.WriteFile(filepath.Join(root, "cur", ".hidden"), []byte("no"), 0o600)
	os.Mkdir(filepath.Join(root, "cur", "1700000000.M3P1.host,S=9"), 0o700)                                 // a directory
	os.Symlink(filepath.Join(root, "new", dup), filepath.Join(root, "cur", "1700000000.M4P1.host,S=1:2,S")) // a link
	want, err := OpenMaildir(root, MaildirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	scanned, err := want.heldFiles("")
	if err != nil {
		t.Fatal(err)
	}
	var wantBytes int64
	for _, sf := range scanned {
		wantBytes += sf.size
	}
	md, err := OpenMaildir(root, MaildirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	fs, err := md.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.Name == "INBOX" && (f.Messages != uint32(len(scanned)) || f.Bytes != wantBytes || len(scanned) != 501) {
			t.Errorf("INBOX listed with %d messages, %d bytes; a scan finds %d, %d bytes (want 501)", f.Messages, f.Bytes, len(scanned), wantBytes)
		}
	}
	held := 0
	for _, names := range md.files {
		held += len(names)
	}
	if held != 0 {
		t.Errorf("listing the folders kept %d file names", held)
	}
}

// Opening a Maildir lists no folder: each worker's connection opens one,
// and counting a 300,000-message INBOX for nothing in each of them was
// half the CPU of a million-message rerun that copied nothing. Ensure
// still counts.
func TestOpenMaildirListsNoFolder(t *testing.T) {
	ctx := context.Background()
	root, st, inbox := mdInbox(t)
	if _, err := st.Store(ctx, inbox, formats.Message{}, -1, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()

	var listed []string
	saved := listNames
	t.Cleanup(func() { listNames = saved })
	listNames = func(dir string, fn func(string) error) error {
		listed = append(listed, dir)
		return saved(dir, fn)
	}
	st, err := OpenMaildir(root, MaildirOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if len(listed) != 0 {
		t.Errorf("OpenMaildir listed %q", listed)
	}
	inbox, err = st.Ensure(ctx, []string{"INBOX"})
	if err != nil {
		t.Fatal(err)
	}
	if inbox.Messages != 1 || len(listed) == 0 {
		t.Errorf("Ensure counted %d messages, listing %q; want 1", inbox.Messages, listed)
	}
}

// heldFiles (Ensure's look at a folder) gives each file's size from its
// ",S=" or, where its name has none, from stat; a unique name in cur/ and
// new/ once, with cur/'s size; no link, no file that is not there; and it
// leaves the name cache alone.
func TestHeldFiles(t *testing.T) {
	root := t.TempDir()
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(root, sub), 0o700)
	}
	os.WriteFile(filepath.Join(root, "cur", "1700000000.M1P1.host,S=7:2,S"), []byte("1234567"), 0o600)
	os.WriteFile(filepath.Join(root, "cur", "1700000000.M2P1.other:2,"), []byte("12345"), 0o600)
	os.WriteFile(filepath.Join(root, "new", "1700000000.M2P1.other"), []byte("12"), 0o600)
	os.WriteFile(filepath.Join(root, "new", "1700000000.M3P1.other"), []byte("123"), 0o600)
	os.WriteFile(filepath.Join(root, "tmp", "1700000000.M5P1.other"), []byte("1"), 0o600)
	os.Symlink(filepath.Join(root, "new", "1700000000.M3P1.other"), filepath.Join(root, "cur", "1700000000.M4P1.host,S=3:2,S"))
	md, err := OpenMaildir(root, MaildirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	files, err := md.heldFiles("")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Errorf("heldFiles found %d files, want 3", len(files))
	}
	for id, want := range map[string]int64{"1700000000.M1P1.host,S=7": 7, "1700000000.M2P1.other": 5, "1700000000.M3P1.other": 3} {
		if n, ok := heldSize(files, id); !ok || n != want {
			t.Errorf("heldSize(%s) = %d, %v; want %d", id, n, ok, want)
		}
	}
	for _, id := range []string{"1700000000.M4P1.host,S=3", "1700000000.M5P1.other", "1700000000.M6P1.host"} {
		if _, ok := heldSize(files, id); ok {
			t.Errorf("heldSize reports %s, which is a link, in tmp/ or not there", id)
		}
	}
	if len(md.files) != 0 {
		t.Errorf("heldFiles filled the name cache: %d folders", len(md.files))
	}
}

// Index keeps in the name cache only the files known does not report: a
// rerun that finds new mail in a folder of 300,000 messages held every
// file's name there. Their headers are read all the same.
func TestIndexCachesOnlyTheUnknown(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(root, sub), 0o700)
	}
	unknown := map[string]bool{}
	for i := 0; i < 50; i++ {
		body := fmt.Sprintf("Message-ID: <m%d@example.org>\r\nSubject: %d\r\n\r\nbody\r\n", i, i)
		unique := fmt.Sprintf("1700000000.M%dP1.host,S=%d", i, len(body))
		os.WriteFile(filepath.Join(root, "cur", unique+":2,S"), []byte(body), 0o600)
		if i == 7 || i == 42 {
			unknown[unique] = true
		}
	}
	md, err := OpenMaildir(root, MaildirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	got := map[string]bool{}
	err = md.Index(ctx, formats.Folder{Name: "INBOX", Path: []string{"INBOX"}}, func(id string) bool { return !unknown[id] },
		func(id string, key formats.Key) error {
			got[id] = true
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !maps.Equal(got, unknown) {
		t.Errorf("Index reported %v, want the two unknown messages", got)
	}
	if n := len(md.files[""]); n != 2 {
		t.Errorf("the name cache holds %d files after Index, want the 2 unknown ones", n)
	}
}
