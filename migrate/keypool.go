package migrate

import (
	"cmp"
	"encoding/binary"
	"iter"
	"math/bits"
	"slices"
	"sort"

	"github.com/mailferry/mailferry/formats"
)

// keyPool is the decide step's count of the destination folder's copies
// that no source message has been matched to yet, by identity key (the
// first keyBytes bytes of it, as the ledger keeps it).
//
// It was a map[formats.Key]int: with the map's room, 84 bytes a
// destination message, 25 MB for a 300,000-message folder, the largest
// thing a delta pass held (BenchmarkKeyMap). Here it is the keys sorted,
// 16 bytes each, one bit each for "matched", and where each bucket of
// about three keys begins (1-2 bytes a key): 5 MB, and under half the
// time. Copies are only ever taken, never given back, so within a run of
// equal keys the matched ones are a prefix, and the first free one is
// found by binary search too.
type keyPool struct {
	keys []keyWords
	used bitSet
	free int
	// Bucket b (the keys whose first word's top bits are b: hi>>shift)
	// is keys[bounds[b]:bounds[b+1]].
	bounds []uint32
	shift  uint
}

// keyWords is a ledger key as two numbers, ordered as its bytes are.
type keyWords struct{ hi, lo uint64 }

func wordsOf(k formats.Key) keyWords {
	return keyWords{binary.BigEndian.Uint64(k[:8]), binary.BigEndian.Uint64(k[8:keyBytes])}
}

func compareWords(a, b keyWords) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// newKeyPool holds one copy for each key keys yields (about n of them).
//
// The sort goes by buckets: identity keys are SHA-256 sums, so their first
// bits spread them evenly over buckets of about three. Each key is moved
// into its bucket in place (an American flag sort: counted, then swapped
// into place, each swap placing one key for good), and each bucket is
// sorted on its own. A comparison sort of a 300,000-message folder's keys
// took 39 ms, this 20 ms with no second array; and a key is then looked for
// in its bucket alone.
func newKeyPool(n int, keys iter.Seq[formats.Key]) *keyPool {
	ks := make([]keyWords, 0, n)
	for k := range keys {
		ks = append(ks, wordsOf(k))
	}
	n = len(ks)
	shift := uint(64 - bits.Len(uint(n/4))) // 64: one bucket (a shift by 64 is 0)
	buckets := uint64(1) << (64 - shift)
	bounds := make([]uint32, buckets+1)
	for _, w := range ks {
		bounds[w.hi>>shift+1]++
	}
	for b := 1; b < len(bounds); b++ {
		bounds[b] += bounds[b-1]
	}
	next := slices.Clone(bounds[:buckets]) // each bucket's first key not yet in place
	for b := range buckets {
		for i := next[b]; i < bounds[b+1]; i = next[b] {
			w := ks[i]
			to := w.hi >> shift
			if to != b {
				ks[i], ks[next[to]] = ks[next[to]], w
			}
			next[to]++
		}
	}
	for b := range buckets {
		if bucket := ks[bounds[b]:bounds[b+1]]; len(bucket) > 1 {
			slices.SortFunc(bucket, compareWords)
		}
	}
	return &keyPool{keys: ks, used: newBitSet(n), free: n, bounds: bounds, shift: shift}
}

// find is where the run of k's copies begins and ends (start == end: none).
func (p *keyPool) find(w keyWords) (start, end int) {
	b := w.hi >> p.shift
	lo, hi := int(p.bounds[b]), int(p.bounds[b+1])
	at, found := slices.BinarySearchFunc(p.keys[lo:hi], w, compareWords)
	if !found {
		return 0, 0
	}
	start, end = lo+at, lo+at+1
	if end < hi && p.keys[end] == w {
		end = start + sort.Search(hi-start, func(i int) bool { return p.keys[start+i] != w })
	}
	return start, end
}

// holds reports whether the destination holds k at all, taken or not.
func (p *keyPool) holds(k formats.Key) bool {
	start, end := p.find(wordsOf(k))
	return start < end
}

// take counts one copy of k as matched, and reports whether one was free
// (what avail[k] > 0 { avail[k]-- } did).
func (p *keyPool) take(k formats.Key) bool {
	start, end := p.find(wordsOf(k))
	i := start + sort.Search(end-start, func(i int) bool { return !p.used.has(start + i) })
	if i == end {
		return false
	}
	p.used.set(i)
	p.free--
	return true
}

// left reports whether any copy is still free.
func (p *keyPool) left() bool { return p.free > 0 }

// destCopies is the destination folder's copies the decide step matches
// source messages to. A message the ledger knows claims first the copy
// mailferry recorded storing it as (claimRecorded: its UID under the same
// UIDVALIDITY, holding the same key), found in the folder's index itself;
// only the copies no message claimed so go into a keyPool, made when a
// message first needs one by key (take, left). After a run that copied the
// folder every copy is claimed so, and the pool is empty, where it held
// every key of the index a second time while the decide step ran: 16
// bytes a message, 5 MB for a 300,000-message folder, in each of the
// folders the workers held at once in a delta pass.
//
// The claims change which messages are there, never how many: for each
// key k, c of its copies claimed by their own messages, the pool holds the
// other copies, and the messages left take them by key as before: c +
// min(s-c, d-c) = min(s, d) for s messages and d copies of k.
type destCopies struct {
	ds       *FolderState // nil: no index (keys alone, given as pool)
	validity uint32
	claimed  bitSet // by position in ds's array of numeric IDs
	nclaimed int
	pool     *keyPool
}

// newDestCopies is the copies of the destination folder indexed as ds,
// whose UIDVALIDITY is validity.
func newDestCopies(ds *FolderState, validity uint32) *destCopies {
	return &destCopies{ds: ds, validity: validity}
}

// keyCopies is copies known by their keys alone (claimRecorded claims
// none).
func keyCopies(pool *keyPool) *destCopies { return &destCopies{pool: pool} }

// claimRecorded claims the copy en records (holdsRecorded), if no message
// claimed it yet. It claims nothing once the pool is made.
func (c *destCopies) claimRecorded(en Entry) bool {
	if c.ds == nil || c.pool != nil || en.Dst.UID == 0 || en.Dst.Validity != c.validity {
		return false
	}
	k, at, ok := c.ds.keyNumAt(en.Dst.UID)
	if !ok || k != en.Key || c.claimed.has(at) {
		return false
	}
	if c.claimed == nil {
		c.claimed = newBitSet(len(c.ds.led.nums))
	}
	c.claimed.set(at)
	c.nclaimed++
	return true
}

// keys is the pool of the copies not claimed by their recorded UIDs.
func (c *destCopies) keys() *keyPool {
	if c.pool == nil {
		c.pool = newKeyPool(c.ds.Len()-c.nclaimed, c.ds.keysExcept(c.claimed))
	}
	return c.pool
}

// take counts one unclaimed copy of k as matched, and reports whether
// one was free.
func (c *destCopies) take(k formats.Key) bool { return c.keys().take(k) }

// left reports whether any copy is still free.
func (c *destCopies) left() bool { return c.keys().left() }

// bitSet is a set of numbers from 0, a bit each (nil: empty).
type bitSet []uint64

func newBitSet(n int) bitSet { return make(bitSet, (n+63)/64) }

func (b bitSet) has(i int) bool { return i/64 < len(b) && b[i/64]&(1<<(i%64)) != 0 }

func (b bitSet) set(i int) { b[i/64] |= 1 << (i % 64) }
