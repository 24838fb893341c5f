package formats

// mboxrd framing, written here with the standard library only.
//
// Why not github.com/emersion/go-mbox: its writer produces mboxo (">From "
// lines are not escaped again, so they cannot be told from escaped "From "
// lines on the way back), turns CRLF into LF, adds a blank line after every
// message and drops the From_ line on reading. An archive must give back the
// exact bytes it was given, so the codec is ours.
//
// Framing (what WriteMboxrdMessage writes):
//
//	From SENDER ASCTIME-DATE LF
//	BODY, with ">" put in front of every line that matches ^>*From
//	LF
//
// A "line" is what lies between LF bytes; a CR is an ordinary byte, so CRLF
// bodies keep their CRLF and bare-LF bodies keep their LF. Exactly one LF is
// always appended after the body, whatever the body ends with, and the reader
// takes exactly that one LF away again. Why decode(encode(x)) == x for every
// byte string x:
//   - after escaping, no line of the body starts with "From " (every such
//     line got a ">" and no ">" was taken away), so the first line that
//     starts with "From " after the From_ line is the next message's From_
//     line, or there is none and the file ends;
//   - the appended LF ends the body's last line, so the next From_ line
//     always starts a line, even after a body that ends without a newline,
//     in CR, or is empty;
//   - the reader removes one ">" from every line matching ^>+From , which is
//     exactly the inverse of the escaping (a line ">>From " was ">From ");
//   - the reader removes the one LF just before the next From_ line (or the
//     end of the file): the LF the writer appended.
// The From_ line itself ends in LF with a four-digit year before it, so the
// reader never mistakes the framing for CRLF (below).
//
// For a body that ends in a newline, this is the classic layout (a blank line
// before each From_ line), so other mbox readers see the same messages.
//
// Reading foreign files: a From_ line that ends in CRLF marks a CRLF file, and
// then the CRLF (not just the LF) before the next From_ line is the one that
// is taken away. Without escaping (mboxo) a body line that starts with "From "
// is only a separator when it looks like one: "From SENDER DATE" with a date
// that starts with a weekday and a month, or a lone sender token ("-", an
// address or Gmail's "<id>@xxx"). Anything that had to be guessed is reported
// as an MboxWarning, never decided silently.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MboxDateLayout is the asctime layout of the date on a From_ line as
// WriteMboxrdMessage writes it (always in UTC).
const MboxDateLayout = "Mon Jan _2 15:04:05 2006"

// DefaultMboxSender is written on the From_ line when no sender is given.
const DefaultMboxSender = "MAILER-DAEMON"

// maxMboxSender bounds the sender written on a From_ line.
const maxMboxSender = 256

// mboxBufSize is the read buffer of MboxReader and WriteMboxrdMessage. A
// From_ line must fit in it to be recognised.
const mboxBufSize = 64 << 10

var (
	fromPrefix = []byte("From ")
	utf8BOM    = []byte("\xef\xbb\xbf")
)

// MboxSender makes s fit on a From_ line: empty becomes DefaultMboxSender,
// spaces and control characters become '_', and it is cut to 256 bytes.
func MboxSender(s string) string {
	if s == "" {
		return DefaultMboxSender
	}
	if len(s) > maxMboxSender {
		s = s[:maxMboxSender]
	}
	b := []byte(s)
	for i, c := range b {
		if c <= ' ' || c == 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}

// mboxDate formats t for a From_ line. A zero time, or one whose year does
// not have four digits, is written as the zero time (year 0001), which the
// reader gives back as the zero time.
func mboxDate(t time.Time) string {
	t = t.UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		t = time.Time{}
	}
	return t.Format(MboxDateLayout)
}

// countWriter counts what reaches w.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteMboxrdMessage is WriteMboxMessage into an io.Writer without status
// lines. It holds the framed message in memory (the From_ line is completed
// after the body): for tests and small messages; stores use WriteMboxMessage.
func WriteMboxrdMessage(w io.Writer, from string, date time.Time, body io.Reader) (n int64, err error) {
	var buf memWriterAt
	if _, err := WriteMboxMessage(&buf, from, date, nil, body); err != nil {
		return 0, err
	}
	k, err := w.Write(buf)
	return int64(k), err
}

// memWriterAt is an in-memory io.WriterAt.
type memWriterAt []byte

func (m *memWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(*m) {
		*m = append(*m, make([]byte, end-len(*m))...)
	}
	copy((*m)[off:], p)
	return len(p), nil
}

// seqWriter writes sequentially into an io.WriterAt from offset 0.
type seqWriter struct {
	w   io.WriterAt
	off int64
}

func (s *seqWriter) Write(p []byte) (int, error) {
	n, err := s.w.WriteAt(p, s.off)
	s.off += int64(n)
	return n, err
}

