package archive

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// loadFolder finds exactly the entries a decode of every line finds, for
// folders whose names look like the index's own syntax, INBOX in two
// spellings, a name that is not UTF-8 (an mbox file named in Latin-1)
// and lines with no destination folder; from an index built over an existing manifest (a rerun) and from
// one kept up to date by append, without rebuilding it.
func TestLoadFolderReadsOnlyItsLines(t *testing.T) {
	dir := t.TempDir()
	folders := [][]string{
		{"INBOX"}, {"inbox"},
		{`x"dest_folder":["INBOX"]`},
		{"Arch]ive", `2\0"`},
		{"Latin-1 \xe9t\xe9\xff\xfe"}, // not UTF-8: the manifest has U+FFFD for each byte
		nil,                           // a line with no destination folder: every load reads it
		{"Work"},
	}
	open := func() *manifestLog {
		f, err := os.OpenFile(filepath.Join(dir, ManifestFile), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		l := &manifestLog{dir: dir, f: f, refs: 1}
		if err := l.openTail(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return l
	}
	n := 0
	appendSome := func(l *manifestLog, rounds int) {
		for r := range rounds {
			var batch []ManifestEntry
			for i, path := range folders {
				// Batches of one folder and batches mixing several.
				if (r+i)%3 == 0 {
					continue
				}
				for range 1 + (r+i)%4 {
					n++
					batch = append(batch, ManifestEntry{File: fmt.Sprintf("cur/%d", n), Size: int64(n),
						SHA256: fmt.Sprintf("%064x", n), DestFolder: path, DestID: fmt.Sprint(n)})
				}
				if r%2 == 0 {
					if err := l.append(batch); err != nil {
						t.Fatal(err)
					}
					batch = nil
				}
			}
			if len(batch) > 0 {
				if err := l.append(batch); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// check loads each folder and compares its seqs with a full decode.
	check := func(l *manifestLog, when string) {
		t.Helper()
		l.mu.Lock()
		defer l.mu.Unlock()
		want := map[string][]uint64{}
		if err := l.scan(func(_ []byte, e *ManifestEntry) error {
			if e.DestFolder != nil {
				want[folderKey(e.DestFolder)] = append(want[folderKey(e.DestFolder)], e.Seq)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, path := range folders {
			if path == nil {
				continue
			}
			k, _, err := l.loadFolder(path)
			if err != nil {
				t.Fatalf("%s: loadFolder(%q): %v", when, path, err)
			}
			var got []uint64
			for _, le := range l.ledger.byFolder[k] {
				got = append(got, le.seq)
			}
			if !slices.Equal(got, want[k]) || len(got) == 0 {
				t.Errorf("%s: folder %q: loaded seqs %v, want %v", when, path, got, want[k])
			}
			l.unloadFolder(k)
		}
	}

	l := open()
	appendSome(l, 6)
	l.mu.Lock()
	if l.places != nil {
		t.Error("the index was built before any folder was loaded")
	}
	l.mu.Unlock()
	f := l.f
	l.f = nil
	f.Close()

	l = open() // a rerun: the index is built over what is there
	check(l, "rerun")
	built := l.places
	if built == nil {
		t.Fatal("no index after loading folders")
	}
	work := built.spans[folderKey([]string{"Work"})]
	var read int64
	for _, s := range built.placesFor(folderKey([]string{"Work"})) {
		read += s.end - s.start
	}
	if len(work) == 0 || read >= l.size/2 {
		t.Errorf("Work's load reads %d of the manifest's %d bytes in %d spans", read, l.size, len(work))
	}
	appendSome(l, 5)
	check(l, "after appends")
	if l.places != built {
		t.Error("the index was rebuilt after appends instead of kept up to date")
	}
}
