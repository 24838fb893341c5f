package imap

// The FETCH of BODY[] that go-imap cannot read.
//
// Cyrus 3.6 answers BODY[] of a stored message that holds a NUL byte with a
// literal8 (`BODY[] ~{n}`, RFC 3516's form, which RFC 3516 allows only in a
// BINARY answer). go-imap v2.0.0-beta.8's FETCH parser takes BODY[] as an
// nstring only: it fails ("imapwire: expected nstring, got "{""), its
// reader closes the connection, and every later attempt fails the same way,
// so no message of that folder was ever copied.
//
// Single-part messages with NUL bytes are already fetched as BINARY[] (which
// go-imap reads as a literal8; see Fetch). For the rest — a multipart message
// with a NUL in a part, an encoded message with a NUL — Fetch falls back to
// rawFetch when go-imap fails to parse a BODY[] answer: the main connection
// is dialled again (go-imap closed it), and the messages not delivered yet are
// fetched over a connection of their own, logged in as the appender's is,
// whose reader takes `{n}` and `~{n}` alike. The bytes are what the server
// stored: a literal8 is exact, nothing is decoded.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// unreadableResponse tells whether err is go-imap's parser failing on what
// the server sent (the literal8 above), rather than a lost connection or a
// refusal.
func unreadableResponse(err error) bool {
	var ie *imap.Error
	return err != nil && !errors.As(err, &ie) && strings.Contains(err.Error(), "imapwire: expected")
}

// fetchBodies is the BODY.PEEK[] part of Fetch: go-imap first, and where
// the server offers BINARY (so literal8 can occur) and go-imap cannot parse
// an answer, the messages not yet delivered over rawFetch. fnErr is set by
// deliver when the caller's function failed.
func (m *IMAP) fetchBodies(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	deliver func(formats.Message, imap.LiteralReader) error, delivered map[uint32]bool, fnErr *error) error {
	err := m.fetchSections(ctx, folder, msgs, bodyItem, deliver)
	if err == nil || *fnErr != nil || ctx.Err() != nil || !m.caps.Has(imap.CapBinary) || !unreadableResponse(err) {
		return err
	}
	var left []formats.Message
	for _, msg := range msgs {
		if !delivered[msg.UID] {
			left = append(left, msg)
		}
	}
	if err := m.redial(ctx); err != nil {
		return err
	}
	return m.rawFetch(ctx, folder, left, deliver)
}

// redial replaces the main connection, which go-imap closed after a parse
// error, with a new one logged in the same way.
func (m *IMAP) redial(ctx context.Context) error {
	n, err := DialIMAP(ctx, m.cfg)
	if err != nil {
		return err
	}
	m.c.Close()
	m.c, m.caps, m.auth = n.c, n.caps, n.auth
	m.selected = ""
	return nil
}

var (
	literalAtEnd = regexp.MustCompile(`~?\{(\d+)\+?\}$`)
	fetchStart   = regexp.MustCompile(`(?i)^\* (\d+) FETCH \(`)
	uidItem      = regexp.MustCompile(`(?i)[( ]UID (\d+)`)
	bodyItemEnd  = regexp.MustCompile(`(?i)[( ]BODY\[\] ?$`)
)

// rawFetch runs UID FETCH (UID BODY.PEEK[]) for msgs over a connection of
// its own and passes each BODY[] to fn, from a literal or a literal8. A
// message the server does not send (expunged meanwhile) is left out, as
// fetchSections leaves it out.
func (m *IMAP) rawFetch(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(formats.Message, imap.LiteralReader) error) error {
	if len(msgs) == 0 {
		return nil
	}
	a, err := dialAppender(ctx, m.cfg, m.auth)
	if err != nil {
		return err
	}
	defer a.conn.Close()
	stop := context.AfterFunc(ctx, func() { a.conn.Close() })
	defer stop()
	r := &rawFetcher{m: m, a: a, ctx: ctx, fn: fn, byUID: make(map[uint32]formats.Message, len(msgs)), done: map[uint32]bool{}}
	r.rd = &deadlineReader{a: a, r: a.br}
	a.conn.SetDeadline(time.Now().Add(a.timeout))
	if err := a.simple("EXAMINE " + quoteIMAP(formats.EncodeMailboxUTF7(folder.Name))); err != nil {
		var no *errNo
		if asErrNo(err, &no) {
			return fmt.Errorf("imap: %s: examine %q: %s", m.cfg, folder.Name, no.text)
		}
		return r.fail(err)
	}
	var set imap.UIDSet
	for _, msg := range msgs {
		r.byUID[msg.UID] = msg
		set.AddNum(imap.UID(msg.UID))
	}
	tag := a.nextTag()
	a.bw.WriteString(tag + " UID FETCH " + set.String() + " (UID BODY.PEEK[])\r\n")
	if err := a.bw.Flush(); err != nil {
		return r.fail(err)
	}
	for {
		line, err := r.readLine()
		if err != nil {
			return r.fail(err)
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			status, text, _ := strings.Cut(rest, " ")
			switch strings.ToUpper(status) {
			case "OK":
				return nil
			case "NO", "BAD":
				return fmt.Errorf("imap: %s: fetch: %s %s", m.cfg, status, strings.TrimSpace(text))
			}
			return r.fail(fmt.Errorf("malformed answer to %s: %s", tag, clip(line)))
		}
		if err := r.untagged(line); err != nil {
			return err
		}
	}
}

