package migrate

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

// decideWith runs the decide step's two halves over a delta listing (msgs
// changed, same by UID) with avail as the destination's copies.
func decideWith(msgs []formats.Message, same []uint32, ledger *FolderState, lost map[string]bool, avail *destCopies, keys map[string]formats.Key) decision {
	d := decision{listSkipped: true}
	unknown, known, occ := decideLedger(msgs, same, ledger, lost, avail, DedupFolder, account{}, &d)
	for id, k := range keys {
		if _, ok := known[id]; !ok {
			known[id] = k
		}
	}
	decideKeys(unknown, known, avail, occ, DedupFolder, account{}, "src", &d)
	return d
}

// A message whose recorded copy is still there keeps it, and the one copied
// again is the one whose copy is gone, also where the destination cannot
// name what it lost: before, the first message of the key in UID order took
// the copy by key, and the other, whose copy it was, was copied again.
func TestDecideRecordedCopyIsClaimedFirst(t *testing.T) {
	k := formats.Key{7}
	ledger := newFolderState(1)
	ledger.Set("1", Entry{Key: k, Copied: true, Dst: DstID{Validity: 9, UID: 10}}) // its copy is gone
	ledger.Set("2", Entry{Key: k, Copied: true, Dst: DstID{Validity: 9, UID: 11}})
	ds := newFolderState(9)
	ds.Set("11", Entry{Key: k})
	msgs := []formats.Message{{ID: "1", UID: 1, Size: 1}, {ID: "2", UID: 2, Size: 1}}
	for _, asSame := range []bool{false, true} {
		m, same := msgs, []uint32(nil)
		if asSame {
			m, same = nil, []uint32{1, 2}
		}
		d := decideWith(m, same, ledger, nil, newDestCopies(ds, 9), nil)
		var copied []string
		for _, c := range d.copy {
			copied = append(copied, c.ID)
		}
		if !slices.Equal(copied, []string{"1"}) || d.recopied != 1 || d.skipped != 1 {
			t.Errorf("asSame=%v: copied %v (recopied %d, skipped %d), want [1] (1, 1)", asSame, copied, d.recopied, d.skipped)
		}
	}
}

// Claiming recorded copies first changes which messages are there, never
// how many: over random folders (keys shared, copies lost, recorded UIDs
// stale or under another UIDVALIDITY, messages named lost, new messages
// whose keys the destination holds), the counts are those of matching by
// key alone.
func TestDecideClaimsKeepTheCounts(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 14))
		n := 1 + r.IntN(40)
		key := func() formats.Key { return formats.Key{byte(r.IntN(1 + n/3))} }
		ledger, ds := newFolderState(1), newFolderState(9)
		var allKeys []formats.Key
		var msgs []formats.Message
		var same []uint32
		lost, keys := map[string]bool{}, map[string]formats.Key{}
		dstUID := uint32(100)
		for uid := uint32(1); uid <= uint32(n); uid++ {
			id := strconv.Itoa(int(uid))
			k := key()
			if r.IntN(5) > 0 { // known to the ledger
				en := Entry{Key: k, Copied: r.IntN(4) > 0}
				if r.IntN(8) > 0 || dstUID == 100 {
					dstUID++
				} else { // two messages recorded as one copy
					ledger.Set(id, Entry{Key: k, Copied: en.Copied, Dst: DstID{Validity: 9, UID: dstUID}})
					same = append(same, uid)
					continue
				}
				switch r.IntN(6) {
				case 0: // no recorded copy
				case 1:
					en.Dst = DstID{Validity: 8, UID: dstUID} // an older UIDVALIDITY
				default:
					en.Dst = DstID{Validity: 9, UID: dstUID}
				}
				ledger.Set(id, en)
				switch r.IntN(6) {
				case 0: // its copy is gone
				case 1: // another message under its UID
					other := key()
					ds.Set(strconv.Itoa(int(dstUID)), Entry{Key: other})
					allKeys = append(allKeys, other)
				default:
					ds.Set(strconv.Itoa(int(dstUID)), Entry{Key: k})
					allKeys = append(allKeys, k)
				}
				if r.IntN(8) == 0 {
					lost[id] = true
				}
				if r.IntN(2) == 0 {
					same = append(same, uid)
					continue
				}
			} else {
				keys[id] = k
			}
			msgs = append(msgs, formats.Message{ID: id, UID: uid, Size: 1})
		}
		for range r.IntN(5) { // copies no source message recorded
			dstUID++
			k := key()
			ds.Set(strconv.Itoa(int(dstUID)), Entry{Key: k})
			allKeys = append(allKeys, k)
		}
		byKey := decideWith(msgs, same, ledger, lost, keyCopies(newKeyPool(len(allKeys), slices.Values(allKeys))), keys)
		claimed := decideWith(msgs, same, ledger, lost, newDestCopies(ds, 9), keys)
		count := func(d decision) string {
			return fmt.Sprintf("copy %d skipped %d recopied %d matched %d deletable %d keyOnly %d",
				len(d.copy), d.skipped, d.recopied, len(d.matched), len(d.deletable), len(d.keyOnly))
		}
		if a, b := count(byKey), count(claimed); a != b && !onlyWhichDiffers(byKey, claimed) {
			t.Fatalf("seed %d: by key alone: %s; recorded copies first: %s", seed, a, b)
		}
	}
}

