package main

import "testing"

// The soft limit makes way only for a heap that stays over it while the
// collector keeps running and takes CPU (a POP3 maildrop copied whole),
// not for a moment's batch (a first IMAP copy on a slow link), nor for a
// large heap in a run that waits on the servers (a delta pass holding a
// large folder's ledgers).
func TestHeapLimiter(t *testing.T) {
	const mb = 1 << 20
	type sample struct {
		used   int64
		cycles uint64
		gcCPU  float64
		want   int64 // the limit step sets, 0 for none
	}
	run := func(t *testing.T, samples []sample) {
		t.Helper()
		h := heapLimiter{set: memoryLimit}
		for i, s := range samples {
			if got := h.step(s.used, s.cycles, s.gcCPU); got != s.want {
				t.Fatalf("sample %d (%d MB in use, %d collections, %.3f s): limit %d MB, want %d MB",
					i, s.used/mb, s.cycles, s.gcCPU, got/mb, s.want/mb)
			}
		}
	}
	// n samples in a row with used in use, from cycles0 collections and
	// cpu0 seconds, each adding perTick collections and cpuPerTick seconds
	over := func(used int64, n int, cycles0, perTick uint64, cpu0, cpuPerTick float64) []sample {
		var out []sample
		for i := range n {
			out = append(out, sample{used, cycles0 + uint64(i)*perTick, cpu0 + float64(i)*cpuPerTick, 0})
		}
		return out
	}
	const busy = 0.05 // the collector on a whole core, 50 ms a sample

	t.Run("a moment over", func(t *testing.T) {
		var s []sample
		for i := range 50 {
			used := int64(20 * mb)
			if i%3 == 0 {
				used = 26 * mb // one sample at a time, as on a slow link
			}
			s = append(s, sample{used, uint64(i * 10), float64(i) * busy, 0})
		}
		run(t, s)
	})
	t.Run("over and collecting", func(t *testing.T) {
		s := over(30*mb, heapOverTicks, 100, 5, 1, busy)
		s[len(s)-1].want = 38 * mb // the last of heapOverTicks samples
		s = append(s,
			sample{31 * mb, 200, 2, 0},         // moved less than 2 MB: left
			sample{34 * mb, 210, 2.1, 42 * mb}, // followed
			sample{23 * mb, 220, 2.2, 31 * mb}, // still over memoryLimit less 2 MB
			sample{20 * mb, 230, 2.3, memoryLimit},
			sample{30 * mb, 240, 2.4, 0}, // over again: counted from the start
		)
		run(t, s)
	})
	t.Run("over, collecting, waiting", func(t *testing.T) {
		run(t, over(35*mb, 100, 7, 5, 0, busy/10)) // a delta pass
	})
	t.Run("over and not collecting", func(t *testing.T) {
		run(t, over(35*mb, 100, 7, 0, 0, 0))
	})
	t.Run("over with a break", func(t *testing.T) {
		s := over(30*mb, heapOverTicks-1, 0, 10, 0, busy)
		s = append(s, sample{22 * mb, 100, 1, 0})
		s = append(s, over(30*mb, heapOverTicks-1, 110, 10, 1.1, busy)...)
		run(t, s)
	})
}
