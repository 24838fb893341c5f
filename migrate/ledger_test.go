package migrate

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/mailferry/mailferry/formats"
)

// The ledger keeps, per source message, the flags last applied and where
// mailferry stored it, in both States, small on disk, and reads entries of
// the first layout (key + Copied byte) as having neither.
func TestLedgerBaseAndDest(t *testing.T) {
	for _, kind := range []string{"mem", "bolt"} {
		t.Run(kind, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.db")
			var st State = NewMemState()
			if kind == "bolt" {
				var err error
				if st, err = OpenState(path); err != nil {
					t.Fatal(err)
				}
			}
			recs := []Record{
				{Side: SideSource, Folder: "A", ID: "1", Key: formats.Key{1}, Copied: true, Dst: DstID{7, 300000},
					Base: []string{`\Seen`, "$Label1", `\Deleted`, `\Flagged`, "NonJunk"}, HasBase: true},
				{Side: SideSource, Folder: "A", ID: "2", Key: formats.Key{2}, Base: []string{"$label1"}, HasBase: true},
				{Side: SideSource, Folder: "A", ID: "3", Key: formats.Key{3}, Copied: true},
			}
			if err := st.Add(recs); err != nil {
				t.Fatal(err)
			}
			if err := st.SetModSeq(SideSource, "A", 1<<40); err != nil {
				t.Fatal(err)
			}
			fs, err := st.Folder(SideSource, "A")
			if err != nil {
				t.Fatal(err)
			}
			if !fs.Copied["1"] || fs.Copied["2"] || !fs.Copied["3"] || fs.Dst["1"] != (DstID{7, 300000}) || len(fs.Dst) != 1 {
				t.Errorf("copied %v dst %v", fs.Copied, fs.Dst)
			}
			if b := fs.Base["1"]; !slices.Equal(b, []string{"$Label1", `\Flagged`, `\Seen`, "NonJunk"}) {
				t.Errorf("base of 1: %q", b)
			}
			if b := fs.Base["2"]; len(b) != 1 || !strings.EqualFold(b[0], "$Label1") { // one keyword table entry
				t.Errorf("base of 2: %q", b)
			}
			if _, ok := fs.Base["3"]; ok {
				t.Errorf("message 3 has a base")
			}
			if ms, _ := st.ModSeq(SideSource, "A"); ms != 1<<40 {
				t.Errorf("modseq %d", ms)
			}
			if err := st.Forget([]Record{{Side: SideSource, Folder: "A", ID: "1"}}); err != nil {
				t.Fatal(err)
			}
			if fs, _ := st.Folder(SideSource, "A"); len(fs.IDs) != 2 || fs.Copied["1"] || len(fs.Dst) != 0 {
				t.Errorf("after Forget: %v", fs.IDs)
			}
			if kind != "bolt" {
				return
			}
			st.Close()
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(SideSource)).Bucket([]byte("A"))
				v := b.Bucket([]byte("ids")).Get([]byte("2"))
				if len(v) > 36 {
					t.Errorf("an entry with one keyword takes %d bytes", len(v))
				}
				old := append(make([]byte, 32), 1) // the first layout: key, Copied
				old[0] = 4
				return b.Bucket([]byte("ids")).Put([]byte("4"), old)
			})
			db.Close()
			st, err = OpenState(path)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			fs, _ = st.Folder(SideSource, "A")
			if !fs.Copied["4"] || fs.IDs["4"] != (formats.Key{4}) || len(fs.Dst) != 0 || len(fs.Base) != 1 {
				t.Errorf("an entry of the first layout reads as copied %v dst %v base %v", fs.Copied["4"], fs.Dst, fs.Base)
			}
		})
	}
}
