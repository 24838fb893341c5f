package main

import (
	"bytes"
	"net"
	"strings"
	"sync"
)

// appendHold is a TCP proxy in front of an IMAP server that lets a run be
// killed at the worst moment: it forwards faithfully until the server
// answers an APPEND with OK, then withholds that answer and everything
// after it on every connection (the server has stored the message, the
// client does not know) and closes held. After release it forwards
// faithfully again, so the reruns reach the same destination URL (and
// state file) through it.
type appendHold struct {
	ln     net.Listener
	target string
	held   chan struct{} // closed when an APPEND's OK was withheld

	mu       sync.Mutex
	holding  bool
	released bool
	conns    []net.Conn
	heldOnce sync.Once
	stop     chan struct{} // closed by release
}

func newAppendHold(target string) (*appendHold, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &appendHold{ln: ln, target: target, held: make(chan struct{}), stop: make(chan struct{})}
	go h.accept()
	return h, nil
}

func (h *appendHold) Addr() string { return h.ln.Addr().String() }

func (h *appendHold) accept() {
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", h.target)
		if err != nil {
			c.Close()
			continue
		}
		h.mu.Lock()
		h.conns = append(h.conns, c, s)
		h.mu.Unlock()
		tags := &sync.Map{} // tags of APPEND commands sent on this connection
		go h.up(c, s, tags)
		go h.down(s, c, tags)
	}
}

// up forwards client -> server, noting the tag of each APPEND before the
// command reaches the server.
func (h *appendHold) up(c, s net.Conn, tags *sync.Map) {
	defer s.Close()
	forwardLines(c, s, func(line []byte) bool {
		if f := strings.Fields(string(line[:min(len(line), 80)])); len(f) >= 2 && strings.EqualFold(f[1], "APPEND") {
			tags.Store(f[0], true)
		}
		return true
	})
}

// down forwards server -> client line by line; the first tagged OK to an
// APPEND (while not released) starts the hold, and a held connection
// forwards nothing more until release closes it.
func (h *appendHold) down(s, c net.Conn, tags *sync.Map) {
	defer c.Close()
	forwardLines(s, c, func(line []byte) bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.released {
			return true
		}
		if f := strings.Fields(string(line[:min(len(line), 80)])); !h.holding && len(f) >= 2 && strings.EqualFold(f[1], "OK") {
			if _, ok := tags.Load(f[0]); ok {
				h.holding = true
				h.heldOnce.Do(func() { close(h.held) })
			}
		}
		return !h.holding
	})
	<-h.stop
}

// forwardLines copies src to dst in whole lines, asking ok about each line
// before it is written; it stops at the first line ok refuses.
func forwardLines(src, dst net.Conn, ok func(line []byte) bool) {
	buf := make([]byte, 32<<10)
	var pending []byte
	for {
		n, err := src.Read(buf)
		pending = append(pending, buf[:n]...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			if !ok(pending[:i+1]) {
				return
			}
			if _, werr := dst.Write(pending[:i+1]); werr != nil {
				return
			}
			pending = pending[i+1:]
		}
		if err != nil {
			dst.Write(pending)
			return
		}
	}
}

// release ends the hold: held connections are closed, new ones forwarded
// faithfully.
func (h *appendHold) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.released {
		h.released = true
		close(h.stop)
		for _, c := range h.conns {
			c.Close()
		}
	}
}

// close stops the proxy and closes every connection it forwards.
func (h *appendHold) close() {
	h.ln.Close()
	h.release()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
}
