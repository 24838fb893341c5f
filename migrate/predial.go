package migrate

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/mailferry/mailferry/formats"
)

// Pre-dialling: a worker's pair of connections costs several round trips
// (greeting, LOGIN, LIST and NAMESPACE on each side, the destination's
// folder listing). Opened only when the worker takes its first folder, they
// would wait for the whole plan; on a 80 ms link that is half a second or
// more before any worker but the first moves a byte. So once the first pair
// has logged in (the credentials work), the other workers' pairs are opened
// in the background.
//
// Where the source is an account of many folders (IMAP), they are dialled
// as soon as the first pair's source has been greeted (BeforeLogin), and
// they log in once both logins of the first pair are answered (LoggedIn),
// beside its folder listings: --jobs-1 pairs, of which those the plan has
// no folder for are closed once open. Until then each waits at the gate,
// greeted and not logged in, so that a wrong password is tried once, not
// once per worker; if the first pair does not log in, they are closed
// without having sent a credential. On a slow link this takes their
// greeting's round trip off the way to the folders-first CREATE round,
// which waits for their logins (createfirst.go). A destination that does
// not wait at the gate itself (a local store) is opened by the workers only
// once the first pair's is open. Other sources (POP3, whose server locks
// the maildrop for one session; local stores) are pre-dialled after the
// listing, as many as the folders need.
//
// Their destination connections learn which folders exist as they open
// (FolderLearner) from the first pair's listing of the destination, once
// it is done (FolderTeller: a round trip less than listing again), or
// else list them after it: Dovecot 2.3.19 crashes sessions that list a
// fresh account side by side where LIST RETURN (STATUS) creates its
// auto-created folders ("dovecot.list.index.log ... Resource deadlock
// avoided" in its log; TestWorkersListAFreshDestinationAfterTheFirst).
//
// A pair that fails to open is dropped quietly: its worker then connects as
// it always did, with retries and the error reported there.

// loginHook is the context key of the function LoggedIn calls.
type loginHook struct{}

// LoggedIn is called by a Source or Sink being opened with ctx once its
// login was answered, before it lists anything (IMAP). From a source it
// also says that its account may hold many folders, each worth a worker of
// its own. Like net/http/httptrace, the engine passes the hook in the
// context of OpenSource and OpenSink only; elsewhere it does nothing.
func LoggedIn(ctx context.Context) {
	if f, ok := ctx.Value(loginHook{}).(func()); ok {
		f()
	}
}

// withLoginHook returns ctx with f for LoggedIn.
func withLoginHook(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, loginHook{}, f)
}

// beforeLoginHook is the context key of the function BeforeLogin calls.
type beforeLoginHook struct{}

// loginGateKey is the context key of a pre-dialled connection's gate.
type loginGateKey struct{}

// BeforeLogin is called by a Source or Sink being opened with ctx once the
// server has greeted it (and TLS is up), before it sends any credential.
// A Source that calls it says its account may hold many folders and that
// it calls LoggedIn once logged in (IMAP): the engine dials the other
// workers' connections meanwhile. A Sink that calls it says it waits here
// as well: the workers' destination connections are then opened beside
// it, not after it. A pre-dialled connection waits in it until the run's
// first pair has logged in on both sides; an error means that pair did
// not, and the connection is to be closed without logging in. Elsewhere it
// returns nil at once.
func BeforeLogin(ctx context.Context) error {
	if f, ok := ctx.Value(beforeLoginHook{}).(func()); ok {
		f()
	}
	if g, ok := ctx.Value(loginGateKey{}).(*loginGate); ok {
		return g.wait(ctx)
	}
	return nil
}

// loginGate holds the pre-dialled connections before their logins, and
// their destination connections before they are opened at all, until the
// first pair's destination connection has said that it waits at the gate
// too (BeforeLogin): a destination that does not (a local store) is opened
// by the workers only once the first one is open, as before.
type loginGate struct {
	once      sync.Once
	done      chan struct{}
	ok        bool // set before done is closed
	sinksOnce sync.Once
	sinks     chan struct{} // closed once the workers may open their destinations
}

func newLoginGate() *loginGate {
	return &loginGate{done: make(chan struct{}), sinks: make(chan struct{})}
}

// letSinksOpen lets the workers open their destination connections: the
// first pair's waits at the gate before its login (BeforeLogin), or the
// gate is settled.
func (g *loginGate) letSinksOpen() {
	if g != nil {
		g.sinksOnce.Do(func() { close(g.sinks) })
	}
}

