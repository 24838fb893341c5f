// Package faultproxy is a TCP proxy for tests that puts a bad network
// between a client and a server: connections cut after a number of bytes,
// stalls, latency and a bandwidth limit.
//
// A Proxy listens on 127.0.0.1:0 and forwards every accepted connection to
// one target address. The faults of each connection are drawn, when it is
// accepted, from a math/rand/v2 source seeded with Faults.Seed, and the same
// number of values is drawn for every connection: the n-th connection of a
// run gets the same faults with the same seed, whatever happened to the
// connections before it. (Which of a client's connections is the n-th one
// is up to the client's own timing.)
//
// Byte counts are of bytes forwarded. A cut forwards exactly the chosen
// number of bytes in its direction and then closes both sides, so a cut can
// land anywhere: in a greeting, in a command line, in the middle of a
// literal. Counting in both directions together (Both) is exact up to the
// bytes the other direction has in flight at that moment.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Dir says which bytes a byte count counts.
type Dir int

const (
	// Both counts the bytes of both directions together.
	Both Dir = iota
	// ServerToClient counts the bytes the target sends (downstream).
	ServerToClient
	// ClientToServer counts the bytes the client sends (upstream).
	ClientToServer
)

func (d Dir) String() string {
	switch d {
	case ServerToClient:
		return "server->client"
	case ClientToServer:
		return "client->server"
	}
	return "both"
}

// Cut closes both sides of a connection once a number of bytes, drawn
// uniformly from [Min, Max], has been forwarded in direction Dir.
type Cut struct {
	Min, Max int64
	Dir      Dir
	// P is the probability that a connection gets a cut at all; 0 disables
	// cuts.
	P float64
	// FirstConns, when positive, limits cuts to the first FirstConns
	// connections.
	FirstConns int
	// MaxCuts, when positive, is the budget of cuts of the whole proxy: once
	// spent, the connections that would still be cut are left alone, so a
	// client that reconnects eventually gets through.
	MaxCuts int
	// Before, when set, replaces the byte count: the cut comes just before
	// the first occurrence of these bytes (at most 48) in direction Dir, e.g.
	// "OK [APPENDUID" downstream to lose the answer to an APPEND the server
	// has carried out. (If the occurrence began in an earlier write, the cut
	// comes in the middle of it.)
	Before []byte
	// Inject, with Before, is written in direction Dir just before that
	// cut: "* BYE Server shutting down\r\n" makes the cut a server's BYE.
	Inject []byte
}

// Stall stops forwarding in both directions of a connection for For, once
// a number of bytes drawn uniformly from [Min, Max] has been forwarded in
// direction Dir. Nothing is lost: after the stall the bytes flow on.
type Stall struct {
	Min, Max int64
	Dir      Dir
	// P is the probability that a connection stalls (once); 0 disables it.
	P          float64
	For        time.Duration
	FirstConns int // when positive, only the first FirstConns connections stall
}

// Faults is what a Proxy does to the connections it forwards. The zero
// value forwards faithfully.
type Faults struct {
	Seed          uint64
	CutAfterBytes Cut
	Stall         Stall
	// Latency delays every byte by this much in each direction (a round
	// trip gains twice Latency). Bytes are pipelined: a stream is delayed,
	// not slowed down.
	Latency time.Duration
	// BytesPerSecond, when positive, limits each direction of each
	// connection to this rate.
	BytesPerSecond int64
	// Tap, when set, is called with each chunk forwarded, after it was
	// written (a test counting commands; a benchmark's timeline). It runs
	// on the forwarding goroutine of conn's direction dir and must not
	// keep b.
	Tap func(conn int, dir Dir, b []byte)
	// Accepted, when set, is called with each connection's number as the
	// proxy accepts it, before it dials the server: when the client
	// dialled, whatever the server then takes to answer (a test ordering a
	// client's dials).
	Accepted func(conn int)
}

// Event is a fault that happened.
type Event struct {
	Conn int    // connection number, from 0 in accept order
	Kind string // "cut" or "stall"
	Dir  Dir    // the direction of the count
	At   int64  // bytes forwarded in Dir when it happened
	// Tail is up to the last 48 bytes forwarded, in the direction whose
	// write reached the count, before the fault.
	Tail []byte
}

