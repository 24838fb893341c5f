package migrate

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailferry/mailferry/formats"
)

// TestStates runs the same ledger story against both State kinds.
func TestStates(t *testing.T) {
	for _, kind := range []string{"bolt", "mem"} {
		t.Run(kind, func(t *testing.T) {
			var st State = NewMemState()
			if kind == "bolt" {
				var err error
				if st, err = OpenState(filepath.Join(t.TempDir(), "s.db")); err != nil {
					t.Fatal(err)
				}
			}
			defer st.Close()
			k1, k2 := formats.Key{1}, formats.Key{2}
			if err := st.Add([]Record{{Side: SideSource, Folder: "A", ID: "1", Key: k1, Copied: true}, {Side: SideSource, Folder: "A", ID: "2", Key: k2}, {Side: SideDest, Folder: "A", ID: "9", Key: k1}}); err != nil {
				t.Fatal(err)
			}
			if err := st.SetMark(SideDest, "A", 7, 10, 1); err != nil {
				t.Fatal(err)
			}
			fs, err := st.Folder(SideSource, "A")
			if err != nil {
				t.Fatal(err)
			}
			if fs := asMaps(fs); fs.IDs["1"] != k1 || fs.IDs["2"] != k2 || !fs.Copied["1"] || fs.Copied["2"] {
				t.Errorf("source record: %+v", fs)
			}
			if v, next, n, _ := st.Mark(SideDest, "A"); v != 7 || next != 10 || n != 1 {
				t.Errorf("mark: %d %d %d", v, next, n)
			}
			if err := st.Reset(SideDest, "A", 8); err != nil {
				t.Fatal(err)
			}
			if fs, _ := st.Folder(SideDest, "A"); fs.Len() != 0 || fs.Validity != 8 || fs.UIDNext != 0 {
				t.Errorf("after reset: %+v", fs)
			}
			// Records were added and the run did not finish: the next
			// run hears when; after Finish it hears nothing.
			if last, _ := st.Begin(); last.IsZero() {
				t.Errorf("an unfinished run that stored records is not seen")
			}
			st.Finish()
			if last, _ := st.Begin(); !last.IsZero() {
				t.Errorf("a finished run is seen as under way at %v", last)
			}
		})
	}
}

// TestStateOfAnotherVersionStartsAfresh: a file written with another
// layout or identity-key form is emptied on open (re-indexed, never
// trusted).
func TestStateOfAnotherVersionStartsAfresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	st.Add([]Record{{Side: SideSource, Folder: "A", ID: "1", Key: formats.Key{1}, Copied: true}})
	st.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Put([]byte("version"), []byte{1}) })
	db.Close()
	st, err = OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if fs, _ := st.Folder(SideSource, "A"); fs.Len() != 0 {
		t.Fatalf("a state of another version was kept: %d IDs", fs.Len())
	}
}

// TestStateOfOlderPagesIsMadeAgain: a state file of an older layout made in
// 4 KB pages (before statePageSize) is made again in 1 KB pages, not only
// emptied in its own: its ledger is gone, and when its last run stopped
// under way is still known to Begin.
func TestStateOfOlderPagesIsMadeAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	stopped := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	err = db.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(metaBucket)
		meta.Put([]byte("version"), []byte{3, byte(formats.KeyVersion)})
		v, _ := stopped.MarshalBinary()
		meta.Put([]byte("running"), v)
		for _, s := range []Side{SideSource, SideDest} {
			b, _ := tx.CreateBucket([]byte(s))
			f, _ := b.CreateBucket([]byte("A"))
			f.Put([]byte("validity"), []byte{0, 0, 0, 7})
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	if ps := st.(*boltState).db.Info().PageSize; ps != statePageSize {
		t.Errorf("the state file has pages of %d bytes, want %d", ps, statePageSize)
	}
	if fs, _ := st.Folder(SideSource, "A"); fs.Validity != 0 || fs.Len() != 0 {
		t.Errorf("the older ledger was kept: validity %d, %d IDs", fs.Validity, fs.Len())
	}
	if last, _ := st.Begin(); !last.Equal(stopped) {
		t.Errorf("the run under way is known as stopped at %v, want %v", last, stopped)
	}
	st.Add([]Record{{Side: SideSource, Folder: "A", ID: "1", Key: formats.Key{1}}})
	st.Close()
	if st, err = OpenState(path); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if fs, _ := st.Folder(SideSource, "A"); fs.Len() != 1 {
		t.Errorf("after a reopen: %d IDs, want 1", fs.Len())
	}
}
