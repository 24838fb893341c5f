package archive

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// A message is never renamed over a file already in cur/ under its name:
// Flush fails for it, and the file there keeps its bytes. (os.Rename
// replaced it: the other message was gone.)
func TestFlushNeverReplacesAFileInCur(t *testing.T) {
	ctx := context.Background()
	root, st, inbox := mdInbox(t)
	flags := []string{formats.FlagSeen}
	id, err := st.Store(ctx, inbox, formats.Message{Flags: flags}, -1, strings.NewReader("Subject: new\r\n\r\nnew\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	there := filepath.Join(root, "cur", formats.FormatMaildirName(id, flags))
	old := []byte("Subject: already there\r\n\r\nkeep me\r\n")
	if err := os.WriteFile(there, old, 0o600); err != nil {
		t.Fatal(err)
	}
	err = st.Flush(ctx)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("Flush onto an existing name: %v, want an error saying it exists", err)
	}
	got, rerr := os.ReadFile(there)
	if rerr != nil || sha256.Sum256(got) != sha256.Sum256(old) {
		t.Errorf("the file already in cur/ was replaced: %q (%v)", got, rerr)
	}
	if tmp, _ := os.ReadDir(filepath.Join(root, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ holds %d files after the failed rename", len(tmp))
	}
}

// mdInbox opens a new Maildir in a temporary directory, closed at the
// test's end, and returns it with its root and INBOX.
func mdInbox(t *testing.T) (string, *Maildir, formats.Folder) {
	t.Helper()
	root := t.TempDir()
	st, err := OpenMaildir(root, MaildirOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inbox, err := st.Ensure(context.Background(), []string{"INBOX"})
	if err != nil {
		t.Fatal(err)
	}
	return root, st, inbox
}

// renameNoReplace moves a file to a free name, refuses a taken one and
// leaves both files as they were.
func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	for p, body := range map[string]string{a: "A", b: "B"} {
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := renameNoReplace(a, b); !errors.Is(err, fs.ErrExist) {
		t.Errorf("rename onto an existing file: %v, want fs.ErrExist", err)
	}
	for p, want := range map[string]string{a: "A", b: "B"} {
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s holds %q (%v) after the refused rename, want %q", filepath.Base(p), got, err, want)
		}
	}
	if err := renameNoReplace(a, c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a still there after its rename: %v", err)
	}
	if got, err := os.ReadFile(c); err != nil || string(got) != "A" {
		t.Errorf("c holds %q (%v), want A", got, err)
	}
}

// The internal date is the file's mtime, set through the descriptor while
// the file is in tmp/.
func TestStoreSetsTheDateAsMtime(t *testing.T) {
	ctx := context.Background()
	root, st, inbox := mdInbox(t)
	date := time.Date(1999, 12, 31, 23, 59, 58, 0, time.FixedZone("", -5*3600))
	id, err := st.Store(ctx, inbox, formats.Message{Date: date}, -1, strings.NewReader("Subject: old\r\n\r\nold\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	file, _, err := st.Locate(inbox, id)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(date) {
		t.Errorf("mtime %v, want %v", fi.ModTime(), date)
	}
}

// createTmp makes a new file (0600, never over one that exists), writes
// all it is given, sets its times through the descriptor and closes once;
// its errors say what the callers test for (fs.ErrExist, fs.ErrNotExist).
func TestTmpFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m")
	f, err := createTmp(path)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("line of a message\r\n", 5000))
	if n, err := f.Write(body); err != nil || n != len(body) {
		t.Fatalf("Write: %d, %v; want %d", n, err, len(body))
	}
	when := time.Date(2003, 4, 5, 6, 7, 8, 0, time.UTC)
	if err := f.setTimes(when); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err == nil {
		t.Error("a second Close returned nil")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(when) || fi.Mode().Perm() != 0o600 || fi.Size() != int64(len(body)) {
		t.Errorf("file: mtime %v, mode %v, size %d; want %v, 0600, %d", fi.ModTime(), fi.Mode().Perm(), fi.Size(), when, len(body))
	}
	got, _ := os.ReadFile(path)
	if sha256.Sum256(got) != sha256.Sum256(body) {
		t.Error("the file's bytes differ from those written")
	}
	if _, err := createTmp(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("createTmp over an existing file: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); len(b) != len(body) {
		t.Errorf("the existing file was touched: %d bytes", len(b))
	}
	if _, err := createTmp(filepath.Join(dir, "gone", "m")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("createTmp in a missing directory: %v, want fs.ErrNotExist", err)
	}
}

// openRead reads a file's bytes whole, then io.EOF; a missing file is
// fs.ErrNotExist (verify's "listed but not there").
func TestOpenRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m")
	body := []byte(strings.Repeat("0123456789abcdef", 10000))
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := openRead(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 7000) // several reads, the last one short
	for {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if sha256.Sum256(got) != sha256.Sum256(body) {
		t.Errorf("read %d bytes that differ from the file's %d", len(got), len(body))
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := openRead(path + ".gone"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("openRead of a missing file: %v, want fs.ErrNotExist", err)
	}
}