// MboxAddedToken starts the token that ends every From_ line this package
// writes: "mailferry:h=H,t=T", where H is the number of bytes of status lines
// written right after the From_ line and T (0, 1 or 2) the number of bytes of
// line ending added after a message that did not end in LF. The reader takes
// exactly those bytes away again. Other readers ignore text after the year
// (mutt, Dovecot's "<sender> <date> <moreinfo>", Python, go-mbox, formail).
const MboxAddedToken = "mailferry:"

// maxMboxStatus bounds the status lines of one message.
const maxMboxStatus = 16 << 10

// MboxStatusLines renders flags as the header lines mutt, Dovecot and
// Python's mailbox read: "Status: RO" (R for \Seen; O, "not new", always),
// "X-Status: AFTD" (\Answered, \Flagged, \Draft, \Deleted; only when
// any) and "X-Keywords: K1 K2" (keywords; only when any; a keyword holding a
// space, a control character or a non-ASCII byte is left out). Each line
// ends in LF.
func MboxStatusLines(flags []string) []byte {
	has := map[string]bool{}
	var kw []string
	for _, f := range flags {
		switch lf := strings.ToLower(f); {
		case strings.HasPrefix(lf, "\\"):
			has[lf] = true
		case validKeyword(f) && !slices.Contains(kw, f):
			kw = append(kw, f)
		}
	}
	var b strings.Builder
	b.WriteString("Status: ")
	if has[strings.ToLower(FlagSeen)] {
		b.WriteByte('R')
	}
	b.WriteString("O\n")
	var xs []byte
	for _, m := range []struct {
		c    byte
		flag string
	}{{'A', FlagAnswered}, {'F', FlagFlagged}, {'T', FlagDraft}, {'D', FlagDeleted}} {
		if has[strings.ToLower(m.flag)] {
			xs = append(xs, m.c)
		}
	}
	if len(xs) > 0 {
		b.WriteString("X-Status: " + string(xs) + "\n")
	}
	if len(kw) > 0 {
		b.WriteString("X-Keywords: " + strings.Join(kw, " ") + "\n")
	}
	return []byte(b.String())
}

// MboxBaseLine renders the X-IMAPbase line that Dovecot keeps on the first
// message of an mbox file: "X-IMAPbase: V 0000000000 K1 K2", the file's
// UIDVALIDITY (never 0), the last UID given out (ten digits, as Dovecot
// writes it; 0: none yet) and the keywords its messages may carry. Dovecot
// takes a word of a message's X-Keywords line only when this line declares
// it (a delivered message cannot bring keywords of its own). Keywords that
// MboxStatusLines would leave out are left out here too. Ends in LF.
func MboxBaseLine(validity uint32, keywords []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "X-IMAPbase: %d 0000000000", max(validity, 1))
	var seen []string
	for _, k := range keywords {
		if strings.HasPrefix(k, "\\") || !validKeyword(k) || slices.Contains(seen, k) {
			continue
		}
		seen = append(seen, k)
		b.WriteString(" " + k)
	}
	b.WriteString("\n")
	return []byte(b.String())
}