func (e Event) String() string {
	return fmt.Sprintf("conn %d: %s after %d bytes %s (…%q)", e.Conn, e.Kind, e.At, e.Dir, e.Tail)
}

// Proxy is a running proxy. Its methods are safe for concurrent use.
type Proxy struct {
	target string
	f      Faults
	ln     net.Listener
	wg     sync.WaitGroup

	mu     sync.Mutex
	rng    *rand.Rand
	closed bool
	conns  int
	cuts   int
	events []Event
	up     int64 // bytes forwarded client->server, all connections
	down   int64 // and server->client
	active map[*conn]struct{}
}

// New starts a proxy on 127.0.0.1:0 that forwards to target.
func New(target string, f Faults) (*Proxy, error) {
	for _, r := range []struct {
		what     string
		min, max int64
		p        float64
	}{{"CutAfterBytes", f.CutAfterBytes.Min, f.CutAfterBytes.Max, f.CutAfterBytes.P},
		{"Stall", f.Stall.Min, f.Stall.Max, f.Stall.P}} {
		if r.p < 0 || r.p > 1 || r.min < 0 || r.max < r.min {
			return nil, fmt.Errorf("faultproxy: %s: want 0 <= Min <= Max and 0 <= P <= 1", r.what)
		}
	}
	if len(f.CutAfterBytes.Before) > tailLen {
		return nil, fmt.Errorf("faultproxy: CutAfterBytes.Before is longer than %d bytes", tailLen)
	}
	if f.Latency < 0 || f.BytesPerSecond < 0 || f.Stall.For < 0 {
		return nil, errors.New("faultproxy: negative Latency, BytesPerSecond or Stall.For")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		target: target, f: f, ln: ln,
		rng:    rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15)),
		active: map[*conn]struct{}{},
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to ("127.0.0.1:port").
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Stats returns how many connections were accepted and how many were cut.
func (p *Proxy) Stats() (connections, cuts int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns, p.cuts
}

// Traffic returns the bytes forwarded so far, over all connections.
func (p *Proxy) Traffic() (clientToServer, serverToClient int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.up, p.down
}

// Events returns the faults that happened, in order.
func (p *Proxy) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// Close stops listening, closes every connection (a stalled or delayed one
// too) and returns when all of the proxy's goroutines have ended.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	active := make([]*conn, 0, len(p.active))
	for c := range p.active {
		active = append(active, c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range active {
		c.kill()
	}
	p.wg.Wait()
	return err
}

// CutActive closes every connection open now, both sides, as a network
// failure would; the proxy goes on accepting new ones. It returns how many
// it cut.
func (p *Proxy) CutActive() int {
	p.mu.Lock()
	active := make([]*conn, 0, len(p.active))
	for c := range p.active {
		active = append(active, c)
	}
	p.cuts += len(active)
	p.mu.Unlock()
	for _, c := range active {
		c.kill()
	}
	return len(active)
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			cc.Close()
			return
		}
		c := &conn{p: p, id: p.conns, client: cc, done: make(chan struct{})}
		p.conns++
		c.cutAt, c.cutDir = p.draw(p.f.CutAfterBytes.P, p.f.CutAfterBytes.Min, p.f.CutAfterBytes.Max, p.f.CutAfterBytes.FirstConns, c.id), p.f.CutAfterBytes.Dir
		if pat := p.f.CutAfterBytes.Before; len(pat) > 0 && c.cutAt >= 0 {
			c.cutAt, c.cutBefore = -1, pat
		}
		c.stallAt, c.stallDir = p.draw(p.f.Stall.P, p.f.Stall.Min, p.f.Stall.Max, p.f.Stall.FirstConns, c.id), p.f.Stall.Dir
		p.active[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		if p.f.Accepted != nil {
			p.f.Accepted(c.id)
		}
		go c.run()
	}
}

// draw decides one fault of connection id: the byte count, or -1 for none.
// It draws two values whatever the outcome. Called with p.mu held.
func (p *Proxy) draw(prob float64, lo, hi int64, first, id int) int64 {
	r, at := p.rng.Float64(), lo+p.rng.Int64N(hi-lo+1)
	if r >= prob || (first > 0 && id >= first) {
		return -1
	}
	return at
}