// onlyWhichDiffers: the two decisions copy, skip and match as many
// messages; only which of the skipped ones are deletable (stored by
// mailferry) or there by key may differ, as which messages are there does.
func onlyWhichDiffers(a, b decision) bool {
	return len(a.copy) == len(b.copy) && a.skipped == b.skipped && a.recopied == b.recopied &&
		len(a.matched) == len(b.matched) && len(a.deletable)+len(a.keyOnly) == len(b.deletable)+len(b.keyOnly)
}

// The delta pass of a folder mailferry copied (every message's recorded
// copy there, listed by UID as unchanged) makes no second copy of the
// destination's keys: with a pool of every key it allocated 16 bytes a
// message more, 5 MB for 300,000. (Against that pool, measured in the same
// test: the race detector's build allocates more for both.)
func TestDecideOfACopiedFolderHoldsNoKeyPool(t *testing.T) {
	const n = 200_000
	ledger, ds := newFolderState(1), newFolderState(9)
	same := make([]uint32, n)
	for i := range n {
		var k formats.Key
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		uid := uint32(i + 1)
		ledger.Set(strconv.Itoa(int(uid)), Entry{Key: k, Copied: true, Dst: DstID{Validity: 9, UID: 1000 + uid}})
		ds.Set(strconv.Itoa(int(1000+uid)), Entry{Key: k})
		same[i] = uid
	}
	perMessage := func(copies func() *destCopies) float64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		avail := copies()
		d := decision{}
		unknown, keys, occ := decideLedger(nil, same, ledger, nil, avail, DedupFolder, account{}, &d)
		needKeys(DedupFolder, avail)
		decideKeys(unknown, keys, avail, occ, DedupFolder, account{}, "src", &d)
		runtime.ReadMemStats(&after)
		if d.skipped != n || len(d.copy) != 0 {
			t.Fatalf("skipped %d, copied %d; want %d, 0", d.skipped, len(d.copy), n)
		}
		return float64(after.TotalAlloc-before.TotalAlloc) / n
	}
	all := perMessage(func() *destCopies { return keyCopies(newKeyPool(ds.Len(), ds.Keys())) })
	claimed := perMessage(func() *destCopies { return newDestCopies(ds, 9) })
	if claimed > all-12 {
		t.Errorf("the decide step allocated %.1f bytes a message, %.1f with a pool of every key: want at least 12 fewer", claimed, all)
	} else {
		t.Logf("the decide step allocated %.1f bytes a message, %.1f with a pool of every key", claimed, all)
	}
}