// rawFetcher reads the answer to rawFetch's UID FETCH on its own connection.
type rawFetcher struct {
	m     *IMAP
	a     *appender
	ctx   context.Context
	fn    func(formats.Message, imap.LiteralReader) error
	rd    *deadlineReader
	byUID map[uint32]formats.Message
	done  map[uint32]bool
}

func (r *rawFetcher) fail(err error) error {
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	return &migrate.RetryableError{Err: fmt.Errorf("imap: %s: fetch: %w", r.m.cfg, err)}
}

func (r *rawFetcher) readLine() (string, error) {
	r.a.conn.SetReadDeadline(time.Now().Add(r.a.timeout))
	line, err := r.a.br.ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// untagged handles one untagged response: a FETCH (its BODY[] literal
// delivered), a BYE, or other data skipped with its literals.
func (r *rawFetcher) untagged(line string) error {
	fs := fetchStart.FindStringSubmatch(line)
	if fs == nil {
		if untagged, ok := strings.CutPrefix(line, "* "); ok {
			if st, _, _ := strings.Cut(untagged, " "); strings.EqualFold(st, "BYE") {
				return r.fail(fmt.Errorf("server closed the connection: %s", clip(line)))
			}
		}
		if err := skipLiterals(line, r.readLine, r.rd); err != nil {
			return r.fail(err)
		}
		return nil
	}
	seq, _ := strconv.ParseUint(fs[1], 10, 32)
	text, held, err := r.literals(line)
	if err != nil || held == nil {
		return err
	}
	uid := rawUID(text)
	if uid == 0 {
		uid = r.m.seqUID.get(uint32(seq))
	}
	if _, wanted := r.byUID[uid]; wanted && !r.done[uid] {
		return r.deliver(uid, bytes.NewReader(held), int64(len(held)))
	}
	return nil
}

// literals reads a FETCH response's literals, delivering a wanted BODY[]
// whose UID came before it, and returns the response's text outside its
// literals and a BODY[] that came before its UID (held).
func (r *rawFetcher) literals(line string) (text string, held []byte, err error) {
	text = line
	for {
		lm := literalAtEnd.FindStringSubmatchIndex(line)
		if lm == nil {
			return text, held, nil
		}
		n, err := strconv.ParseInt(line[lm[2]:lm[3]], 10, 64)
		if err != nil {
			return "", nil, r.fail(fmt.Errorf("bad literal in %s", clip(line)))
		}
		lit := io.LimitReader(r.rd, n)
		uid := rawUID(text)
		_, wanted := r.byUID[uid]
		switch {
		case !bodyItemEnd.MatchString(line[:lm[0]]):
		case uid == 0:
			// The UID follows the literal (RFC 3501 allows any order):
			// keep the body until the response names it.
			if held, err = io.ReadAll(lit); err != nil || int64(len(held)) != n {
				return "", nil, r.fail(&migrate.CutInsideMessageError{Err: fmt.Errorf("connection ended inside a literal")})
			}
		case wanted && !r.done[uid]:
			if err := r.deliver(uid, lit, n); err != nil {
				return "", nil, err
			}
		}
		if _, err := io.Copy(io.Discard, lit); err != nil { // what was not read above
			return "", nil, r.fail(err)
		}
		if line, err = r.readLine(); err != nil {
			return "", nil, r.fail(err)
		}
		text += " " + line
	}
}

func (r *rawFetcher) deliver(uid uint32, body io.Reader, n int64) error {
	lr := &formats.CountingReader{R: body}
	ferr := r.fn(r.byUID[uid], literal{lr, n})
	io.Copy(io.Discard, lr)
	if lr.N != n {
		return r.fail(&migrate.CutInsideMessageError{Err: fmt.Errorf("message UID %d: connection ended after %d of %d bytes", uid, lr.N, n)})
	}
	r.done[uid] = true
	return ferr
}

// rawUID is the UID a FETCH response's text names, or 0.
func rawUID(text string) uint32 {
	if u := uidItem.FindStringSubmatch(text); u != nil {
		v, _ := strconv.ParseUint(u[1], 10, 32)
		return uint32(v)
	}
	return 0
}

// skipLiterals reads past the literals of an untagged response that line
// begins.
func skipLiterals(line string, readLine func() (string, error), r io.Reader) error {
	for {
		lm := literalAtEnd.FindStringSubmatchIndex(line)
		if lm == nil {
			return nil
		}
		n, _ := strconv.ParseInt(line[lm[2]:lm[3]], 10, 64)
		if got, err := io.CopyN(io.Discard, r, n); err != nil || got != n {
			return fmt.Errorf("connection ended inside a literal")
		}
		var err error
		if line, err = readLine(); err != nil {
			return err
		}
	}
}

// deadlineReader reads through the appender's buffered reader, pushing the
// read deadline on with every read: a literal may take long, a silent
// server may not.
type deadlineReader struct {
	a *appender
	r io.Reader
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.a.conn.SetReadDeadline(time.Now().Add(d.a.timeout))
	return d.r.Read(p)
}
