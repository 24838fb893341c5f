package migrate

import (
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"strconv"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

// The compact ledger answers as a map by ID would, whatever the order of
// the IDs: ascending UIDs (the sorted array), UIDs out of order, numbers
// beyond 32 bits, and names (the map), with entries replaced, forgotten
// and set again; and a clone shares nothing that a write to it changes.
func TestLedgerMemAnswersAsAMap(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rnd := rand.New(rand.NewSource(seed))
			fs := newFolderState(1)
			// As Folder reads the log: the entries up to op sealAt are
			// read as the log's (names sorted once at the end).
			fs.led.beginLoad()
			sealAt := rnd.Intn(2500)
			model := map[string]Entry{}
			next := uint64(1)
			id := func() string {
				switch r := rnd.Intn(10); {
				case r < 5: // the next UID
					next += uint64(1 + rnd.Intn(3))
					return strconv.FormatUint(next, 10)
				case r < 7: // one seen before, or below the last
					return strconv.FormatUint(uint64(1+rnd.Int63n(int64(next))), 10)
				case r < 8:
					return strconv.FormatUint(1<<32+uint64(rnd.Intn(50)), 10)
				case r < 9:
					return "0" + strconv.Itoa(rnd.Intn(20)) // not a canonical number: a name
				default:
					return fmt.Sprintf("1733356800.M%dP7.host", rnd.Intn(50))
				}
			}
			flags := [][]string{nil, {formats.FlagSeen}, {formats.FlagSeen, "$Label1"}, {"$label1", formats.FlagFlagged}}
			var clone *FolderState
			var cloneModel map[string]Entry
			for op := 0; op < 3000; op++ {
				x := id()
				switch rnd.Intn(4) {
				case 0:
					fs.Forget(x)
					delete(model, x)
				default:
					var en Entry
					en.Key[0], en.Key[15] = byte(rnd.Intn(256)), byte(op)
					en.Copied = rnd.Intn(2) == 0
					if rnd.Intn(2) == 0 {
						en.Dst = DstID{Validity: uint32(1 + rnd.Intn(2)), UID: uint32(1 + rnd.Intn(1000))}
					}
					if f := flags[rnd.Intn(len(flags))]; f != nil {
						en.Base, en.HasBase = followFlags(f), true
					}
					if n, ok := idNumber(x); ok && rnd.Intn(2) == 0 {
						fs.led.setNum(n, fs.led.slotOf(en)) // as the log's numeric entries
					} else {
						fs.Set(x, en)
					}
					model[x] = en
				}
				if op == sealAt {
					fs.led.seal()
				}
				if op == max(1500, sealAt+1) {
					clone, cloneModel = fs.clone(), maps.Clone(model)
				}
			}
			same := func(what string, fs *FolderState, model map[string]Entry) {
				t.Helper()
				if fs.Len() != len(model) {
					t.Fatalf("%s: Len %d, want %d", what, fs.Len(), len(model))
				}
				seen := map[string]bool{}
				for id, en := range fs.All() {
					if seen[id] {
						t.Fatalf("%s: All yields %s twice", what, id)
					}
					seen[id] = true
					if want, ok := model[id]; !ok || fmt.Sprint(en) != fmt.Sprint(want) {
						t.Fatalf("%s: All yields %s %+v, want %+v (%v)", what, id, en, want, ok)
					}
				}
				keys := 0
				for range fs.Keys() {
					keys++
				}
				if len(seen) != len(model) || keys != len(model) {
					t.Fatalf("%s: All yields %d, Keys %d, want %d", what, len(seen), keys, len(model))
				}
				for id, want := range model {
					en, ok := fs.Get(id)
					k, kok := fs.Key(id)
					if !ok || !kok || fmt.Sprint(en) != fmt.Sprint(want) || k != want.Key {
						t.Fatalf("%s: Get(%s) = %+v %v, want %+v", what, id, en, ok, want)
					}
				}
				// By number: the same answers, for UIDs held and not.
				for n := uint32(0); n <= uint32(next)+2; n++ {
					want, wok := model[strconv.FormatUint(uint64(n), 10)]
					en, ok := fs.GetNum(n)
					k, kok := fs.KeyNum(n)
					if ok != wok || kok != wok || fmt.Sprint(en) != fmt.Sprint(want) || k != want.Key {
						t.Fatalf("%s: GetNum(%d) = %+v %v, want %+v %v", what, n, en, ok, want, wok)
					}
				}
				for _, absent := range []string{"0", "999999999", "nope"} {
					if _, ok := model[absent]; !ok {
						if _, ok := fs.Get(absent); ok {
							t.Fatalf("%s: Get(%s) found an entry never set", what, absent)
						}
					}
				}
			}
			same("ledger", fs, model)
			same("clone", clone, cloneModel)
			clone.Set("1", Entry{Key: formats.Key{9}})
			clone.Forget("2")
			same("ledger after its clone changed", fs, model)
		})
	}
}

