package migrate

import (
	"context"
	"sync"
)

// Pre-dialling: a worker's pair of connections costs several round trips
// (greeting, LOGIN, LIST and NAMESPACE on each side, the destination's
// folder listing). Opened only when the worker takes its first folder, they
// would wait for the whole plan; on a 80 ms link that is half a second or
// more before any worker but the first moves a byte. So once the first pair
// has logged in (the credentials work), the other workers' pairs are opened
// in the background while the run plans.
//
// A pair that fails to open is dropped quietly: its worker then connects as
// it always did, with retries and the error reported there.

// predialed holds the workers being connected in the background.
type predialed struct {
	mu      sync.Mutex
	workers []*worker
	wg      sync.WaitGroup
	taken   int
}

// predial starts connecting n workers.
func (e *engine) predial(ctx context.Context, n int) *predialed {
	p := &predialed{}
	for i := 0; i < n; i++ {
		wk := &worker{e: e}
		p.workers = append(p.workers, wk)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := wk.connect(ctx); err != nil {
				wk.close() // its folder() connects again, and reports
			}
		}()
	}
	return p
}

// take returns the next pre-dialled worker once its connections are open
// (or failed), or a fresh one when none is left.
func (p *predialed) take(e *engine) *worker {
	if p == nil {
		return &worker{e: e}
	}
	p.wg.Wait() // all started together, long before: no real wait
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.taken >= len(p.workers) {
		return &worker{e: e}
	}
	p.taken++
	return p.workers[p.taken-1]
}

// wait returns once every pre-dialled pair is open (or failed).
func (p *predialed) wait() {
	if p != nil {
		p.wg.Wait()
	}
}

// close closes the connections of every worker not taken.
func (p *predialed) close() {
	if p == nil {
		return
	}
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, wk := range p.workers[p.taken:] {
		wk.close()
	}
	p.taken = len(p.workers)
}
