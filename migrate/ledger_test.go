package migrate

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
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

// TestStateBytesPerMessage: a run that copied a folder tree (source and
// destination entries, recorded in batches as the transfer does) leaves a
// state file of at most 64 bytes per message, whether the batches are
// large (small messages, one folder) or small and spread over several
// folders (the bench's MIXED set of large messages: about 30 a batch), and
// whether the destination's IDs are UIDs or Maildir file names.
func TestStateBytesPerMessage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name              string
		n, batch, folders int
		maildir           bool
		uidl              bool    // POP3: the source's IDs are Dovecot's UIDLs
		most              float64 // bytes per message
	}{
		{"IMAP, one folder, batches of 1000", 20000, 1000, 1, false, false, 64},
		{"Maildir, one folder, batches of 1000", 20000, 1000, 1, true, false, 64},
		{"Maildir, 12 folders, batches of 100", 20000, 100, 12, true, false, 64},
		{"IMAP, 4 folders, batches of 30", 5000, 30, 4, false, false, 64},
		{"Maildir, 4 folders, batches of 30", 5000, 30, 4, true, false, 64},
		{"POP3 to Maildir, batches of 100", 6000, 100, 1, true, true, 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "s.db")
			st, err := OpenState(path)
			if err != nil {
				t.Fatal(err)
			}
			per := c.n / c.folders
			for f := range c.folders {
				folder := fmt.Sprintf("Folder %d", f)
				for lo := 1; lo <= per; lo += c.batch {
					var recs []Record
					for uid := lo; uid < min(lo+c.batch, per+1); uid++ {
						key := ledgerKey(formats.IdentityKey([]byte(fmt.Sprintf("Message-ID: <%d.%d@example.org>\r\n\r\n", f, uid))))
						id := strconv.Itoa(uid)
						src := Record{Side: SideSource, Folder: folder + "\x00" + folder, ID: id, Key: key, Copied: true,
							Base: []string{`\Seen`}, HasBase: true}
						if c.uidl {
							src.ID, src.Base = fmt.Sprintf("%08x%08x", uid, 1733356800), []string{}
						}
						dst := Record{Side: SideDest, Folder: folder, ID: id, Key: key}
						if c.maildir {
							dst.ID = indexID(fmt.Sprintf("1733356800.M%dP4242Q%d.mail.example.org,S=%d", 100000+uid, uid, 1000+uid))
						} else {
							src.Dst = DstID{Validity: 1733356800, UID: uint32(uid)}
						}
						recs = append(recs, src, dst)
					}
					if err := st.Add(recs); err != nil {
						t.Fatal(err)
					}
				}
			}
			last := c.folders - 1
			led, _ := st.Folder(SideSource, fmt.Sprintf("Folder %d\x00Folder %d", last, last))
			if fs := asMaps(led); len(fs.IDs) != per || len(fs.Base) != per || !c.maildir && fs.Dst[strconv.Itoa(per)].UID != uint32(per) ||
				c.uidl && fs.IDs[fmt.Sprintf("%08x%08x", per, 1733356800)] == (formats.Key{}) {
				t.Fatalf("read back %d IDs, %d bases, dst %v", len(fs.IDs), len(fs.Base), fs.Dst[strconv.Itoa(per)])
			}
			st.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			b := float64(fi.Size()) / float64(c.n)
			t.Logf("state: %d bytes for %d messages, %.1f bytes per message", fi.Size(), c.n, b)
			if b > c.most {
				t.Errorf("the state takes %.1f bytes per message, want at most %.0f", b, c.most)
			}
		})
	}
}