func validKeyword(k string) bool {
	if k == "" || len(k) > 256 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// statusNames are the header names allowed in status lines.
var statusNames = map[string]bool{"status": true, "x-status": true, "x-keywords": true, "x-imapbase": true}

// validStatusLines reports whether b is status lines as MboxStatusLines
// (and MboxBaseLine) write them: complete LF-ended lines, each "Status:",
// "X-Status:", "X-Keywords:" or "X-IMAPbase:" with a value of printable
// ASCII.
func validStatusLines(b []byte) bool {
	if len(b) == 0 || b[len(b)-1] != '\n' || len(b) > maxMboxStatus {
		return false
	}
	for _, line := range bytes.SplitAfter(b[:len(b)-1], []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		i := bytes.IndexByte(line, ':')
		if i <= 0 || !statusNames[strings.ToLower(string(line[:i]))] {
			return false
		}
		for _, c := range line[i+1:] {
			if c < ' ' || c >= 0x7f {
				return false
			}
		}
	}
	return true
}

// StatusLinesFit reports whether status lines can go before a message that
// starts with msg: not before a continuation line (other readers would
// join it to the last status line), nor before a first line that is not a
// header field ("From " lines of a saved mbox, escaped as ">From ": other
// readers would end the header block there, and formail inserts a blank
// line). A message that starts with its blank line, or is empty, takes
// them, and so does one whose first header field follows a byte-order mark
// (formail splits before a From_ line only when a header field follows).
func StatusLinesFit(msg []byte) bool {
	line, _, _ := bytes.Cut(bytes.TrimPrefix(msg, utf8BOM), []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	switch {
	case len(line) == 0:
		return true
	case line[0] == ' ' || line[0] == '\t':
		return false
	}
	return isHeaderLine(line)
}

// WriteMboxMessage writes one message in mboxrd framing at offset 0 of w
// (an io.OffsetWriter places it in a file) and returns the bytes written:
//
//	From SENDER DATE mailferry:h=H,t=T LF
//	STATUS (H bytes: status lines, see MboxStatusLines; may be nil, and
//	        left out where they do not fit, see StatusLinesFit)
//	BODY, with ">" put in front of every line that matches ^>*From
//	the line ending the body lacked (T bytes: none, LF, or CRLF)
//	LF (the blank line every mbox reader expects before a From_ line)
//
// SENDER comes from MboxSender(from), DATE is asctime in UTC. T is known only
// after the body, so the digit is written into the From_ line at the end:
// the body is streamed, never held in memory.
func WriteMboxMessage(w io.WriterAt, from string, date time.Time, status []byte, body io.Reader) (n int64, err error) {
	if len(status) > 0 && !validStatusLines(status) {
		return 0, fmt.Errorf("mboxrd: bad status lines %q", clip(status))
	}
	sw := &seqWriter{w: w}
	bw := mboxWriters.Get().(*bufio.Writer)
	bw.Reset(sw)
	defer putMboxWriter(bw)
	br, ok := body.(*bufio.Reader)
	if !ok || br.Size() < mboxBufSize {
		br = mboxReaders.Get().(*bufio.Reader)
		br.Reset(body)
		defer putMboxReader(br)
	}
	if first, _ := br.Peek(mboxBufSize); !StatusLinesFit(first) {
		status = nil
	}

	head := "From " + MboxSender(from) + " " + mboxDate(date) + " " + MboxAddedToken + "h=" + strconv.Itoa(len(status)) + ",t="
	tPos := int64(len(head))
	if _, err := bw.WriteString(head + "0\n"); err != nil {
		return 0, err
	}
	if _, err := bw.Write(status); err != nil {
		return 0, err
	}
	lineStart := true
	var last byte     // the body's last byte
	var bodyLen int64 // body bytes read
	crlf, firstEOL := false, false
	for {
		if lineStart {
			// Count the run of '>' that starts the line, then see
			// whether "From " follows it.
			var run int64
			for {
				c, err := br.ReadByte()
				if err == io.EOF {
					break
				}
				if err != nil {
					return 0, fmt.Errorf("mboxrd: reading message: %w", err)
				}
				if c != '>' {
					if err := br.UnreadByte(); err != nil {
						return 0, err
					}
					break
				}
				run++
			}
			next, err := br.Peek(len(fromPrefix))
			if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
				return 0, fmt.Errorf("mboxrd: reading message: %w", err)
			}
			if run > 0 {
				last = '>'
				bodyLen += run
			}
			if bytes.Equal(next, fromPrefix) {
				run++
			}
			if err := writeRun(bw, run); err != nil {
				return 0, err
			}
			lineStart = false
		}
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if _, werr := bw.Write(chunk); werr != nil {
				return 0, werr
			}
			bodyLen += int64(len(chunk))
			last = chunk[len(chunk)-1]
			lineStart = last == '\n'
			if lineStart && !firstEOL {
				firstEOL = true
				crlf = len(chunk) >= 2 && chunk[len(chunk)-2] == '\r'
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return 0, fmt.Errorf("mboxrd: reading message: %w", err)
		}
	}
	// End the last line (in the message's own line ending), then the
	// blank line.
	var term string
	switch {
	case bodyLen > 0 && last == '\n':
	case bodyLen > 0 && last == '\r':
		term = "\n"
	case crlf:
		term = "\r\n"
	default:
		term = "\n"
	}
	if _, err := bw.WriteString(term + "\n"); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if len(term) > 0 {
		if _, err := w.WriteAt([]byte{byte('0' + len(term))}, tPos); err != nil {
			return 0, err
		}
	}
	return sw.off, nil
}

// mboxReaders and mboxWriters keep WriteMboxMessage's buffers from one
// message to the next. Made for each message, their 128 KB were zeroed
// for every message of an mbox archive: runtime.memclrNoHeapPointers was
// 18% of the CPU of a 20k IMAP->mbox copy of 1 KB messages.
var (
	mboxReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, mboxBufSize) }}
	mboxWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, mboxBufSize) }}
)

// putMboxReader and putMboxWriter return a buffer to its pool, holding on
// to nothing of the message.
func putMboxReader(br *bufio.Reader) {
	br.Reset(nil)
	mboxReaders.Put(br)
}

func putMboxWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	mboxWriters.Put(bw)
}

var gtBlock = bytes.Repeat([]byte{'>'}, 512)