// The log's entries decode into the sorted array when their UIDs ascend,
// and a folder of 300,000 messages costs under 40 bytes a message.
func TestLedgerMemBytesPerMessage(t *testing.T) {
	fs := newFolderState(1)
	const n = 300000
	fs.led.grow(n)
	for uid := uint64(1); uid <= n; uid++ {
		fs.led.setNum(uid, fs.led.slotOf(Entry{Key: formats.Key{byte(uid)}, Copied: true,
			Dst: DstID{1, uint32(uid)}, Base: []string{formats.FlagSeen}, HasBase: true}))
	}
	if len(fs.led.other) != 0 || fs.Len() != n || cap(fs.led.ents.keys) > n*9/8 {
		t.Fatalf("%d entries, %d of them in the map; room for %d", fs.Len(), len(fs.led.other), cap(fs.led.ents.keys))
	}
	names := newFolderState(1)
	names.led.grow(3)
	for _, id := range []string{"UIDL-1", "7", "UIDL-2"} {
		names.Set(id, Entry{Key: formats.Key{1}})
	}
	if cap(names.led.ents.keys) > 1 || names.Len() != 3 {
		t.Errorf("a folder of names made room for %d numbers; holds %d", cap(names.led.ents.keys), names.Len())
	}
	bytes := func(l *ledgerMem) float64 {
		return float64(cap(l.nums)*4+cap(l.ents.keys)*keyBytes+cap(l.ents.bits)+cap(l.ents.meta)*12) / n
	}
	if per := bytes(&fs.led); per > 36 {
		t.Errorf("%.1f bytes a message", per)
	}
	// A destination folder's index: keys alone.
	dst := newFolderState(1)
	dst.led.grow(n)
	for uid := uint64(1); uid <= n; uid++ {
		dst.led.setNum(uid, dst.led.slotOf(Entry{Key: formats.Key{byte(uid)}}))
	}
	if per := bytes(&dst.led); per > 24 || dst.led.ents.meta != nil {
		t.Errorf("a destination index: %.1f bytes a message", per)
	}
	// One entry with a destination UID, set late, makes the column for all.
	dst.Set("5", Entry{Key: formats.Key{9}, Dst: DstID{1, 7}})
	dst.Set("300001", Entry{Key: formats.Key{8}})
	five, _ := dst.Get("5")
	six, _ := dst.Get("6")
	last, _ := dst.Get("300001")
	if five.Dst != (DstID{1, 7}) || five.Key != (formats.Key{9}) || six.Dst != (DstID{}) || six.Key != (formats.Key{6}) ||
		last.Key != (formats.Key{8}) || last.Dst != (DstID{}) || dst.Len() != n+1 {
		t.Errorf("after a late destination UID: 5 %+v, 6 %+v, 300001 %+v, %d entries", five, six, last, dst.Len())
	}
	// A POP3 maildrop's UIDLs as Folder reads them from the log: sorted
	// once into the name array, where a map of slots took about 170 bytes
	// a message (the 59,540-message rerun's heap profile).
	pop := newFolderState(1)
	const m = 60000
	pop.led.grow(m)
	pop.led.beginLoad()
	uidl := func(i int) string { return fmt.Sprintf("%08xu%08x", i*7919%m, 1733356800) }
	for i := range m {
		pop.Set(uidl(i), Entry{Key: formats.Key{byte(i)}, Copied: true})
	}
	pop.led.seal()
	l := &pop.led
	per := float64(cap(l.names.arena)+4*cap(l.names.starts)+4*cap(l.names.ends)+keyBytes*cap(l.names.ents.keys)+
		cap(l.names.ents.bits)+12*cap(l.names.ents.meta)) / m
	if len(l.other) != 0 || pop.Len() != m || per > 64 {
		t.Errorf("%d UIDLs: %d in the map, %.1f bytes a message in the name array", pop.Len(), len(l.other), per)
	}
	if en, ok := pop.Get(uidl(777)); !ok || en.Key != (formats.Key{777 % 256}) || !en.Copied {
		t.Errorf("Get(%s) = %+v %v", uidl(777), en, ok)
	}
	if en, ok := fs.Get("123456"); !ok || !slices.Equal(en.Base, []string{formats.FlagSeen}) || en.Dst.UID != 123456 {
		t.Errorf("Get(123456) = %+v %v", en, ok)
	}
}
