package main

import "testing"

// The soft limit makes way only for a heap that stays over it while the
// collector keeps running (a POP3 maildrop copied whole), not for a
// moment's batch (a first IMAP copy on a slow link) nor for a large heap
// that allocates little (a delta pass holding a ledger).
func TestHeapLimiter(t *testing.T) {
	const mb = 1 << 20
	type sample struct {
		used   int64
		cycles uint64
		want   int64 // the limit step sets, 0 for none
	}
	run := func(t *testing.T, samples []sample) {
		t.Helper()
		h := heapLimiter{set: memoryLimit}
		for i, s := range samples {
			if got := h.step(s.used, s.cycles); got != s.want {
				t.Fatalf("sample %d (%d MB in use, %d collections): limit %d MB, want %d MB", i, s.used/mb, s.cycles, got/mb, s.want/mb)
			}
		}
	}
	// over for n samples in a row, the collector running perTick times each
	over := func(used int64, n int, cycles0, perTick uint64) []sample {
		var out []sample
		for i := range n {
			out = append(out, sample{used, cycles0 + uint64(i)*perTick, 0})
		}
		return out
	}

	t.Run("a moment over", func(t *testing.T) {
		var s []sample
		for i := range 50 {
			used := int64(20 * mb)
			if i%3 == 0 {
				used = 26 * mb // one sample at a time, as on a slow link
			}
			s = append(s, sample{used, uint64(i * 10), 0})
		}
		run(t, s)
	})
	t.Run("over and collecting", func(t *testing.T) {
		s := over(30*mb, heapOverTicks, 100, 5)
		s[len(s)-1].want = 38 * mb // the last of heapOverTicks samples: 5 collections a sample since the first
		s = append(s,
			sample{31 * mb, 200, 0},       // moved less than 2 MB: left
			sample{34 * mb, 210, 42 * mb}, // followed
			sample{23 * mb, 220, 31 * mb}, // still over memoryLimit less 2 MB
			sample{20 * mb, 230, memoryLimit},
			sample{30 * mb, 240, 0}, // over again: counted from the start
		)
		run(t, s)
	})
	t.Run("over and not collecting", func(t *testing.T) {
		run(t, over(35*mb, 100, 7, 0)) // a large ledger, little allocated
	})
	t.Run("over with a break", func(t *testing.T) {
		s := over(30*mb, heapOverTicks-1, 0, 10)
		s = append(s, sample{22 * mb, 100, 0})
		s = append(s, over(30*mb, heapOverTicks-1, 110, 10)...)
		run(t, s)
	})
}
