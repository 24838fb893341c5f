package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/mailferry/mailferry/migrate/mailconn"
)

// pop3Wire is the net.Conn go-pop3 runs on (given to it through Opt.Dialer).
// Under it: the TCP connection with deadlines, or TLS over it, swapped by
// setConn after STLS. Over it: the library's own bufio.Reader (4096 bytes)
// and bufio.Writer.
//
// Read hands the library one whole line per call, never more, so the
// library's reader holds nothing once it has returned a line: what follows
// (a message after the +OK to RETR, a SASL challenge, plaintext injected
// after the +OK to STLS) is still in r, where our own readers find it. Read
// also notes the first line after mark, the status line of the library call
// in progress, so that reply can classify it: the library's errors are plain
// strings that do not tell -ERR from a broken connection, and it takes an
// empty line for +OK.
//
// Write passes the library's flushed command lines on; while corked they
// are held in w, so that a window of pipelined commands goes out in one
// write.
type pop3Wire struct {
	net.Conn // deadlineConn, or TLS over one
	r        *bufio.Reader
	w        *bufio.Writer
	corked   bool

	marked bool   // the next line read is a status line
	status string // that line, without its line ending
	err    error  // the first read or write failure: the stream is out of step
}

func newPOP3Wire(c net.Conn) *pop3Wire {
	w := &pop3Wire{marked: true} // the first line is the greeting
	w.setConn(c)
	return w
}

func (w *pop3Wire) setConn(c net.Conn) {
	w.Conn = c
	w.r = bufio.NewReaderSize(c, pop3BufSize)
	w.w = bufio.NewWriter(c)
}

func (w *pop3Wire) Read(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	line, err := w.r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull), err == nil && len(line) > len(p):
		err = fmt.Errorf("%w: a response line longer than %d bytes", mailconn.ErrProtocol, min(len(p), pop3BufSize))
	case err == io.EOF:
		err = io.ErrUnexpectedEOF // the library reads only when it expects a line
	}
	if err != nil {
		w.err = err
		return 0, err
	}
	if w.marked {
		w.status, w.marked = string(trimEOL(line)), false
	}
	return copy(p, line), nil
}

func (w *pop3Wire) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.w.Write(p)
	if err == nil && !w.corked {
		err = w.w.Flush()
	}
	if err != nil {
		w.err = err
	}
	return n, err
}

// cork holds written command lines until uncork sends them in one write.
func (w *pop3Wire) cork() { w.corked = true }

func (w *pop3Wire) uncork() error {
	w.corked = false
	if w.err != nil {
		return w.err
	}
	if err := w.w.Flush(); err != nil {
		w.err = err
	}
	return w.err
}

// mark starts a library call: the next line read is its status line.
func (w *pop3Wire) mark() { w.marked, w.status = true, "" }

// reply classifies the status line of a library call that returned libErr:
// ok with the text after +OK, not ok with the text after -ERR, or an error
// (the connection failed, or the line is neither, or the library and the
// line disagree, e.g. "+OKtext", which the library refuses without reading
// the rest of the answer).
func (w *pop3Wire) reply(libErr error) (ok bool, text string, err error) {
	if w.err != nil {
		return false, "", w.err
	}
	line := w.status
	switch {
	case w.marked:
		// No line was read, and no I/O failed: not a call that reads one.
	case libErr == nil && strings.HasPrefix(line, "+OK"):
		return true, strings.TrimSpace(line[3:]), nil
	case libErr != nil && strings.HasPrefix(line, "-ERR"):
		return false, strings.TrimSpace(line[4:]), nil
	}
	return false, "", fmt.Errorf("%w: %q", mailconn.ErrProtocol, mailconn.Printable(line, 80))
}

// readLine reads one line ourselves (a SASL continuation, which the
// library's ReadOne refuses), without its line ending. Lines longer than
// the read buffer are refused.
func (w *pop3Wire) readLine() (string, error) {
	if w.err != nil {
		return "", w.err
	}
	b, err := w.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		err = fmt.Errorf("%w: a response line longer than %d bytes", mailconn.ErrProtocol, pop3BufSize)
	} else if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		w.err = err
		return "", err
	}
	return string(trimEOL(b)), nil
}

func trimEOL(b []byte) []byte {
	return bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
}

// pop3Dialer is a go-pop3 Opt.Dialer made of a function.
type pop3Dialer func() (net.Conn, error)

// Dial ignores its arguments: the library builds the address from Host and
// Port with "%s:%d", which breaks IPv6 literals; the function knows cfg.Addr.
func (d pop3Dialer) Dial(network, addr string) (net.Conn, error) { return d() }

// deadlineConn renews the read (write) deadline before every Read (Write):
// a transfer may take as long as it needs while data flows, and fails after
// timeout of silence.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}

// dotReader streams the body of a multi-line POP3 response (RFC 1939 3):
// at the start of a line, "." followed by CRLF (or a bare LF) ends the
// response and is not part of it; any other leading "." is a stuffed one
// and is removed. Every other byte, line endings included, is passed on as
// it arrived, and lines may be of any length.
//
// It returns io.EOF only once the terminator has been read. If the
// connection ends first, it returns io.ErrUnexpectedEOF (or the read error)
// and keeps it in err, so the caller can tell a cut message from a whole
// one whatever fn did with the error. POP3 servers always end the last line
// with CRLF before the terminator, so a message ending without a line break
// cannot be represented (the server adds one); what the server sends is what
// the reader gives.
type dotReader struct {
	r    *bufio.Reader
	mid  bool  // inside a line (not at its start)
	done bool  // terminator read
	err  error // the connection failed
}

func (d *dotReader) Read(p []byte) (int, error) {
	if d.done {
		return 0, io.EOF
	}
	if d.err != nil {
		return 0, d.err
	}
	if d.r == nil {
		return 0, errors.New("pop3: message reader used after its callback returned")
	}
	n := 0
	for n < len(p) {
		if !d.mid {
			if n > 0 && d.r.Buffered() < 3 {
				return n, nil // return what we have rather than wait
			}
			b, err := d.r.Peek(1)
			if err != nil {
				return n, d.fail(err)
			}
			if b[0] == '.' {
				b, err = d.r.Peek(2)
				if err != nil {
					return n, d.fail(err)
				}
				if b[1] == '\n' {
					d.r.Discard(2)
					return d.end(n)
				}
				if b[1] == '\r' {
					b, err = d.r.Peek(3)
					if err != nil {
						return n, d.fail(err)
					}
					if b[2] == '\n' {
						d.r.Discard(3)
						return d.end(n)
					}
				}
				d.r.Discard(1) // a stuffed dot
			}
			d.mid = true
		}
		if d.r.Buffered() == 0 {
			if n > 0 {
				return n, nil
			}
			if _, err := d.r.Peek(1); err != nil {
				return n, d.fail(err)
			}
		}
		chunk, _ := d.r.Peek(min(d.r.Buffered(), len(p)-n))
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			chunk = chunk[:i+1]
			d.mid = false
		}
		n += copy(p[n:], chunk)
		d.r.Discard(len(chunk))
	}
	return n, nil
}

func (d *dotReader) end(n int) (int, error) {
	d.done = true
	if n > 0 {
		return n, nil
	}
	return 0, io.EOF
}

func (d *dotReader) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	d.err = fmt.Errorf("message cut short: %w", err)
	return d.err
}
