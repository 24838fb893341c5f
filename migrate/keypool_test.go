package migrate

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

// TestKeyPoolCountsAsAMap drives the pool and the map it replaced through
// the same random takes, with keys that repeat up to hundreds of times, and
// compares every answer.
func TestKeyPoolCountsAsAMap(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		distinct := 1 + r.IntN(300)
		key := func() formats.Key {
			var k formats.Key
			n := r.IntN(distinct)
			k[0], k[5], k[15] = byte(n), byte(n>>8), byte(n%3) // differs in both words
			return k
		}
		var dest []formats.Key
		model := map[formats.Key]int{}
		for range r.IntN(2000) {
			k := key()
			dest = append(dest, k)
			model[k]++
		}
		pool := newKeyPool(len(dest), slices.Values(dest))
		free := len(dest)
		given := maps.Clone(model)
		for i := range 3000 {
			k := key()
			want := model[k] > 0
			if want {
				model[k]--
				free--
			}
			if pool.holds(k) != (given[k] > 0) {
				t.Fatalf("seed %d, take %d of %x: holds says %v, given %d", seed, i, k[:16], pool.holds(k), given[k])
			}
			if got := pool.take(k); got != want {
				t.Fatalf("seed %d, take %d of %x: got %v, a map says %v", seed, i, k[:16], got, want)
			}
			if pool.left() != (free > 0) {
				t.Fatalf("seed %d, take %d: left() is %v with %d free", seed, i, pool.left(), free)
			}
		}
	}
}

// Keys spread as identity keys are (and some repeated) are sorted whole,
// and each can be taken as many times as it was given.
func TestKeyPoolSortsSpreadKeys(t *testing.T) {
	for _, n := range []int{1, 3, 4, 5, 100, 4097, 50_000} {
		keys := benchKeys(n)
		keys = append(keys, keys[:n/3]...)
		pool := newKeyPool(len(keys), slices.Values(keys))
		if len(pool.keys) != len(keys) || !slices.IsSortedFunc(pool.keys, compareWords) {
			t.Fatalf("%d keys: pool of %d, sorted %v", len(keys), len(pool.keys), slices.IsSortedFunc(pool.keys, compareWords))
		}
		for _, k := range keys {
			if !pool.take(k) {
				t.Fatalf("%d keys: %x not there as often as given", len(keys), k[:keyBytes])
			}
		}
		if pool.left() {
			t.Fatalf("%d keys: copies left after all were taken", len(keys))
		}
	}
}

func TestKeyPoolEmpty(t *testing.T) {
	pool := newKeyPool(0, slices.Values([]formats.Key(nil)))
	if pool.left() || pool.take(formats.Key{1}) || pool.take(formats.Key{}) {
		t.Fatal("an empty pool gave a copy")
	}
}

// BenchmarkKeyPool builds the pool of a 300,000-message destination folder
// and takes every key once, as a delta pass over an unchanged folder does;
// BenchmarkKeyMap does the same with the map it replaced.
func BenchmarkKeyPool(b *testing.B) {
	keys := benchKeys(300_000)
	b.ReportAllocs()
	for b.Loop() {
		pool := newKeyPool(len(keys), slices.Values(keys))
		for _, k := range keys {
			pool.take(k)
		}
	}
}

func BenchmarkKeyMap(b *testing.B) {
	keys := benchKeys(300_000)
	b.ReportAllocs()
	for b.Loop() {
		avail := make(map[formats.Key]int, len(keys))
		for _, k := range keys {
			avail[k]++
		}
		for _, k := range keys {
			if avail[k] > 0 {
				avail[k]--
			}
		}
	}
}

func benchKeys(n int) []formats.Key {
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]formats.Key, n)
	for i := range keys {
		for j := range keyBytes {
			keys[i][j] = byte(r.Uint32())
		}
	}
	return keys
}