// waitSinks returns once a worker may open its destination connection; an
// error where the first pair did not log in (the connection is not opened).
func (g *loginGate) waitSinks(ctx context.Context) error {
	select {
	case <-g.sinks:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-g.done:
		return g.refused()
	default: // it will wait at the gate itself
		return nil
	}
}

// refused is the error of a settled gate: errFirstLoginFailed where it was
// shut.
func (g *loginGate) refused() error {
	if !g.ok {
		return errFirstLoginFailed
	}
	return nil
}

// open lets the connections log in: the first pair has.
func (g *loginGate) open() { g.settle(true) }

// shut sends them away without a login (the first pair did not log in, or
// the run is over); after open it does nothing.
func (g *loginGate) shut() { g.settle(false) }

func (g *loginGate) settle(ok bool) {
	if g == nil {
		return
	}
	g.once.Do(func() {
		g.ok = ok
		close(g.done)
	})
	g.letSinksOpen()
}

// errFirstLoginFailed is what a pre-dialled connection's BeforeLogin
// returns when the run's first pair did not log in.
var errFirstLoginFailed = errors.New("the run's first connections did not log in: this one did not try")

func (g *loginGate) wait(ctx context.Context) error {
	select {
	case <-g.done:
		return g.refused()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// listsNext is the context key ListsNext reads.
type listsNext struct{}

// ListsNext reports whether the engine lists the folders (Folders) as the
// next thing it does with the Source or Sink being opened with ctx: the
// first pair's connections, which the run lists both sides with. An IMAP
// connection then sends its LIST with the commands it opens with, and the
// listing costs no round trip of its own. Elsewhere it is false.
func ListsNext(ctx context.Context) bool {
	v, _ := ctx.Value(listsNext{}).(bool)
	return v
}

// WithListsNext returns ctx for ListsNext: the engine opens its first pair
// so (and an endpoint's test, to see what its Open sends).
func WithListsNext(ctx context.Context) context.Context {
	return context.WithValue(ctx, listsNext{}, true)
}

// predialed holds the workers being connected in the background.
type predialed struct {
	gate    *loginGate // nil: they log in as they open (dialled after the first pair logged in)
	mu      sync.Mutex
	workers []*worker // those the run may take (trim closes the others)
	wg      sync.WaitGroup
	taken   int
	trimmed chan struct{} // closed once the trimmed workers are closed
	// listed is closed once the first pair has listed the destination
	// (folders, where ok): the workers' destination connections learn
	// the folders only then.
	listed     chan struct{}
	listedOnce sync.Once
	folders    []formats.Folder
	ok         bool
}

// destListed gives the workers' destination connections the first pair's
// listing of the destination (ok: it was made; else they list it).
func (p *predialed) destListed(folders []formats.Folder, ok bool) {
	p.listedOnce.Do(func() {
		p.folders, p.ok = slices.Clone(folders), ok // (the run plans with its own)
		close(p.listed)
	})
}

// predial starts connecting n workers; gated, they log in only once
// p.gate is opened (BeforeLogin).
func (e *engine) predial(ctx context.Context, n int, gated bool) *predialed {
	p := &predialed{listed: make(chan struct{})}
	if gated {
		p.gate = newLoginGate()
		ctx = context.WithValue(ctx, loginGateKey{}, p.gate)
	}
	for i := 0; i < n; i++ {
		wk := &worker{e: e, firstListing: func() ([]formats.Folder, bool) {
			select {
			case <-p.listed:
				return p.folders, p.ok
			case <-ctx.Done():
				return nil, false
			}
		}}
		if gated {
			wk.beforeSink = p.gate.waitSinks
		}
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

// trim keeps the first n workers for the run; the others are closed once
// their connections are open (dialled before the folders were listed, for
// an account with fewer folders than --jobs).
func (p *predialed) trim(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n >= len(p.workers) || p.trimmed != nil {
		return
	}
	surplus := p.workers[max(n, 0):]
	p.workers = p.workers[:max(n, 0)]
	p.trimmed = make(chan struct{})
	go func() {
		defer close(p.trimmed)
		p.wg.Wait()
		for _, wk := range surplus {
			wk.close()
		}
	}()
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

// wait returns once every pre-dialled pair is open (or failed), the
// trimmed ones too (they learn the destination's folders as they open).
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
	p.destListed(nil, false) // a run that ended before: nothing waits for it now
	p.gate.shut()            // nor for the first pair's logins
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, wk := range p.workers[p.taken:] {
		wk.close()
	}
	p.taken = len(p.workers)
	if p.trimmed != nil {
		<-p.trimmed
	}
}