// conn is one proxied connection.
type conn struct {
	p              *Proxy
	id             int
	client, server net.Conn
	done           chan struct{} // closed by kill
	killOnce       sync.Once

	mu         sync.Mutex
	up, down   int64 // bytes forwarded client->server, server->client
	cutAt      int64 // -1: no cut by count
	cutDir     Dir
	cutBefore  []byte // nil: no cut by content
	stallAt    int64  // -1: no stall
	stallDir   Dir
	stallUntil time.Time
}

func (c *conn) run() {
	defer c.p.wg.Done()
	defer func() {
		c.kill()
		c.p.mu.Lock()
		delete(c.p.active, c)
		c.p.mu.Unlock()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	d := net.Dialer{Timeout: 5 * time.Second}
	sc, err := d.DialContext(ctx, "tcp", c.p.target)
	cancel()
	if err != nil {
		return
	}
	c.mu.Lock()
	select {
	case <-c.done: // killed (Close) while dialling
		c.mu.Unlock()
		sc.Close()
		return
	default:
	}
	c.server = sc
	c.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pump(sc, c.client, ClientToServer) }()
	go func() { defer wg.Done(); c.pump(c.client, sc, ServerToClient) }()
	wg.Wait()
}

// kill closes both sides; every pump then ends.
func (c *conn) kill() {
	c.killOnce.Do(func() {
		close(c.done)
		c.client.Close()
		c.mu.Lock()
		if c.server != nil {
			c.server.Close()
		}
		c.mu.Unlock()
	})
}

type chunk struct {
	b      []byte
	due    time.Time
	pooled *[]byte // b's buffer, from chunkPool; nil for a small chunk's own copy
}

// chunkPool holds the read buffers: a chunk of at least smallChunk bytes
// travels in the buffer it was read into, which goes back here once
// written. Copying every chunk into a slice of its own cost a benchmark
// process carrying 417 MB through two proxies an eighth of the machine's
// time in page faults (perf: the kernel zeroing pages for a heap that grew
// and shrank), on two cores shared with the servers it stands between.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, maxChunk); return &b }}

// release gives a chunk's buffer back to the pool.
func (ck chunk) release() {
	if ck.pooled != nil {
		chunkPool.Put(ck.pooled)
	}
}

const (
	maxBatch   = 64 // chunks in one write, on a plain connection
	maxChunk   = 32 << 10
	smallChunk = 4 << 10 // smaller chunks are copied out of the read buffer
	maxQueued  = 1 << 16 // chunks in flight per direction
)

