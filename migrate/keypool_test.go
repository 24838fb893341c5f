package migrate

import (
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
		for i := range 3000 {
			k := key()
			want := model[k] > 0
			if want {
				model[k]--
				free--
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