// TestStateLogReadsBackAsWritten: whatever mix of records and forgets is
// added, in whatever batches (each a transaction that may extend the
// log's last run: lastRun), the bbolt state reads back what a memState
// does, before and after a reopen. The IDs mix UIDs out of order, POP3
// UIDLs, hashed Maildir names and IDs too long to share a run; the
// destination UIDs mix two UIDVALIDITYs, and the bases keywords.
func TestStateLogReadsBackAsWritten(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		path := filepath.Join(t.TempDir(), "s.db")
		st, err := OpenState(path)
		if err != nil {
			t.Fatal(err)
		}
		model := NewMemState()
		folders := []string{"INBOX", "Lists/go"}
		id := func() string {
			switch r.IntN(6) {
			case 0:
				return fmt.Sprintf("UIDL-%d", r.IntN(300))
			case 4:
				// Hex UIDLs of either case, odd lengths, digits with a
				// leading zero, and mixed case (written as it is).
				// Long ones share more than 15 packed bytes with the
				// last, or are too long to be written like it.
				return []string{fmt.Sprintf("%08X%08x", r.IntN(300), 1733356800), fmt.Sprintf("%08x%08x", r.IntN(300), 1733356800),
					fmt.Sprintf("%05X", r.IntN(300)), fmt.Sprintf("%04d", r.IntN(300)), fmt.Sprintf("aB%x", r.IntN(300)),
					fmt.Sprintf("%034x%06x", 7, r.IntN(300)), fmt.Sprintf("%06x%064x", r.IntN(300), 7)}[r.IntN(7)]
			case 1:
				return indexID(fmt.Sprintf("1733356800.M%dP42.host,S=%d", r.IntN(300), r.IntN(9)))
			case 2:
				return strings.Repeat("x", 900+r.IntN(200)) + strconv.Itoa(r.IntN(20))
			default:
				return strconv.Itoa(1 + r.IntN(400))
			}
		}
		flags := []string{`\Seen`, `\Flagged`, `\Answered`, "$Label1", "NonJunk", "$Forwarded"}
		for step := range 120 {
			side, folder := []Side{SideSource, SideDest}[r.IntN(2)], folders[r.IntN(2)]
			var recs []Record
			for range 1 + r.IntN(60) {
				rec := Record{Side: side, Folder: folder, ID: id(), Copied: r.IntN(2) == 0}
				rec.Key[0], rec.Key[1] = byte(r.IntN(256)), byte(r.IntN(256))
				if r.IntN(2) == 0 {
					rec.Dst = DstID{Validity: uint32(1 + r.IntN(2)), UID: uint32(1 + r.IntN(100000))}
				}
				if r.IntN(2) == 0 {
					rec.HasBase = true
					for _, f := range flags {
						if r.IntN(3) == 0 {
							rec.Base = append(rec.Base, f)
						}
					}
				}
				recs = append(recs, rec)
			}
			switch op := r.IntN(10); {
			case op < 7:
				err = st.Add(recs)
				model.Add(recs)
			case op < 9:
				err = st.Forget(recs)
				model.Forget(recs)
			default:
				err = st.Reset(side, folder, uint32(step))
				model.Reset(side, folder, uint32(step))
			}
			if err != nil {
				t.Fatal(err)
			}
			check := [][2]string{{string(side), folder}}
			if r.IntN(15) == 0 {
				st.Close()
				if st, err = OpenState(path); err != nil {
					t.Fatal(err)
				}
				check = [][2]string{{"src", "INBOX"}, {"src", "Lists/go"}, {"dst", "INBOX"}, {"dst", "Lists/go"}}
			}
			for _, c := range check {
				side, folder := Side(c[0]), c[1]
				got, err := st.Folder(side, folder)
				if err != nil {
					t.Fatalf("seed %d step %d: %s %s: %v", seed, step, side, folder, err)
				}
				want, _ := model.Folder(side, folder)
				if g, w := asMaps(got), asMaps(want); !reflect.DeepEqual(g, w) || got.Validity != want.Validity {
					t.Fatalf("seed %d step %d: %s %s reads back %d IDs (validity %d), want %d (validity %d)",
						seed, step, side, folder, len(g.IDs), got.Validity, len(w.IDs), want.Validity)
				}
			}
		}
		st.Close()
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