// pump forwards one direction: a reader stamps each chunk with the time it
// may leave, the writer applies latency, stall, throttle and cut.
func (c *conn) pump(dst, src net.Conn, dir Dir) {
	// The queue between reader and writer is what is "on the wire": with
	// Latency it must hold a round trip's worth of data however small the
	// reads are (a server writing one small message per write would
	// otherwise be held to queue length x read size per Latency, far below
	// what a real link with TCP window scaling carries). A small chunk is
	// copied to its own size and a larger one keeps its read buffer, so
	// the memory is at most eight times the bytes in flight.
	ch := make(chan chunk, maxQueued)
	var rerr error
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(ch)
		var bp *[]byte
		var buf []byte
		for {
			if buf == nil {
				bp = chunkPool.Get().(*[]byte)
				buf = *bp
			}
			n, err := src.Read(buf)
			if n > 0 {
				ck := chunk{b: buf[:n], due: time.Now().Add(c.p.f.Latency)}
				if n < smallChunk {
					ck.b = bytes.Clone(ck.b) // the read buffer is read into again
				} else {
					ck.pooled, buf = bp, nil // handed over; the next read takes another
				}
				select {
				case ch <- ck:
				case <-c.done:
					return
				}
			}
			if err != nil {
				rerr = err
				return
			}
		}
	}()
	w := &writer{c: c, dst: dst, dir: dir}
	// plain: no fault by count or content on this connection and no
	// throttle, so the chunks due by the time one is written go out with
	// it, in one write (writev). One write a chunk, each after a timer of
	// its own, made the proxy the costliest process of a slow-link
	// benchmark after the servers, on the two cores it shares with them
	// and mailferry; a network adds latency without taking CPU.
	c.mu.Lock()
	plain := c.cutAt < 0 && c.cutBefore == nil && c.stallAt < 0 && c.p.f.BytesPerSecond == 0
	c.mu.Unlock()
	var (
		held     chunk // received from ch, not due yet: the next one written
		haveHeld bool
		batch    []chunk
	)
	ok := true
	for ok {
		var ck chunk
		if haveHeld {
			ck, haveHeld = held, false
		} else {
			select {
			case got, more := <-ch:
				if !more {
					ok = false
					continue
				}
				ck = got
			case <-c.done:
				ok = false
				continue
			}
		}
		if !c.sleepUntil(ck.due) {
			ck.release()
			c.kill()
			break
		}
		batch = append(batch[:0], ck)
		if plain {
			now := time.Now()
		gather:
			for len(batch) < maxBatch {
				select {
				case next, more := <-ch:
					if !more {
						ok = false // written below; then the loop ends
						break gather
					}
					if next.due.After(now) {
						held, haveHeld = next, true
						break gather
					}
					batch = append(batch, next)
				default:
					break gather
				}
			}
		}
		var wrote bool
		if len(batch) == 1 {
			wrote = w.write(ck.b)
		} else {
			wrote = w.writeBatch(batch)
		}
		if !wrote {
			c.kill()
			ok = false
		}
		for _, b := range batch {
			if tap := c.p.f.Tap; tap != nil && wrote {
				tap(c.id, dir, b.b)
			}
			b.release()
		}
	}
	if haveHeld {
		held.release()
	}
	<-readerDone
	if errors.Is(rerr, io.EOF) {
		// A half close: pass it on, and let the other direction finish.
		if tc, isTCP := dst.(*net.TCPConn); isTCP {
			tc.CloseWrite()
		}
		return
	}
	c.kill()
}

// sleepUntil waits until t, or returns false when the connection is killed.
func (c *conn) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-c.done:
			return false
		default:
			return true
		}
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-c.done:
		return false
	}
}

// writer is the sending half of one direction.
type writer struct {
	c    *conn
	dst  net.Conn
	dir  Dir
	next time.Time // throttle: when the pipe is free again
	tail []byte
	bufs [][]byte // writeBatch's
}

// count returns the bytes forwarded as d counts them. Called with c.mu held.
func (c *conn) count(d Dir) int64 {
	switch d {
	case ServerToClient:
		return c.down
	case ClientToServer:
		return c.up
	}
	return c.up + c.down
}

func counts(d, dir Dir) bool { return d == Both || d == dir }

// write forwards b, or returns false when the connection was cut or broke.
func (w *writer) write(b []byte) bool {
	c := w.c
	c.mu.Lock()
	pat := c.cutBefore
	if !counts(c.cutDir, w.dir) {
		pat = nil
	}
	c.mu.Unlock()
	if pat != nil {
		hay := append(append([]byte(nil), w.tail...), b...)
		if i := bytes.Index(hay, pat); i >= 0 {
			k := max(0, i-len(w.tail))
			if !w.forward(b[:k]) {
				return false
			}
			c.mu.Lock()
			armed := c.cutBefore != nil
			c.cutBefore = nil
			ev := Event{Conn: c.id, Kind: "cut", Dir: c.cutDir, At: c.count(c.cutDir)}
			c.mu.Unlock()
			if armed && c.p.spendCut(ev, w.tail) {
				if inj := c.p.f.CutAfterBytes.Inject; len(inj) > 0 {
					w.forward(inj)
				}
				c.kill()
				return false
			}
			b = b[k:]
		}
	}
	return w.forward(b)
}

// writeBatch forwards the chunks of a plain connection (no fault by count
// or content, no throttle) in one write, or returns false when the
// connection broke.
func (w *writer) writeBatch(batch []chunk) bool {
	w.bufs = w.bufs[:0]
	var n int64
	for _, ck := range batch {
		w.bufs = append(w.bufs, ck.b)
		n += int64(len(ck.b))
	}
	bufs := net.Buffers(w.bufs) // WriteTo consumes its own copy of the slice
	if _, err := bufs.WriteTo(w.dst); err != nil {
		return false
	}
	w.keepTail(batch[len(batch)-1].b)
	w.counted(n)
	return true
}

