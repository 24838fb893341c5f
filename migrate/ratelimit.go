package migrate

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// Rate limits (--max-bytes-per-second, --max-messages-per-second) and the
// message size cap (--max-message-size) are wrappers around the engine's
// endpoints, put in place by whoever builds the Job's OpenSource and
// OpenSink; the engine itself knows nothing of them.
//
// Limits pace the source side: the message token is taken before a message
// is handed to the engine, and the bytes as its body is read, so the whole
// pipe (source read, destination write) runs at the pace. One Limits value
// is shared by every worker of a run: the rates are for the run as a whole,
// whatever --jobs is. Header fetches (dedup) are not counted.

// Clock is the time a Limiter sees: real time, or a fake one in tests.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx is done, and returns ctx.Err() then.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Limiter is a token bucket that may go into debt: Wait(n) takes n tokens at
// once, even more than the bucket holds, and then waits until the balance
// is back at zero. A caller therefore never waits longer than its own share
// plus the debts of those who came before it, and over any stretch of time
// at most rate*t + burst tokens are taken. It is safe for concurrent use.
type Limiter struct {
	mu     sync.Mutex
	rate   float64 // tokens per second, > 0
	burst  float64 // the most tokens the bucket holds
	tokens float64 // may be negative: a debt waited off by the last taker
	last   time.Time
	clock  Clock
}

// NewLimiter returns a full bucket of burst tokens refilled at rate tokens
// per second. A nil clock means real time.
func NewLimiter(rate, burst float64, clock Clock) *Limiter {
	if clock == nil {
		clock = realClock{}
	}
	if burst < 0 {
		burst = 0
	}
	return &Limiter{rate: rate, burst: burst, tokens: burst, last: clock.Now(), clock: clock}
}

// Wait takes n tokens and waits until they are paid for, or ctx is done.
func (l *Limiter) Wait(ctx context.Context, n float64) error {
	l.mu.Lock()
	now := l.clock.Now()
	if elapsed := now.Sub(l.last).Seconds(); elapsed > 0 {
		l.tokens = min(l.burst, l.tokens+elapsed*l.rate)
		l.last = now
	}
	l.tokens -= n
	var wait time.Duration
	if l.tokens < 0 {
		wait = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if wait <= 0 {
		return ctx.Err()
	}
	return l.clock.Sleep(ctx, wait)
}

// Limits are the pacing of one run: a byte bucket, a message bucket, or both.
type Limits struct {
	Bytes    *Limiter // nil: bytes are not limited
	Messages *Limiter // nil: messages are not limited
	// chunk bounds one paced read, so that no single wait is longer than
	// about an eighth of a second when the pipe is otherwise idle.
	chunk int
}

// NewLimits returns the limits for bytesPerSecond and messagesPerSecond
// (zero or less: no limit on that one), or nil when neither is set. The
// byte bucket holds an eighth of a second's worth (at least 4 KiB), the
// message bucket one message. A nil clock means real time.
func NewLimits(bytesPerSecond int64, messagesPerSecond float64, clock Clock) *Limits {
	if bytesPerSecond <= 0 && messagesPerSecond <= 0 {
		return nil
	}
	l := &Limits{}
	if bytesPerSecond > 0 {
		burst := max(float64(bytesPerSecond)/8, 4096)
		l.Bytes = NewLimiter(float64(bytesPerSecond), burst, clock)
		l.chunk = int(burst)
	}
	if messagesPerSecond > 0 {
		l.Messages = NewLimiter(messagesPerSecond, 1, clock)
	}
	return l
}

// String says what is limited, for a log line.
func (l *Limits) String() string {
	switch {
	case l == nil:
		return "no limit"
	case l.Bytes != nil && l.Messages != nil:
		return fmt.Sprintf("%.0f bytes/s and %g messages/s", l.Bytes.rate, l.Messages.rate)
	case l.Bytes != nil:
		return fmt.Sprintf("%.0f bytes/s", l.Bytes.rate)
	default:
		return fmt.Sprintf("%g messages/s", l.Messages.rate)
	}
}

// LimitSource paces src's Fetch by l (shared by every source of the run).
// A nil l returns src as it is. The wrapper keeps src's Deleter.
//
// The engine finds src's optional interfaces (Deleter, ...) through Unwrap.
func LimitSource(src Source, l *Limits) Source {
	if l == nil || src == nil {
		return src
	}
	return &limitedSource{Source: src, l: l}
}

type limitedSource struct {
	Source
	l *Limits
}

// Unwrap returns the source inside.
func (s *limitedSource) Unwrap() Source { return s.Source }

func (s *limitedSource) Fetch(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(m formats.Message, body io.Reader) error) error {
	return s.Source.Fetch(ctx, folder, msgs, s.paced(ctx, fn))
}

// StartFetch is the source's StartFetch, paced as Fetch is (without it,
// As would find the source's own and pass the limits by).
func (s *limitedSource) StartFetch(folder formats.Folder, msgs []formats.Message) func(context.Context, func(formats.Message, io.Reader) error) error {
	fs, ok := As[FetchStarter](s.Source)
	if !ok {
		return nil
	}
	fetch := fs.StartFetch(folder, msgs)
	if fetch == nil {
		return nil
	}
	return func(ctx context.Context, fn func(formats.Message, io.Reader) error) error {
		return fetch(ctx, s.paced(ctx, fn))
	}
}

// paced is fn behind the limits.
func (s *limitedSource) paced(ctx context.Context, fn func(m formats.Message, body io.Reader) error) func(formats.Message, io.Reader) error {
	return func(m formats.Message, body io.Reader) error {
		if s.l.Messages != nil {
			if err := s.l.Messages.Wait(ctx, 1); err != nil {
				return err
			}
		}
		if s.l.Bytes != nil && formats.UnreadableErr(body) == nil {
			body = &pacedReader{ctx: ctx, r: body, l: s.l.Bytes, chunk: s.l.chunk}
		}
		return fn(m, body)
	}
}

// pacedReader pays for every byte it reads, in reads of at most chunk bytes.
type pacedReader struct {
	ctx   context.Context
	r     io.Reader
	l     *Limiter
	chunk int
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.chunk > 0 && len(b) > p.chunk {
		b = b[:p.chunk]
	}
	n, err := p.r.Read(b)
	if n > 0 {
		if werr := p.l.Wait(p.ctx, float64(n)); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// LimitMessageSize refuses, before sending a byte of it, every message whose
// size is known and larger than maxBytes: Store returns a *MessageError, so
// the engine names the message in the report and goes on (exit 3). A message
// of unknown size (POP3, size -1) is passed on: the destination judges it.
// maxBytes <= 0 returns dst as it is. The engine finds dst's optional
// interfaces (Committer, Flusher, ...) through Unwrap.
func LimitMessageSize(dst Sink, maxBytes int64) Sink {
	if maxBytes <= 0 || dst == nil {
		return dst
	}
	return &sizeSink{Sink: dst, max: maxBytes}
}

type sizeSink struct {
	Sink
	max int64
}

// Unwrap returns the sink inside.
func (s *sizeSink) Unwrap() Sink { return s.Sink }

func (s *sizeSink) Store(ctx context.Context, folder formats.Folder, m formats.Message, size int64, body io.Reader) (string, error) {
	if n := max(size, m.Size); n > s.max {
		return "", &MessageError{Err: fmt.Errorf("message of %d bytes is larger than the limit of %d bytes (--max-message-size): not sent", n, s.max)}
	}
	return s.Sink.Store(ctx, folder, m, size, body)
}
