package migrate

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/formats"
	bolt "go.etcd.io/bbolt"
)

// The ledger keeps, per source message, the flags last applied and where
// mailferry stored it, in both States, and forgets what Forget names.
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
			led, err := st.Folder(SideSource, "A")
			if err != nil {
				t.Fatal(err)
			}
			fs := asMaps(led)
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
			led, _ = st.Folder(SideSource, "A")
			if fs := asMaps(led); len(fs.IDs) != 2 || fs.Copied["1"] || len(fs.Dst) != 0 {
				t.Errorf("after Forget: %v", fs.IDs)
			}
			if kind != "bolt" {
				return
			}
			// What is on disk reads back the same after a reopen, with an ID
			// that is not a number (a POP3 UIDL) kept as it is.
			st.Add([]Record{{Side: SideSource, Folder: "A", ID: "UIDL-0042", Key: formats.Key{4}, Copied: true}})
			st.Close()
			st, err = OpenState(path)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			led, _ = st.Folder(SideSource, "A")
			fs = asMaps(led)
			if len(fs.IDs) != 3 || !fs.Copied["UIDL-0042"] || fs.IDs["UIDL-0042"] != (formats.Key{4}) || fs.IDs["2"] != (formats.Key{2}) {
				t.Errorf("after a reopen: %v copied %v", fs.IDs, fs.Copied)
			}
		})
	}
}

// TestStateBytesPerMessage: a run that copied 20,000 messages (source and
// destination entries, recorded in batches as the transfer does) leaves a
// state file of at most 64 bytes per message.
func TestStateBytesPerMessage(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	const n, batch = 20000, 1000
	for lo := 1; lo <= n; lo += batch {
		var recs []Record
		for uid := lo; uid < lo+batch; uid++ {
			key := ledgerKey(formats.IdentityKey([]byte(fmt.Sprintf("Message-ID: <%d@example.org>\r\n\r\n", uid))))
			id := strconv.Itoa(uid)
			recs = append(recs,
				Record{Side: SideSource, Folder: "INBOX\x00INBOX", ID: id, Key: key, Copied: true,
					Dst: DstID{Validity: 1733356800, UID: uint32(uid)}, Base: []string{`\Seen`}, HasBase: true},
				Record{Side: SideDest, Folder: "INBOX", ID: id, Key: key})
		}
		if err := st.Add(recs); err != nil {
			t.Fatal(err)
		}
	}
	led, _ := st.Folder(SideSource, "INBOX\x00INBOX")
	if fs := asMaps(led); len(fs.IDs) != n || len(fs.Base) != n || fs.Dst["20000"].UID != 20000 {
		t.Fatalf("read back %d IDs, %d bases, dst %v", len(fs.IDs), len(fs.Base), fs.Dst["20000"])
	}
	st.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	per := float64(fi.Size()) / n
	t.Logf("state: %d bytes for %d messages, %.1f bytes per message", fi.Size(), n, per)
	if per > 64 {
		t.Errorf("the state takes %.1f bytes per message, want at most 64", per)
	}
}

// TestStateCloseGivesBackItsRoom: the state file grows ahead of its data;
// Close cuts it to the data, and the file opens again with everything in
// it and takes more records.
func TestStateCloseGivesBackItsRoom(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.db")
	add := func(st State, lo, n int) {
		var recs []Record
		for uid := lo; uid < lo+n; uid++ {
			key := ledgerKey(formats.IdentityKey([]byte(fmt.Sprintf("Message-ID: <%d@room>\r\n\r\n", uid))))
			recs = append(recs, Record{Side: SideSource, Folder: "INBOX\x00INBOX", ID: strconv.Itoa(uid), Key: key, Copied: true})
		}
		if err := st.Add(recs); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 2 {
		st, err := OpenState(path)
		if err != nil {
			t.Fatal(err)
		}
		add(st, 1+round*5000, 5000)
		var used int64
		st.(*boltState).db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != used {
			t.Errorf("round %d: the closed state file is %d bytes, its data %d", round, fi.Size(), used)
		}
	}
	st, err := OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if fs, err := st.Folder(SideSource, "INBOX\x00INBOX"); err != nil || fs.Len() != 10000 {
		t.Fatalf("read back: %v, %d IDs, want 10000", err, fs.Len())
	}
}

// asMaps is a folder's ledger as four maps by ID, for tests to compare.
type ledgerMaps struct {
	IDs    map[string]formats.Key
	Copied map[string]bool
	Dst    map[string]DstID
	Base   map[string][]string
}

func asMaps(fs *FolderState) ledgerMaps {
	m := ledgerMaps{map[string]formats.Key{}, map[string]bool{}, map[string]DstID{}, map[string][]string{}}
	for id, en := range fs.All() {
		m.IDs[id] = en.Key
		if en.Copied {
			m.Copied[id] = true
		}
		if en.Dst.UID != 0 {
			m.Dst[id] = en.Dst
		}
		if en.HasBase {
			m.Base[id] = en.Base
		}
	}
	return m
}

// idNumber takes a number written the canonical way only, as formatting
// it again would tell; and it allocates nothing, for a name or a number.
func TestIDNumberCanonical(t *testing.T) {
	for _, id := range []string{"00000001u6752b7c0", "1733356800.M1P7.host", "123456789"} {
		if n := testing.AllocsPerRun(100, func() { idNumber(id) }); n != 0 {
			t.Errorf("idNumber(%q) allocates %.0f times", id, n)
		}
	}
	for _, id := range []string{"0", "00", "007", "7", "10", "4294967296", "18446744073709551615",
		"18446744073709551616", "", "+1", "-1", "1_0", " 1", "1 ", "abc", "1e3", "0x10", "\xff#abc"} {
		n, err := strconv.ParseUint(id, 10, 64)
		want := err == nil && strconv.FormatUint(n, 10) == id
		if got, ok := idNumber(id); ok != want || ok && got != n {
			t.Errorf("idNumber(%q) = %d, %v; want %v", id, got, ok, want)
		}
	}
}
