package migrate

import (
	"cmp"
	"encoding/binary"
	"iter"
	"slices"
	"sort"

	"github.com/mailferry/mailferry/formats"
)

// keyPool is the decide step's count of the destination folder's copies
// that no source message has been matched to yet, by identity key (the
// first keyBytes bytes of it, as the ledger keeps it).
//
// It was a map[formats.Key]int: about 50 bytes a destination message with
// the map's room, 15 MB for a 300,000-message folder, the largest thing a
// delta pass held. Here it is the keys sorted, 16 bytes each, and one bit
// each for "matched". Copies are only ever taken, never given back, so
// within a run of equal keys the matched ones are a prefix, and the first
// free one is found by binary search too.
type keyPool struct {
	keys []keyWords
	used []uint64
	free int
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

// newKeyPool holds one copy for each key keys yields (n of them, about).
func newKeyPool(n int, keys iter.Seq[formats.Key]) *keyPool {
	ks := make([]keyWords, 0, n)
	for k := range keys {
		ks = append(ks, wordsOf(k))
	}
	slices.SortFunc(ks, compareWords)
	return &keyPool{keys: ks, used: make([]uint64, (len(ks)+63)/64), free: len(ks)}
}

func (p *keyPool) isUsed(i int) bool { return p.used[i/64]&(1<<(i%64)) != 0 }

// take counts one copy of k as matched, and reports whether one was free
// (what avail[k] > 0 { avail[k]-- } did).
func (p *keyPool) take(k formats.Key) bool {
	w := wordsOf(k)
	start, found := slices.BinarySearchFunc(p.keys, w, compareWords)
	if !found {
		return false
	}
	end := start + 1
	if end < len(p.keys) && p.keys[end] == w {
		end = start + sort.Search(len(p.keys)-start, func(i int) bool { return p.keys[start+i] != w })
	}
	i := start + sort.Search(end-start, func(i int) bool { return !p.isUsed(start + i) })
	if i == end {
		return false
	}
	p.used[i/64] |= 1 << (i % 64)
	p.free--
	return true
}

// left reports whether any copy is still free.
func (p *keyPool) left() bool { return p.free > 0 }
