package migrate

import (
	"context"
	"errors"
	"net"
	"time"
)

// ErrInterrupted is what Run returns when its context was canceled (Ctrl-C,
// SIGTERM): what was stored is durable and recorded, and counted in the
// report; a rerun resumes.
var ErrInterrupted = errors.New("interrupted")

// An interrupted folder stops between two messages: the message in flight
// is finished, what is queued at the destination is committed and flushed,
// and then recorded, so that the count is what the destination holds. The
// source may take fetchGrace to come to a stop (the rest of a FETCH is
// read and dropped), the destination storeGrace to answer; past those the
// connections are closed and what is in flight is of unknown fate (a rerun
// finds it by its identity key).
const (
	fetchGrace = 5 * time.Second
	storeGrace = 30 * time.Second
)

// outlive returns a context that is canceled grace after ctx is, or when
// the returned function is called.
func outlive(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return c, func() { stop(); cancel() }
}

// unreachable reports whether err is a failure to reach a server at all
// (connection refused, no such host, no route, a dial timeout): at the
// start of a run that is an answer, not a lost connection to retry.
func unreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &dns) || errors.As(err, &op) && op.Op == "dial"
}

// startError is an error at the run's first connect that is not retried.
type startError struct{ msg string }

func (e *startError) Error() string { return e.msg }