// counted adds n bytes written to the connection's and the proxy's counts.
func (w *writer) counted(n int64) {
	c := w.c
	c.mu.Lock()
	if w.dir == ServerToClient {
		c.down += n
	} else {
		c.up += n
	}
	c.mu.Unlock()
	c.p.mu.Lock()
	if w.dir == ServerToClient {
		c.p.down += n
	} else {
		c.p.up += n
	}
	c.p.mu.Unlock()
}

// spendCut records a cut if the budget allows it.
func (p *Proxy) spendCut(ev Event, tail []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f.CutAfterBytes.MaxCuts > 0 && p.cuts >= p.f.CutAfterBytes.MaxCuts {
		return false
	}
	p.cuts++
	ev.Tail = append([]byte(nil), tail...)
	p.events = append(p.events, ev)
	return true
}

// forward writes b with the faults that go by count: stall, throttle, cut.
func (w *writer) forward(b []byte) bool {
	c, f := w.c, w.c.p.f
	for len(b) > 0 {
		if !w.check() {
			return false
		}
		n := int64(len(b))
		if f.BytesPerSecond > 0 {
			n = min(n, max(1, f.BytesPerSecond/50))
		}
		c.mu.Lock()
		if c.cutAt >= 0 && counts(c.cutDir, w.dir) {
			n = min(n, c.cutAt-c.count(c.cutDir))
		}
		if c.stallAt >= 0 && counts(c.stallDir, w.dir) {
			n = min(n, c.stallAt-c.count(c.stallDir))
		}
		stallUntil := c.stallUntil
		c.mu.Unlock()
		if n <= 0 {
			continue // a count was reached by the other direction: check acts on it
		}
		if !c.sleepUntil(stallUntil) {
			return false
		}
		if f.BytesPerSecond > 0 {
			// A late wake-up is made up for by the next pieces; an idle
			// pipe saves up at most 100 ms of credit.
			if floor := time.Now().Add(-100 * time.Millisecond); w.next.Before(floor) {
				w.next = floor
			}
			w.next = w.next.Add(time.Duration(n * int64(time.Second) / f.BytesPerSecond))
			if !c.sleepUntil(w.next) {
				return false
			}
		}
		if _, err := w.dst.Write(b[:n]); err != nil {
			return false
		}
		w.keepTail(b[:n])
		w.counted(n)
		b = b[n:]
	}
	return w.check()
}

// check acts on a count that has been reached: it cuts (returning false) or
// starts a stall.
func (w *writer) check() bool {
	c := w.c
	c.mu.Lock()
	var ev *Event
	if c.stallAt >= 0 && c.count(c.stallDir) >= c.stallAt {
		ev = &Event{Conn: c.id, Kind: "stall", Dir: c.stallDir, At: c.count(c.stallDir)}
		c.stallAt = -1
		c.stallUntil = time.Now().Add(c.p.f.Stall.For)
	}
	cut := false
	var cutEv *Event
	if c.cutAt >= 0 && c.count(c.cutDir) >= c.cutAt {
		cutEv = &Event{Conn: c.id, Kind: "cut", Dir: c.cutDir, At: c.count(c.cutDir)}
		c.cutAt = -1
	}
	c.mu.Unlock()
	p := c.p
	if ev != nil {
		p.mu.Lock()
		ev.Tail = append([]byte(nil), w.tail...)
		p.events = append(p.events, *ev)
		p.mu.Unlock()
	}
	if cutEv != nil {
		cut = p.spendCut(*cutEv, w.tail)
	}
	if cut {
		c.kill()
		return false
	}
	return true
}

const tailLen = 48

func (w *writer) keepTail(b []byte) {
	if len(b) > tailLen {
		b = b[len(b)-tailLen:]
	}
	w.tail = append(w.tail, b...)
	if len(w.tail) > tailLen {
		w.tail = append(w.tail[:0], w.tail[len(w.tail)-tailLen:]...)
	}
}
