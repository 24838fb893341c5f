package migrate

import (
	"context"
	"sync"
)

// Server facts: every connection to one side of a run asks the server the
// same questions once logged in (IMAP: LIST "" "" for the hierarchy
// separator, NAMESPACE), and gets the same answers: one user, one server.
// On a slow link each asking costs a round trip on the way to a worker's
// first folder, and the folders-first CREATE round waits for every
// pre-dialled pair (createfirst.go), so it waited for theirs too: at 80 ms
// round trip the first APPEND went out 740 ms into the run. The engine
// hands each side's connections one ServerFacts in the context of
// OpenSource and OpenSink; the first connection asks and the others take
// its answers, waiting for them if it is still asking. A connection that
// fails to ask leaves the question to the next one.

// ServerFacts is what one connection of a side learned of its server, for
// the side's other connections.
type ServerFacts struct {
	mu       sync.Mutex
	v        any
	learning chan struct{} // closed when the connection asking is done
}

type serverFactsKey struct{}

// WithServerFacts returns ctx carrying f, for ServerFactsOf: the engine
// opens each side's connections so (and an endpoint's test, two
// connections of one side).
func WithServerFacts(ctx context.Context, f *ServerFacts) context.Context {
	return context.WithValue(ctx, serverFactsKey{}, f)
}

// ServerFactsOf returns the facts shared by the connections of the side
// being opened with ctx (nil outside the engine's OpenSource and OpenSink).
func ServerFactsOf(ctx context.Context) *ServerFacts {
	f, _ := ctx.Value(serverFactsKey{}).(*ServerFacts)
	return f
}

// Learn returns the facts a connection of the side learned, calling learn
// itself when none did yet and no other connection is asking (a nil f
// always calls it). What learn returns without an error is kept for the
// side's later connections.
func (f *ServerFacts) Learn(ctx context.Context, learn func() (any, error)) (any, error) {
	if f == nil {
		return learn()
	}
	for {
		f.mu.Lock()
		if f.v != nil {
			v := f.v
			f.mu.Unlock()
			return v, nil
		}
		if f.learning == nil {
			done := make(chan struct{})
			f.learning = done
			f.mu.Unlock()
			v, err := learn()
			f.mu.Lock()
			if err == nil && v != nil {
				f.v = v
			}
			f.learning = nil
			f.mu.Unlock()
			close(done)
			return v, err
		}
		wait := f.learning
		f.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// sideFacts are a run's ServerFacts, one per side.
type sideFacts struct {
	src, dst ServerFacts
}

// openSource is the job's OpenSource with the source's shared facts.
func (e *engine) openSource(ctx context.Context) (Source, error) {
	return e.job.OpenSource(WithServerFacts(ctx, &e.facts.src))
}

// openSink is the job's OpenSink with the destination's shared facts.
func (e *engine) openSink(ctx context.Context) (Sink, error) {
	return e.job.OpenSink(WithServerFacts(ctx, &e.facts.dst))
}