// writeRun writes n '>' bytes.
func writeRun(w io.Writer, n int64) error {
	for n > 0 {
		k := int64(len(gtBlock))
		if n < k {
			k = n
		}
		if _, err := w.Write(gtBlock[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// MboxWarning reports something in an mbox file that had to be guessed:
// which message, where, and why. Warnings never change the bytes read.
type MboxWarning struct {
	// Index is the 0-based number of the message the warning is about, in
	// the order MboxReader.Next returned them (counting from the reader's
	// start).
	Index int
	// Offset is the byte offset (from the reader's start) the warning is
	// about: the From_ line of the message, or the offending line.
	Offset int64
	// Reason says what was found and what the reader did.
	Reason string
}

func (w MboxWarning) String() string {
	return fmt.Sprintf("mboxrd: message %d at offset %d: %s", w.Index, w.Offset, w.Reason)
}

// MboxEntry is one message of an mbox file, as MboxReader.Next returns it.
type MboxEntry struct {
	// Index is the 0-based number of the message in the reader.
	Index int
	// From is the sender on the From_ line ("-", an address, Gmail's id...).
	From string
	// Date is the date on the From_ line, or zero when it has none or it
	// could not be parsed.
	Date time.Time
	// Offset is the byte offset of the From_ line from the reader's start.
	Offset int64
	// Body streams the message: the bytes after the From_ line (and its
	// status lines) up to the next From_ line, with one '>' taken from
	// lines matching ^>+From  and the framing's final newline (and the
	// line ending the writer added) taken away. It is valid until the next
	// call to Next.
	Body io.Reader
	// Status holds the status lines the writer added after the From_ line
	// (see WriteMboxMessage), taken away from Body; nil when the From_ line
	// has no mailferry token.
	Status []byte
	// Added is the number of bytes the writer added to the message (status
	// lines and line ending) that the reader took away; 0 for files written
	// before mailferry recorded them, and for other programs' files.
	Added int64

	body *mboxBody
}

// Size is the number of bytes Body yielded; final once Body returned io.EOF.
func (e *MboxEntry) Size() int64 { return e.body.size }

// End is the byte offset just past the message (where the next From_ line
// or the end of the input is); valid once Body returned io.EOF.
func (e *MboxEntry) End() int64 { return e.body.end }

// MboxReader reads an mbox file message by message, streaming each body.
// It reads mboxrd exactly and tolerates mboxo and CRLF files, a byte-order
// mark or blank lines before the first From_ line, and From_ lines without
// a date.
//
// ContentLength: a message whose header has a Content-Length that ends its
// body exactly where a From_ line (after at most one blank line) or the end
// of the input follows, within the read buffer, keeps a From_ line that lies
// inside that body (as mutt and Dovecot read it), with a warning. Any other
// Content-Length is only checked against the framing (a warning when they
// disagree).
type MboxReader struct {
	// Warnings collects everything that had to be guessed, in file order.
	Warnings []MboxWarning
	// OnWarning, if set, is called with each warning as it is found (it is
	// also appended to Warnings).
	OnWarning func(MboxWarning)
	// IgnoreContentLength turns off the use of Content-Length headers
	// (see ContentLength): for files known to be written by
	// WriteMboxrdMessage, whose framing needs no second opinion.
	IgnoreContentLength bool
	// Mboxo reads another program's file as mutt, Python and Dovecot do:
	// a line ">From " keeps its '>' (an mboxo writer escaped "From " but
	// not ">From ", so no '>' can be taken away without guessing). Without
	// it one '>' is taken from every line matching ^>+From (mboxrd).
	Mboxo bool
	// BlankLineOnly takes the newline before a From_ line (or the end of
	// the input) away only where it makes a blank line: another program's
	// file whose last message is not followed by a blank line keeps that
	// message's last newline. Without it one newline is always taken away
	// (this package's framing, which always adds it).
	BlankLineOnly bool

	br      *bufio.Reader
	off     int64 // offset of the next unread byte of br
	index   int   // index of the next entry
	started bool
	cur     *MboxEntry
	err     error
}

// NewMboxReader returns a reader of the mbox file r. Offsets are counted
// from r's current position.
func NewMboxReader(r io.Reader) *MboxReader {
	return &MboxReader{br: bufio.NewReaderSize(r, mboxBufSize)}
}

func (r *MboxReader) warn(index int, off int64, format string, args ...any) {
	w := MboxWarning{Index: index, Offset: off, Reason: fmt.Sprintf(format, args...)}
	r.Warnings = append(r.Warnings, w)
	if r.OnWarning != nil {
		r.OnWarning(w)
	}
}

// discard drops n buffered bytes, keeping the offset.
func (r *MboxReader) discard(n int) {
	d, _ := r.br.Discard(n)
	r.off += int64(d)
}

// peekLine returns the buffered bytes from start up to and including the
// next LF, with complete false when there is no LF before the end of the
// input or of the buffer. The bytes are valid until the next read.
func (r *MboxReader) peekLine(start int) (line []byte, complete bool, err error) {
	n := start + 1
	if b := r.br.Buffered(); b > n {
		n = b
	}
	for {
		buf, err := r.br.Peek(n)
		if len(buf) > start {
			if i := bytes.IndexByte(buf[start:], '\n'); i >= 0 {
				return buf[start : start+i+1], true, nil
			}
		}
		if err == io.EOF || err == bufio.ErrBufferFull {
			if len(buf) < start {
				return nil, false, nil
			}
			return buf[start:], false, nil
		}
		if err != nil {
			return nil, false, err
		}
		n = len(buf) + 1
	}
}

// Next returns the next message, or io.EOF after the last one. Whatever is
// left unread of the previous message's Body is skipped.
func (r *MboxReader) Next() (*MboxEntry, error) {
	if r.cur != nil {
		if _, err := io.Copy(io.Discard, r.cur.Body); err != nil {
			r.err = err
		}
		r.cur = nil
	}
	if r.err != nil {
		return nil, r.err
	}
	if !r.started {
		r.started = true
		if err := r.skipPreamble(); err != nil {
			r.err = err
			return nil, err
		}
	}
	line, complete, err := r.peekLine(0)
	if err != nil {
		r.err = err
		return nil, err
	}
	if len(line) == 0 {
		r.err = io.EOF
		return nil, io.EOF
	}
	if !bytes.HasPrefix(line, fromPrefix) {
		// Cannot happen: a body ends only at a From_ line or at EOF.
		r.err = fmt.Errorf("mboxrd: no From_ line at offset %d", r.off)
		return nil, r.err
	}
	if !complete && len(line) >= mboxBufSize {
		r.err = fmt.Errorf("mboxrd: From_ line at offset %d is longer than %d bytes", r.off, mboxBufSize)
		return nil, r.err
	}
	text, eol := splitEOL(line)
	from, date, kind, added := parseFromLine(text)
	if r.index == 0 && kind == notFromLine {
		r.warn(r.index, r.off, "first line %q does not look like a From_ line; taken as one", clip(text))
	}
	e := &MboxEntry{Index: r.index, From: from, Date: date, Offset: r.off}
	// eol points into the read buffer: keep a copy.
	e.body = &mboxBody{r: r, e: e, term: append([]byte(nil), eol...), lineStart: true}
	e.body.hold = len(eol)
	if r.BlankLineOnly {
		e.body.hold += 2 // to see whether the newline ends a blank line
	}
	e.Body = e.body
	r.discard(len(line))
	if added.ok && len(eol) == 1 {
		if err := r.takeAdded(e, added); err != nil {
			r.err = err
			return nil, err
		}
	} else if added.ok {
		r.warn(e.Index, e.Offset, "From_ line with a mailferry token ends in CRLF; the token is ignored")
	}
	r.index++
	r.cur = e
	return e, nil
}

// mboxAdded is what a From_ line's mailferry token says was added.
type mboxAdded struct {
	ok     bool
	status int64 // bytes of status lines after the From_ line
	term   int   // bytes of line ending added after the message (0-2)
}

// takeAdded takes the status lines a token announces away from the input
// and makes the body strip the added line ending. What does not match what
// the writer would have written is left in the message, with a warning.
func (r *MboxReader) takeAdded(e *MboxEntry, a mboxAdded) error {
	if a.status > 0 {
		b, err := r.br.Peek(int(a.status))
		if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
			return err
		}
		if int64(len(b)) == a.status && validStatusLines(b) {
			e.Status = append([]byte(nil), b...)
			r.discard(len(b))
			e.Added += a.status
		} else {
			r.warn(e.Index, e.Offset, "the %d bytes of status lines the From_ line announces are not there; kept in the message", a.status)
		}
	}
	e.body.added = a.term
	e.body.hold += a.term
	return nil
}

// skipPreamble skips a UTF-8 byte-order mark and blank lines before the
// first From_ line, with a warning; anything else there is an error.
func (r *MboxReader) skipPreamble() error {
	if b, _ := r.br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
		r.warn(0, r.off, "UTF-8 byte-order mark before the first From_ line skipped")
		r.discard(len(utf8BOM))
	}
	skipped, at := 0, r.off
	for {
		line, complete, err := r.peekLine(0)
		if err != nil {
			return err
		}
		if len(line) == 0 || bytes.HasPrefix(line, fromPrefix) {
			break
		}
		if !complete || len(bytes.TrimRight(line, "\r\n")) > 0 {
			return fmt.Errorf("%w: no From_ line at offset %d", ErrNotMbox, r.off)
		}
		skipped++
		r.discard(len(line))
	}
	if skipped > 0 {
		r.warn(0, at, "%d blank line(s) before the first From_ line skipped", skipped)
	}
	return nil
}

// splitEOL splits a line into its text and its line ending (LF or CRLF, or
// none at the end of the input).
func splitEOL(line []byte) (text, eol []byte) {
	if bytes.HasSuffix(line, []byte("\r\n")) {
		return line[:len(line)-2], line[len(line)-2:]
	}
	if bytes.HasSuffix(line, []byte("\n")) {
		return line[:len(line)-1], line[len(line)-1:]
	}
	return line, []byte("\n")
}

// fromLineKind is how sure parseFromLine is that a "From " line is a From_
// line.
type fromLineKind int

const (
	notFromLine    fromLineKind = iota
	weakFromLine                // a lone sender token, no date
	fromLineNoDate              // sender, weekday and month, date unparsed
	fromLineDated               // sender and a parsed date
)

var weekdays = map[string]bool{"Mon": true, "Tue": true, "Wed": true, "Thu": true, "Fri": true, "Sat": true, "Sun": true}
var months = map[string]bool{"Jan": true, "Feb": true, "Mar": true, "Apr": true, "May": true, "Jun": true,
	"Jul": true, "Aug": true, "Sep": true, "Oct": true, "Nov": true, "Dec": true}

var fromDateLayouts = []string{
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04 2006",
	"Mon Jan 2 15:04:05 MST 2006",
	"Mon Jan 2 15:04 MST 2006",
	"Mon Jan 2 15:04:05 2006 -0700",
	"Mon Jan 2 15:04:05 -0700 2006",
	"Mon Jan 2 15:04:05 MST -0700 2006",
	"Mon Jan 2 15:04:05 2006 MST",
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
}

// parseAddedToken parses "mailferry:h=H,t=T" (see MboxAddedToken).
func parseAddedToken(f string) (a mboxAdded) {
	rest, ok := strings.CutPrefix(f, MboxAddedToken+"h=")
	if !ok {
		return a
	}
	hs, ts, ok := strings.Cut(rest, ",t=")
	if !ok || len(ts) != 1 || ts[0] < '0' || ts[0] > '2' {
		return a
	}
	h, err := strconv.ParseInt(hs, 10, 64)
	if err != nil || h < 0 || h > maxMboxStatus || strconv.FormatInt(h, 10) != hs {
		return a
	}
	return mboxAdded{ok: true, status: h, term: int(ts[0] - '0')}
}

// parseFromLine parses "From SENDER [DATE] [mailferry:h=H,t=T]" (text
// without its line ending). The sender is everything before the weekday
// that starts the date (pipermail writes "From user at host  DATE").
func parseFromLine(text []byte) (from string, date time.Time, kind fromLineKind, added mboxAdded) {
	if !bytes.HasPrefix(text, fromPrefix) {
		return "", time.Time{}, notFromLine, added
	}
	// Split on ASCII blanks only: a sender may hold any other byte.
	fields := strings.FieldsFunc(string(text[len(fromPrefix):]), func(r rune) bool { return r == ' ' || r == '\t' })
	if len(fields) > 2 {
		if added = parseAddedToken(fields[len(fields)-1]); added.ok {
			fields = fields[:len(fields)-1]
		}
	}
	from, date, kind = parseFromSenderDate(fields)
	if kind == notFromLine {
		added = mboxAdded{}
	}
	return from, date, kind, added
}

func parseFromSenderDate(fields []string) (from string, date time.Time, kind fromLineKind) {
	if len(fields) == 0 {
		return "", time.Time{}, notFromLine
	}
	for i := 1; i < len(fields); i++ {
		if !weekdays[strings.TrimSuffix(fields[i], ",")] {
			continue
		}
		from = strings.Join(fields[:i], " ")
		ds := strings.Join(fields[i:], " ")
		for _, l := range fromDateLayouts {
			if t, err := time.Parse(l, ds); err == nil {
				return from, t, fromLineDated
			}
		}
		if i+1 < len(fields) && (months[fields[i+1]] || (i+2 < len(fields) && months[fields[i+2]])) {
			return from, time.Time{}, fromLineNoDate
		}
	}
	if len(fields) == 1 {
		f := fields[0]
		if f == "-" || strings.Contains(f, "@") || strings.EqualFold(f, DefaultMboxSender) {
			return f, time.Time{}, weakFromLine
		}
	}
	return strings.Join(fields, " "), time.Time{}, notFromLine
}

// isHeaderLine reports whether line looks like "Name: value" (a header
// field name of printable ASCII without spaces, then a colon).
func isHeaderLine(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	for _, c := range line[:i] {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// mboxBody streams one message's body. Unescaped content goes into buf;
// the last hold bytes are kept back until it is known whether they are the
// framing's final newline.
type mboxBody struct {
	r         *MboxReader
	e         *MboxEntry
	term      []byte // the From_ line's line ending: the final newline to strip
	added     int    // bytes of line ending the writer added before it (0-2)
	hold      int
	lineStart bool
	done      bool // no more content: a From_ line or EOF reached
	stripped  bool
	err       error

	buf []byte
	pos int

	size int64 // bytes returned
	end  int64

	// For the Content-Length check: the first bytes of the content.
	head     []byte
	headDone bool
	total    int64 // content bytes produced, before stripping
}

const maxCheckedHeader = 64 << 10

func (b *mboxBody) Read(p []byte) (int, error) {
	for {
		avail := len(b.buf) - b.pos
		if b.done {
			if !b.stripped {
				b.stripped = true
				b.stripTerm()
				avail = len(b.buf) - b.pos
			}
			if avail == 0 {
				return 0, io.EOF
			}
			n := copy(p, b.buf[b.pos:])
			b.pos += n
			b.size += int64(n)
			return n, nil
		}
		if avail > b.hold {
			n := copy(p, b.buf[b.pos:len(b.buf)-b.hold])
			b.pos += n
			b.size += int64(n)
			return n, nil
		}
		if b.err != nil {
			return 0, b.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		// Keep the held-back bytes at the front and produce more.
		m := copy(b.buf, b.buf[b.pos:])
		b.buf, b.pos = b.buf[:m], 0
		if err := b.fill(); err != nil {
			b.err = err
		}
	}
}

// emit appends produced content.
func (b *mboxBody) emit(p []byte) {
	b.buf = append(b.buf, p...)
	b.total += int64(len(p))
	if !b.headDone {
		room := maxCheckedHeader - len(b.head)
		if room > len(p) {
			room = len(p)
		}
		b.head = append(b.head, p[:room]...)
		if len(b.head) >= maxCheckedHeader {
			b.headDone = true
		}
	}
}

// stripTerm removes the framing's final newline from the end of the
// content (CRLF for a CRLF From_ line, else LF) and runs the end checks.
func (b *mboxBody) stripTerm() {
	tail := b.buf[b.pos:]
	blank := func(n int) bool { // the n-byte newline ends a blank line
		return !b.r.BlankLineOnly || len(tail) == n || len(tail) > n && tail[len(tail)-n-1] == '\n'
	}
	switch {
	case len(b.term) == 2 && bytes.HasSuffix(tail, b.term) && blank(2):
		b.buf = b.buf[:len(b.buf)-2]
		b.total -= 2
	case bytes.HasSuffix(tail, []byte("\n")) && blank(1):
		b.buf = b.buf[:len(b.buf)-1]
		b.total--
	}
	if b.added > 0 {
		want := "\n"
		if b.added == 2 {
			want = "\r\n"
		}
		if tail := b.buf[b.pos:]; bytes.HasSuffix(tail, []byte(want)) {
			b.buf = b.buf[:len(b.buf)-b.added]
			b.total -= int64(b.added)
			b.e.Added += int64(b.added)
		} else {
			b.r.warn(b.e.Index, b.e.Offset, "the line ending the From_ line says was added is not there; kept in the message")
		}
	}
	b.end = b.r.off
	b.checkContentLength()
}

// checkContentLength warns when a Content-Length header disagrees with the
// From_ framing (the framing is what was used).
func (b *mboxBody) checkContentLength() {
	if b.r.IgnoreContentLength {
		return
	}
	head := b.head
	if int64(len(head)) > b.total {
		head = head[:b.total]
	}
	hb := HeaderBlock(head)
	if len(hb) == len(head) && int64(len(head)) < b.total {
		return // header longer than what was kept: no check
	}
	vals := parseHeaderFields(hb, "content-length")
	if vals[0] == nil {
		return
	}
	declared, err := strconv.ParseInt(string(vals[0]), 10, 64)
	if err != nil {
		b.r.warn(b.e.Index, b.e.Offset, "unparsable Content-Length %q ignored; the From_ framing was used", vals[0])
		return
	}
	bodyStart := int64(len(hb))
	rest := head[len(hb):]
	switch {
	case bytes.HasPrefix(rest, []byte("\r\n")):
		bodyStart += 2
	case bytes.HasPrefix(rest, []byte("\n")):
		bodyStart++
	}
	actual := b.total - bodyStart
	if actual < 0 {
		actual = 0
	}
	if declared == actual || declared == actual+int64(len(b.term)) {
		return
	}
	b.r.warn(b.e.Index, b.e.Offset, "Content-Length %d disagrees with the From_ framing (body is %d bytes); the From_ framing was used", declared, actual)
}

// insideContentLength reports whether the read position (the start of a
// line) lies inside the body the message's Content-Length gives, and that
// body ends, within the read buffer, where a From_ line (after at most one
// blank line) or the end of the input follows.
func (b *mboxBody) insideContentLength() bool {
	r := b.r
	if r.IgnoreContentLength || b.headDone && len(HeaderBlock(b.head)) == len(b.head) {
		return false
	}
	hb := HeaderBlock(b.head)
	if len(hb) == len(b.head) {
		return false // still in the header
	}
	vals := parseHeaderFields(hb, "content-length")
	if vals[0] == nil {
		return false
	}
	declared, err := strconv.ParseInt(string(vals[0]), 10, 64)
	if err != nil || declared < 0 {
		return false
	}
	bodyStart := int64(len(hb))
	switch rest := b.head[len(hb):]; {
	case bytes.HasPrefix(rest, []byte("\r\n")):
		bodyStart += 2
	case bytes.HasPrefix(rest, []byte("\n")):
		bodyStart++
	}
	ahead := bodyStart + declared - b.total // bytes from here to the body's end
	if ahead <= 0 || ahead > mboxBufSize-512 {
		return false
	}
	buf, err := r.br.Peek(int(ahead) + 512)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return false
	}
	if int64(len(buf)) < ahead {
		return false
	}
	after := buf[ahead:]
	for _, nl := range []string{"", "\n", "\r\n"} {
		if rest, ok := bytes.CutPrefix(after, []byte(nl)); ok {
			if len(rest) == 0 && err == io.EOF {
				return true
			}
			line, _, _ := bytes.Cut(rest, []byte("\n"))
			if _, _, kind, _ := parseFromLine(bytes.TrimSuffix(line, []byte("\r"))); kind == fromLineDated || kind == fromLineNoDate {
				return true
			}
		}
	}
	return false
}

// fill produces the next piece of content, or sets done.
func (b *mboxBody) fill() error {
	r := b.r
	if b.lineStart {
		// Count a run of '>' at the start of the line.
		var run int64
		for {
			c, err := r.br.ReadByte()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if c != '>' {
				_ = r.br.UnreadByte()
				break
			}
			r.off++
			run++
		}
		next, err := r.br.Peek(len(fromPrefix))
		if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
			return err
		}
		isFrom := bytes.Equal(next, fromPrefix)
		if run == 0 && len(next) == 0 {
			b.done = true
			b.end = r.off
			return nil
		}
		if run == 0 && isFrom {
			sep, err := b.fromLine()
			if err != nil {
				return err
			}
			if sep {
				b.done = true
				return nil
			}
		}
		if isFrom && run > 0 && !r.Mboxo {
			run-- // mboxrd: one '>' was added by the writer
		}
		for run > 0 {
			k := int64(len(gtBlock))
			if run < k {
				k = run
			}
			b.emit(gtBlock[:k])
			run -= k
		}
		b.lineStart = false
		return nil
	}
	chunk, err := r.br.ReadSlice('\n')
	r.off += int64(len(chunk))
	if len(chunk) > 0 {
		b.emit(chunk)
		b.lineStart = chunk[len(chunk)-1] == '\n'
	}
	switch err {
	case nil, bufio.ErrBufferFull:
		return nil
	case io.EOF:
		b.done = true
		return nil
	default:
		return err
	}
}

// fromLine decides whether the unescaped "From " line at the read position
// starts the next message, and warns about what had to be guessed.
func (b *mboxBody) fromLine() (sep bool, err error) {
	r := b.r
	line, complete, err := r.peekLine(0)
	if err != nil {
		return false, err
	}
	if !complete && len(line) >= mboxBufSize {
		r.warn(b.e.Index, r.off, "line starting with \"From \" longer than %d bytes kept in the body", mboxBufSize)
		return false, nil
	}
	text, _ := splitEOL(line)
	_, _, kind, _ := parseFromLine(text)
	var next []byte
	if complete {
		next, _, err = r.peekLine(len(line))
		if err != nil {
			return false, err
		}
	}
	nextText, _ := splitEOL(next)
	headerNext := isHeaderLine(nextText)
	if kind != notFromLine && b.insideContentLength() {
		r.warn(b.e.Index, r.off, "From_ line %q lies inside the body its Content-Length gives, which ends at a From_ line: kept in the body (as mutt and Dovecot read it)", clip(text))
		return false, nil
	}
	switch kind {
	case fromLineDated, fromLineNoDate:
		return true, nil
	case weakFromLine:
		if !headerNext {
			r.warn(b.e.Index+1, r.off, "From_ line %q without a date, not followed by a header line: taken as a message boundary", clip(text))
		}
		return true, nil
	}
	if headerNext {
		r.warn(b.e.Index, r.off, "unescaped line %q followed by header-like line %q: could be a message boundary; kept in the body", clip(text), clip(nextText))
	} else {
		r.warn(b.e.Index, r.off, "unescaped line %q (mboxo) kept in the body", clip(text))
	}
	return false, nil
}

func clip(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}

// ErrNotMbox is returned (wrapped) when input does not start with a From_ line.
var ErrNotMbox = errors.New("mboxrd: not an mbox file")
