package imap

// Our own APPEND path, the one place mailferry speaks IMAP without go-imap.
//
// Why it exists: on Dovecot (and most servers) every APPEND command is one
// mailbox transaction, and go-imap v2's client has neither MULTIAPPEND
// (RFC 3502: many messages in one APPEND) nor LITERAL+ (RFC 7888: send a
// literal without waiting for the server's "+"), so it pays one transaction
// and one round trip per message. This appender sends batches of messages
// as one MULTIAPPEND with non-synchronising literals, and pipelines the
// batches, so a Dovecot destination takes hundreds of messages per
// transaction and the network's latency is paid once per batch.
//
// It is used only when the server offers both MULTIAPPEND and LITERAL+;
// otherwise the sink falls back to go-imap's plain APPEND. A batch the
// server refuses (MULTIAPPEND is all or nothing) is sent again one message
// per APPEND from the in-memory spool, so a single refused message fails
// alone. A message too large for the spool is streamed as an APPEND of its
// own, pipelined like a batch: alone in its command, it needs no second try.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// Batch limits: a batch is closed at whichever comes first. The count is
// high because Dovecot re-read a Maildir folder's state at every APPEND
// command: into a folder of 300,000 messages, 200 messages a batch made the
// million-message benchmark take 198-240 s and 1,000 made it 137 s; with
// batchBytes at 1 MB, so that 1,000 messages of 1 KB fit one batch, 115 s
// (two such batches in flight hold what four of 512 KB did). That re-read
// was of a folder not open on the connection: startAppend now SELECTs it
// first. At most
// maxOutstanding spooled batches are in flight before the next waits (each
// keeps up to batchBytes in memory until answered), and at most
// maxCommands commands of any kind: a streamed message keeps nothing in
// memory once sent, so on a slow link more of them may be on the way (at
// 20 ms round trip, four 2 MB messages left the connection idle while
// waiting for the answer to the first).
const (
	batchMessages  = 1000
	batchBytes     = 1 << 20
	spoolMaxSize   = 256 << 10 // larger messages are streamed, unspooled
	maxOutstanding = 2
	maxCommands    = 128
	// spoolBudget: beyond its own maxOutstanding batches, an appender may
	// send more while the spooled bytes in flight over all appenders of
	// the process stay under this. When the other folders are done, the
	// last large folder on a slow link gets their share.
	spoolBudget = 8 << 20
	// On a slow link (appender.deep) commitSome lets slowInFlight
	// messages be in flight before it waits, and an appender keeps
	// slowOutstanding spooled batches of its own in flight while each
	// holds at least slowBatchMessages messages. With two batches the
	// destination idled at every batch: the answer to one takes a round
	// trip to come back before the batch after the next is sent, and
	// Dovecot takes about 47 ms of CPU over a batch of 1,000 small
	// messages, less than the round trip plus the time to read the next
	// batch from the source. On the 200k set (1 KB messages; the
	// benchmark's rtt job, four pairs of runs of two rounds, binaries
	// alternated) the copy at 80 ms took 10.27 s on average against
	// 10.79 s (9.72-10.97 s against 10.19-11.50 s: this machine's noise
	// is of the same size), mailferry 4.9-5.8 s of CPU against 5.3-6.2 s,
	// peak RSS 32.7-33.7 MB against 32.6-33.8 MB. Batches of larger
	// messages keep two: with four, the 20k MIXED set at 20 and 80 ms
	// peaked at 42.1-42.7 MB (32.3-35.3 MB with two), over the memory
	// target, and its copy at 80 ms gained 7%.
	slowOutstanding   = 4
	slowInFlight      = 3 * batchMessages
	slowBatchMessages = 256
)

// spoolInFlight counts the spooled bytes sent and not yet answered, over
// every appender of the process.
var spoolInFlight atomic.Int64

// slowLink is the round trip from which CarryBatch takes the link for a
// slow one. Dovecot answers LOGIN and LIST "" "" on loopback in 1-3 ms;
// through the benchmark's delay proxy at 20 ms round trip in 21-25 ms.
const slowLink = 10 * time.Millisecond

// CarryBatch says whether a full window's newest batch may stay in flight
// across the window's end (migrate.BatchCarrier): only on a slow link,
// where waiting for its answer idles the destination for a round trip at
// every window. It costs a second spooled batch in flight per appender
// (d7366c0 allowed it everywhere: the 200k loopback copy peaked at
// 40.1-41.9 MB instead of 32.8), so a fast link keeps the wait. Both the
// main connection's first command (at the run's start) and the appender's
// LOGIN must have taken slowLink: a LOGIN alone, under the load of a
// loopback copy, took over 10 ms often enough to take a 1M copy to 40.3 MB.
// The appender tells it once it is ready (appender.deep, useAppender).
func (m *IMAP) CarryBatch() bool {
	return m.app != nil && m.app.deep
}

// useAppender makes app the connection's appender, on a slow link or not
// (CarryBatch): m.rtt was measured when the connection was dialled.
func (m *IMAP) useAppender(app *appender) {
	app.deep = min(m.rtt, app.login) >= slowLink
	m.app = app
}

// appenderReady makes sure m.app is connected: the connection
// PrepareStore started dialling, or else a new one. Where the server
// refuses that login for the user's number of sessions, it sets noBatch
// instead (and returns nil): Store then APPENDs on the main connection.
func (m *IMAP) appenderReady(ctx context.Context) error {
	if m.app != nil {
		return nil
	}
	if ch := m.appDial; ch != nil {
		m.appDial = nil
		if d := <-ch; d.err == nil {
			m.useAppender(d.app)
			return nil
		} // a failed early dial is tried again here, where its error is reported
	}
	app, err := dialAppender(ctx, m.cfg, m.auth)
	if errors.Is(err, migrate.ErrTooManyConnections) {
		// The server allows this user no more sessions: this sink stores
		// with APPEND on its main connection instead (Store), slower but
		// with the connections it has.
		m.noBatch = true
		return nil
	}
	if err != nil {
		return err
	}
	app.binary = m.caps.Has(imap.CapBinary)
	m.useAppender(app)
	return nil
}

// appenderDial is the outcome of an appender's dial in the background.
type appenderDial struct {
	app *appender
	err error
}

// PrepareStore starts dialling the appender in the background, so that
// its greeting and login (a round trip and a half) overlap the source's
// listing and first FETCH instead of delaying the first Store on a slow
// link (migrate.StorePreparer).
func (m *IMAP) PrepareStore(ctx context.Context) {
	if m.noBatch || m.app != nil || m.appDial != nil {
		return
	}
	ch := make(chan appenderDial, 1)
	m.appDial = ch
	cfg, auth, binary := m.cfg, m.auth, m.caps.Has(imap.CapBinary)
	go func() {
		app, err := dialAppender(ctx, cfg, auth)
		if err == nil {
			app.binary = binary
		}
		ch <- appenderDial{app, err}
	}()
}

// closeAppender closes the appender, or the one being dialled once its
// dial is done (without waiting for it).
func (m *IMAP) closeAppender() {
	if m.app != nil {
		m.app.close()
		m.app = nil
	}
	if ch := m.appDial; ch != nil {
		m.appDial = nil
		go func() {
			if d := <-ch; d.app != nil {
				d.app.close()
			}
		}()
	}
}

// appender is one raw IMAP connection used only for APPEND.
type appender struct {
	conn    net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	cfg     mailconn.ServerConfig
	tagN    int
	timeout time.Duration
	binary  bool          // the server has BINARY: literal8 for messages with NUL
	login   time.Duration // LOGIN's round trip (0 after AUTHENTICATE)
	deep    bool          // a slow link (CarryBatch): slowOutstanding and slowInFlight apply

	broken      error          // set by lost: the connection is not used again
	open        *appendBatch   // the batch being written, if any
	outstanding []*appendBatch // sent, waiting for their tagged response
	sent        int            // batches sent so far (each batch's seq is its number)
	older       int            // batches numbered below it are waited for by commitSome
	answered    []doneBatch    // answered, outcomes not yet collected by commit

	// selected is the mailbox this connection's last SELECT named (see
	// startAppend); selectN numbers those SELECTs for their tags.
	selected string
	selectN  int
}

// spooled is one queued message: its bytes are kept until the server says
// OK, to send it again alone if its batch is refused.
type spooled struct {
	mailbox string
	flags   []string
	date    time.Time
	body    []byte
	pooled  bool // body is a spoolBufs buffer of its own (releaseBody)
}

type appendBatch struct {
	tag      string
	seq      int // its number among the appender's batches, once sent
	mailbox  string
	msgs     []spooled
	bytes    int
	streamed bool // one message sent from its source, not kept
	// chunks hold the bodies of the batch's small messages, packed one
	// after the other (spoolBody); they go back to spoolChunks together
	// once the batch is answered.
	chunks []*[]byte
}

// appendOutcome is one queued message's fate, in queue order.
type appendOutcome struct {
	uid uint32
	err error // a *migrate.MessageError when the server refused this message alone
}

// dialAppender connects and logs in as the main connection did (auth):
// LOGIN, or with cfg.Token AUTHENTICATE with the same mechanism and a token
// of its own (a refused one is tried once more with a new token).
func dialAppender(ctx context.Context, cfg mailconn.ServerConfig, auth imapAuth) (*appender, error) {
	if cfg.Token == nil {
		return dialAppenderToken(cfg, auth, "")
	}
	return mailconn.WithToken(ctx, cfg, func(token string) (*appender, error) { return dialAppenderToken(cfg, auth, token) })
}

func dialAppenderToken(cfg mailconn.ServerConfig, auth imapAuth, token string) (*appender, error) {
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	d := &net.Dialer{Timeout: timeout}
	var conn net.Conn
	var err error
	tc := cfg.TLSClientConfig("")
	if cfg.TLS == mailconn.TLSImplicit {
		conn, err = tls.DialWithDialer(d, "tcp", cfg.Addr, tc)
	} else {
		conn, err = d.Dial("tcp", cfg.Addr)
	}
	if err != nil {
		return nil, mailconn.ClassifyDialError("imap", cfg, "", err)
	}
	a := &appender{conn: conn, br: bufio.NewReaderSize(conn, 16<<10), bw: bufio.NewWriterSize(conn, 64<<10), cfg: cfg, timeout: timeout}
	if err := a.handshake(tc, auth, token); err != nil {
		a.conn.Close()
		return nil, err
	}
	return a, nil
}

func (a *appender) handshake(tc *tls.Config, auth imapAuth, token string) error {
	a.conn.SetDeadline(time.Now().Add(a.timeout))
	defer a.conn.SetDeadline(time.Time{})
	if _, err := a.readLine(); err != nil { // greeting
		return &migrate.RetryableError{Err: fmt.Errorf("imap append: %s: greeting: %w", a.cfg.Addr, err)}
	}
	if a.cfg.TLS == mailconn.TLSStartTLS {
		if err := a.simple("STARTTLS"); err != nil {
			var no *errNo
			if asErrNo(err, &no) {
				return fmt.Errorf("%w: %s: the server does not offer STARTTLS", migrate.ErrTLS, a.cfg.Addr)
			}
			return &migrate.RetryableError{Err: fmt.Errorf("imap append: %s: starttls: %w", a.cfg.Addr, err)}
		}
		tconn := tls.Client(a.conn, tc)
		if err := tconn.Handshake(); err != nil {
			return fmt.Errorf("%w: %s: %v", migrate.ErrTLS, a.cfg.Addr, err)
		}
		a.conn = tconn
		a.br.Reset(tconn)
		a.bw.Reset(tconn)
	}
	if token != "" {
		return a.authenticate(auth, token)
	}
	// LOGIN with two non-synchronising literals carries any user name and
	// password without quoting rules. The secret is never logged.
	tag := a.nextTag()
	fmt.Fprintf(a.bw, "%s LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n", tag, len(a.cfg.User), a.cfg.User, len(a.cfg.Password), a.cfg.Password)
	sent := time.Now()
	err := a.bw.Flush()
	if err == nil {
		_, err = a.waitTagged(tag)
		a.login = time.Since(sent)
	}
	var no *errNo
	if asErrNo(err, &no) {
		code, text := no.code()
		if later := refusedForNow(a.cfg, code, text); later != nil {
			return later
		}
		return fmt.Errorf("%w: %s: login refused: %s", migrate.ErrAuth, a.cfg, no.text)
	}
	if err != nil {
		return &migrate.RetryableError{Err: fmt.Errorf("imap append: %s: login: %w", a.cfg.Addr, err)}
	}
	return nil
}

// authenticate logs in with AUTHENTICATE and the OAuth2 mechanism the main
// connection used (the initial response on the command line when the
// server has SASL-IR). An error challenge is answered as the mechanism
// wants and the server's NO ends the exchange; the caller then closes the
// connection.
func (a *appender) authenticate(auth imapAuth, token string) error {
	if auth.mech == "" {
		return fmt.Errorf("%w: %s: no OAuth2 mechanism for the APPEND connection", migrate.ErrAuth, a.cfg)
	}
	cl := mailconn.NewOAuth2Client(auth.mech, a.cfg.User, token, a.cfg.Addr)
	_, ir, _ := cl.Start()
	tag := a.nextTag()
	a.bw.WriteString(tag + " AUTHENTICATE " + auth.mech)
	sentIR := auth.saslIR
	if sentIR {
		a.bw.WriteString(" " + mailconn.SASLLine(ir))
	}
	a.bw.WriteString("\r\n")
	fail := func(err error) error {
		return &migrate.RetryableError{Err: fmt.Errorf("imap append: %s: authenticate: %s", a.cfg.Addr, mailconn.RedactToken(err.Error(), token))}
	}
	if err := a.bw.Flush(); err != nil {
		return fail(err)
	}
	for challenges := 0; ; {
		line, err := a.readLine()
		if err != nil {
			return fail(err)
		}
		if rest, ok := strings.CutPrefix(line, "+"); ok {
			rest = strings.TrimSpace(rest)
			resp := ""
			switch {
			case !sentIR && rest == "":
				resp, sentIR = mailconn.SASLLine(ir), true
			case challenges > 0:
				// A refusal was answered already: no more rounds.
				a.bw.WriteString("*\r\n")
				a.bw.Flush()
				return mailconn.Refused(a.cfg, cl.Refusal(), token)
			default:
				challenges++
				ch, _ := base64.StdEncoding.DecodeString(rest)
				cl.Next(ch)
				resp = mailconn.SASLLine(cl.AbortResponse())
			}
			a.bw.WriteString(resp + "\r\n")
			if err := a.bw.Flush(); err != nil {
				return fail(err)
			}
			continue
		}
		rest, ok := strings.CutPrefix(line, tag+" ")
		if !ok {
			continue // untagged (CAPABILITY)
		}
		status, text, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(status) {
		case "OK":
			return nil
		case "NO", "BAD":
		default:
			return fail(fmt.Errorf("malformed answer to %s: %s", tag, clip(line)))
		}
		// After an error challenge too: Gmail sends one (status 400)
		// ahead of "NO [ALERT] Too many simultaneous connections".
		code, words := (&errNo{text: status + " " + text}).code()
		if later := refusedForNow(a.cfg, code, mailconn.RedactToken(words, token)); later != nil {
			return later
		}
		r := cl.Refusal()
		if r == nil {
			r = mailconn.NewRefusal(auth.mech, "")
		}
		return mailconn.Refused(a.cfg, r.WithText(strings.TrimSpace(status+" "+text)), token)
	}
}

// simple runs one command that takes no literal and waits for its OK.
func (a *appender) simple(cmd string) error {
	tag := a.nextTag()
	if _, err := a.bw.WriteString(tag + " " + cmd + "\r\n"); err != nil {
		return err
	}
	if err := a.bw.Flush(); err != nil {
		return err
	}
	_, err := a.waitTagged(tag)
	return err
}

func (a *appender) nextTag() string {
	a.tagN++
	return "M" + strconv.Itoa(a.tagN)
}

func (a *appender) readLine() (string, error) {
	line, err := a.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// errNo is a tagged NO or BAD, with the server's text.
type errNo struct{ text string }

func (e *errNo) Error() string { return e.text }

// code is the refusal's response code ("NO [LIMIT] text": "LIMIT") and the
// text after it; "" and the text after the status where it has none.
func (e *errNo) code() (imap.ResponseCode, string) {
	_, rest, _ := strings.Cut(e.text, " ")
	if inner, ok := strings.CutPrefix(rest, "["); ok {
		if c, after, ok := strings.Cut(inner, "]"); ok {
			c, _, _ = strings.Cut(c, " ")
			return imap.ResponseCode(strings.ToUpper(c)), strings.TrimSpace(after)
		}
	}
	return "", rest
}

// waitTagged reads lines up to the tagged response for tag and returns its
// text after "OK". Untagged data (EXISTS, RECENT) is of no interest here,
// but an untagged BYE ends the wait: the server is closing the connection.
//
// Only a well-formed NO or BAD is a refusal (*errNo). Anything else in the
// place of the status is a broken connection, never a refusal: a refused
// MULTIAPPEND is sent again message by message, so taking a garbled answer
// to a batch the server had stored for a refusal would store it twice.
func (a *appender) waitTagged(tag string) (string, error) {
	for {
		line, err := a.readLine()
		if err != nil {
			return "", err
		}
		if untagged, ok := strings.CutPrefix(line, "* "); ok {
			if status, _, _ := strings.Cut(untagged, " "); strings.EqualFold(status, "BYE") {
				return "", fmt.Errorf("server closed the connection: %s", clip(line))
			}
			continue
		}
		rest, ok := strings.CutPrefix(line, tag+" ")
		if !ok {
			continue
		}
		status, text, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(status) {
		case "OK":
			return text, nil
		case "NO", "BAD":
			return "", &errNo{text: strings.TrimSpace(status + " " + text)}
		}
		return "", fmt.Errorf("malformed answer to %s: %s", tag, clip(line))
	}
}

// clip shortens a server line for an error message.
func clip(line string) string {
	if len(line) > 120 {
		return line[:120] + "…"
	}
	return line
}

// add queues one message: it is written to the socket at once as part of
// the open MULTIAPPEND, and kept in the spool until its batch is answered.
// body stays the caller's: the spool only holds on to it.
func (a *appender) add(mailbox string, flags []string, date time.Time, body []byte) error {
	if err := a.openBatch(mailbox); err != nil {
		return err
	}
	return a.queue(flags, date, body, false)
}

// addFrom reads a message of size bytes (at most spoolMaxSize) from r into
// the open batch's spool and queues it as add does.
func (a *appender) addFrom(mailbox string, flags []string, date time.Time, size int64, r io.Reader) error {
	if err := a.openBatch(mailbox); err != nil {
		return err
	}
	body, pooled, err := a.open.spoolBody(r, size)
	if err != nil {
		return &migrate.RetryableError{Err: fmt.Errorf("imap: reading the source: %w", err)}
	}
	return a.queue(flags, date, body, pooled)
}

// openBatch makes sure a batch into mailbox is open, closing one into
// another mailbox and waiting while too much is in flight. Nothing of the
// new batch is written before its first message (queue).
func (a *appender) openBatch(mailbox string) error {
	if a.broken != nil {
		return a.broken
	}
	if a.open != nil && (a.open.mailbox != mailbox) {
		if err := a.closeBatch(); err != nil {
			return err
		}
	}
	if a.open == nil {
		for a.full() {
			if err := a.awaitOne(); err != nil {
				return err
			}
		}
		a.open = &appendBatch{tag: a.nextTag(), mailbox: mailbox}
	}
	return nil
}

// queue writes one message into the open batch and keeps it in the spool.
func (a *appender) queue(flags []string, date time.Time, body []byte, pooled bool) error {
	b := a.open
	if len(b.msgs) == 0 {
		a.startAppend(b.tag, b.mailbox)
	}
	a.conn.SetWriteDeadline(time.Now().Add(a.timeout))
	writeAppendItem(a.bw, flags, date, body, a.binary)
	b.msgs = append(b.msgs, spooled{b.mailbox, flags, date, body, pooled})
	b.bytes += len(body)
	if len(b.msgs) >= batchMessages || b.bytes >= batchBytes {
		return a.closeBatch()
	}
	return nil
}

// appendSelects turns startAppend's SELECT off for
// BenchmarkAppendGrowingFolder's comparison.
var appendSelects = true

// startAppend writes "tag APPEND mailbox", behind a SELECT of mailbox
// where the connection has another one selected (or none): its answer is
// not awaited (waitTagged passes over it, OK or NO).
//
// Why: Dovecot opens a mailbox that is not the selected one afresh for each
// APPEND, and for a Maildir folder that reads its whole list of files
// (dovecot-uidlist): into a folder of 300,000 messages one APPEND took 0.59
// s of the server's CPU, 11 ms with the folder selected (20 APPENDs of 1 KB,
// Dovecot 2.3.19). Filling one folder with 300 batches of 1,000 messages
// (the million-message benchmark's INBOX holds 297,700), on tmpfs so that
// the file system's own costs stay out: 37.2-37.5 s without the SELECT,
// the server's CPU per 50 batches growing from 2.0 s to 11.7 s with the
// folder; 16.4-17.2 s with it, from 1.9 s to 3.7-3.9 s.
//
// SELECT, not EXAMINE: with EXAMINE the same took 68.4 s (2.9 s to 20.9 s
// per 50 batches). We take it that a read-only session does not move
// Dovecot's new/ files to cur/, so the messages stored without flags pile
// up in new/ and each APPEND's sync lists them again. A SELECT expunges
// nothing (RFC 3501 6.3.1; only CLOSE and EXPUNGE do, and this connection
// sends neither); what it changes is \Recent, which this session takes for
// the messages it stores and for any that arrived since another session
// looked.
func (a *appender) startAppend(tag, mailbox string) {
	name := quoteIMAP(formats.EncodeMailboxUTF7(mailbox))
	if appendSelects && mailbox != a.selected {
		a.selectN++
		a.bw.WriteString("S" + strconv.Itoa(a.selectN) + " SELECT " + name + "\r\n")
		a.selected = mailbox
	}
	a.bw.WriteString(tag + " APPEND " + name)
}

// writeAppendItem writes " (flags) "date" {n+}CRLF" and the bytes. A
// message holding a NUL byte, which an ordinary literal may not carry, goes
// as a literal8 ("~{n+}", RFC 3516) where the server has BINARY.
func writeAppendItem(w *bufio.Writer, flags []string, date time.Time, body []byte, binary bool) {
	writeAppendHead(w, flags, date, int64(len(body)), binary && bytes.IndexByte(body, 0) >= 0)
	w.Write(body)
}

// writeAppendHead writes " (flags) "date" {n+}CRLF" (or "~{n+}" for a
// literal8): the literal follows.
func writeAppendHead(w *bufio.Writer, flags []string, date time.Time, size int64, literal8 bool) {
	w.WriteString(" (")
	n := 0
	for _, f := range flags {
		if !validFlag(f) {
			continue
		}
		if n > 0 {
			w.WriteByte(' ')
		}
		w.WriteString(f)
		n++
	}
	w.WriteString(")")
	if !date.IsZero() {
		w.WriteString(` "` + date.Format("02-Jan-2006 15:04:05 -0700") + `"`)
	}
	if literal8 {
		w.WriteString(" ~")
	} else {
		w.WriteString(" ")
	}
	w.WriteString("{" + strconv.FormatInt(size, 10) + "+}\r\n")
}

// validFlag accepts system flags and keyword atoms.
func validFlag(f string) bool {
	if f == "" || strings.EqualFold(f, formats.FlagRecent) {
		return false
	}
	for i, c := range f {
		if c == '\\' && i == 0 {
			continue
		}
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`(){%*"\]`, c) {
			return false
		}
	}
	return true
}

func quoteIMAP(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// closeBatch ends the open MULTIAPPEND (its final CRLF) and sends it off
// without waiting for the answer.
func (a *appender) closeBatch() error {
	if a.open == nil {
		return nil
	}
	if len(a.open.msgs) == 0 {
		a.open.release() // nothing of it was written
		a.open = nil
		return nil
	}
	a.bw.WriteString("\r\n")
	a.conn.SetWriteDeadline(time.Now().Add(a.timeout))
	err := a.bw.Flush()
	a.sentOff(a.open)
	spoolInFlight.Add(int64(a.open.bytes))
	a.open = nil
	if err != nil {
		return a.lost(err)
	}
	return nil
}

// done collects outcomes of answered batches, in queue order.
type doneBatch struct {
	b    *appendBatch
	uids []uint32
	err  error // errNo: the whole batch was refused
}

// full reports whether a new spooled batch must wait: commands of any kind
// at their limit, or this appender's spooled batches at theirs (more of
// many small messages on a slow link) while the process's spool budget has
// no room for one more.
func (a *appender) full() bool {
	if len(a.outstanding) >= maxCommands {
		return true
	}
	n, many := 0, true // many: every spooled batch in flight holds slowBatchMessages or more
	for _, b := range a.outstanding {
		if !b.streamed {
			n++
			many = many && len(b.msgs) >= slowBatchMessages
		}
	}
	own := maxOutstanding
	if a.deep && many {
		own = slowOutstanding
	}
	return n >= own && spoolInFlight.Load()+batchBytes > spoolBudget
}

// inFlightLimit is how many messages commitSome lets be in flight before
// it waits for the oldest batch.
func (a *appender) inFlightLimit() int {
	if a.deep {
		return slowInFlight
	}
	return batchMessages
}

// awaitOne reads the answer to the oldest outstanding batch.
func (a *appender) awaitOne() error {
	b := a.outstanding[0]
	a.conn.SetReadDeadline(time.Now().Add(a.timeout))
	text, err := a.waitTagged(b.tag)
	a.conn.SetReadDeadline(time.Time{})
	a.outstanding = a.outstanding[1:]
	spoolInFlight.Add(-int64(b.bytes))
	var no *errNo
	switch {
	case err == nil:
		b.release() // stored: the spool lets go of the bodies
		a.answered = append(a.answered, doneBatch{b: b, uids: parseAppendUIDs(text, len(b.msgs))})
	case asErrNo(err, &no):
		a.answered = append(a.answered, doneBatch{b: b, err: no})
	default:
		return a.lost(err)
	}
	return nil
}

// lost gives up the connection after a failed read or write, or an answer
// that makes no sense: what is in flight is of unknown fate, so nothing more
// is sent or read on it (the engine re-indexes the destination and resumes).
func (a *appender) lost(err error) error {
	if a.broken == nil {
		a.broken = &migrate.RetryableError{Err: fmt.Errorf("imap append: %s: %w", a.cfg.Addr, err)}
		a.conn.Close()
	}
	return a.broken
}

func asErrNo(err error, target **errNo) bool {
	e, ok := err.(*errNo)
	if ok {
		*target = e
	}
	return ok
}

// commit closes the open batch, waits for every answer and returns each
// queued message's outcome in queue order. A refused batch is sent again
// one message at a time.
func (a *appender) commit() ([]appendOutcome, error) {
	if a.broken != nil {
		return nil, a.broken
	}
	if err := a.closeBatch(); err != nil {
		return nil, err
	}
	for len(a.outstanding) > 0 {
		if err := a.awaitOne(); err != nil {
			return nil, err
		}
	}
	return a.collect()
}

// commitSome is commit without waiting for the batches sent since the
// last commitSome: it closes the open batch, reads the answers to the
// batches that were already in flight at the last call, and returns the
// outcomes of that prefix of the queue (and of any answer read meanwhile).
// The engine asks every thousand messages or two seconds, so those older
// batches are answered by then and nothing waits: the link never drains
// for a partial commit (waiting for all but the newest batch emptied a
// pipe of large streamed messages every two seconds on a slow link). It
// also waits while more than batchMessages messages are in flight
// (slowInFlight on a slow link), each held in the engine's queue until
// answered (a 200k copy's peak RSS went from 39.7 to 42.2 MB with twice as
// many queued, in a round whose copies peaked at 39.7 MB). A
// refused batch of many messages makes it a whole commit: each message is
// sent again alone and waited for, which needs no other command in flight.
func (a *appender) commitSome() ([]appendOutcome, error) {
	if a.broken != nil {
		return nil, a.broken
	}
	if err := a.closeBatch(); err != nil {
		return nil, err
	}
	for len(a.outstanding) > 0 && (a.outstanding[0].seq < a.older || a.inFlightMessages() > a.inFlightLimit()) {
		if err := a.awaitOne(); err != nil {
			return nil, err
		}
	}
	a.older = a.sent
	for _, d := range a.answered {
		if d.err != nil && len(d.b.msgs) > 1 {
			return a.commit()
		}
	}
	return a.collect()
}

// sentOff numbers a batch just sent and puts it in flight.
func (a *appender) sentOff(b *appendBatch) {
	b.seq, a.sent = a.sent, a.sent+1
	a.outstanding = append(a.outstanding, b)
}

// inFlightMessages counts the messages of the batches sent and not yet
// answered: each is queued in the engine until its outcome is collected.
func (a *appender) inFlightMessages() int {
	n := 0
	for _, b := range a.outstanding {
		n += len(b.msgs)
	}
	return n
}

// collect turns the answered batches into outcomes, in queue order,
// sending a refused batch's messages again one at a time (only when
// nothing else is in flight: commit).
func (a *appender) collect() ([]appendOutcome, error) {
	var out []appendOutcome
	for _, d := range a.answered {
		if d.err == nil {
			for i := range d.b.msgs {
				var uid uint32
				if i < len(d.uids) {
					uid = d.uids[i]
				}
				out = append(out, appendOutcome{uid: uid})
			}
			continue
		}
		if isQuota(d.err.Error()) {
			return nil, fmt.Errorf("%w: %s: %s", migrate.ErrQuota, a.cfg, d.err)
		}
		if len(d.b.msgs) == 1 {
			out = append(out, appendOutcome{err: &migrate.MessageError{Err: fmt.Errorf("destination refused the message: %s", d.err)}})
			continue
		}
		// All or nothing: find the culprit one message at a time.
		for _, m := range d.b.msgs {
			o, err := a.appendOne(m)
			if err != nil {
				return nil, err
			}
			out = append(out, o)
		}
		d.b.release()
	}
	a.answered = a.answered[:0]
	return out, nil
}

// appendOne sends one spooled message alone and waits for its answer.
func (a *appender) appendOne(m spooled) (appendOutcome, error) {
	tag := a.nextTag()
	a.startAppend(tag, m.mailbox)
	writeAppendItem(a.bw, m.flags, m.date, m.body, a.binary)
	a.bw.WriteString("\r\n")
	a.conn.SetDeadline(time.Now().Add(a.timeout))
	defer a.conn.SetDeadline(time.Time{})
	if err := a.bw.Flush(); err != nil {
		return appendOutcome{}, a.lost(err)
	}
	text, err := a.waitTagged(tag)
	var no *errNo
	switch {
	case err == nil:
		uids := parseAppendUIDs(text, 1)
		if len(uids) == 1 {
			return appendOutcome{uid: uids[0]}, nil
		}
		return appendOutcome{}, nil
	case asErrNo(err, &no):
		if isQuota(no.text) {
			return appendOutcome{}, fmt.Errorf("%w: %s: %s", migrate.ErrQuota, a.cfg, no.text)
		}
		return appendOutcome{err: &migrate.MessageError{Err: fmt.Errorf("destination refused the message: %s", no.text)}}, nil
	}
	return appendOutcome{}, a.lost(err)
}

func isQuota(text string) bool { return quotaRefusal(text) } // imapquirks.go

// addStream queues one large message as an APPEND of its own, streamed
// from r without a spool and without waiting for the answer: the pipeline
// does not stall on it. Alone in its command, a refusal concerns it alone,
// so it never needs sending again; its outcome comes from commit.
func (a *appender) addStream(mailbox string, flags []string, date time.Time, size int64, r io.Reader) error {
	if a.broken != nil {
		return a.broken
	}
	if err := a.closeBatch(); err != nil {
		return err
	}
	for len(a.outstanding) >= maxCommands {
		if err := a.awaitOne(); err != nil {
			return err
		}
	}
	b := &appendBatch{tag: a.nextTag(), mailbox: mailbox, msgs: []spooled{{mailbox: mailbox, flags: flags, date: date}}, streamed: true}
	a.startAppend(b.tag, mailbox)
	writeAppendHead(a.bw, flags, date, size, false) // a streamed body is not looked at first
	n, err := io.Copy(deadlineWriter{a}, io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("source gave %d of %d bytes", n, size)
	}
	if err != nil {
		// A short literal cannot be taken back: drop the connection.
		return a.lost(err)
	}
	a.bw.WriteString("\r\n")
	a.conn.SetWriteDeadline(time.Now().Add(a.timeout))
	err = a.bw.Flush()
	a.sentOff(b)
	if err != nil {
		return a.lost(err)
	}
	return nil
}

// deadlineWriter writes through the buffer, pushing the deadline forward as
// bytes flow so that a large message is not cut by a fixed timeout.
type deadlineWriter struct{ a *appender }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.a.conn.SetWriteDeadline(time.Now().Add(d.a.timeout))
	return d.a.bw.Write(p)
}

// parseAppendUIDs reads "[APPENDUID validity uid-set] ..." and expands the
// set in order; it returns nil unless it names exactly n UIDs.
func parseAppendUIDs(text string, n int) []uint32 {
	rest, ok := strings.CutPrefix(text, "[APPENDUID ")
	if !ok {
		return nil
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return nil
	}
	fields := strings.Fields(rest[:end])
	if len(fields) != 2 {
		return nil
	}
	var uids []uint32
	for _, part := range strings.Split(fields[1], ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return nil
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 32); err != nil {
				return nil
			}
		}
		step := uint64(1)
		if b < a {
			step = ^uint64(0) // descending range: RFC 4315 allows either order
		}
		for u := a; ; u += step {
			uids = append(uids, uint32(u))
			if u == b || len(uids) > n {
				break
			}
		}
	}
	if len(uids) != n {
		return nil
	}
	return uids
}

// pending reports how many messages are queued and not yet committed.
func (a *appender) pending() int {
	n := 0
	if a.open != nil {
		n += len(a.open.msgs)
	}
	for _, b := range a.outstanding {
		n += len(b.msgs)
	}
	for _, d := range a.answered {
		n += len(d.b.msgs)
	}
	return n
}

func (a *appender) close() error {
	clean := a.broken == nil && a.open == nil && len(a.outstanding) == 0
	for _, b := range a.outstanding {
		spoolInFlight.Add(-int64(b.bytes)) // never answered: not in flight any more
	}
	a.outstanding = nil
	a.conn.SetDeadline(time.Now().Add(2 * time.Second))
	if clean {
		a.bw.WriteString(a.nextTag() + " LOGOUT\r\n")
		a.bw.Flush()
	}
	return a.conn.Close()
}

// The spool's memory. Messages up to spoolPackMax are packed one after the
// other into chunks of spoolChunkSize, which a batch gives back together:
// a buffer per message, rounded up to a size class, held four times the
// bytes of a 1 KB message, and the spool of four workers' batches in flight
// was the larger part of the process's peak memory. Larger messages get a
// buffer of their own from spoolBufs, which recycles them, one pool per
// power-of-two size class from 4 KiB to spoolMaxSize: without the pools
// every message is a fresh allocation, and the garbage between
// collections, not the few MB in flight, would set the peak.
const (
	spoolChunkSize = 64 << 10
	spoolPackMax   = 16 << 10
)

var (
	spoolChunks = sync.Pool{New: func() any { b := make([]byte, 0, spoolChunkSize); return &b }}
	spoolBufs   [8]sync.Pool
)

// spoolBody reads exactly size bytes of a message into memory for the
// batch's spool: into its last chunk when the message is small (pooled is
// false: the chunk goes back with the batch), else into a buffer of its own
// (pooled: releaseBody takes it back).
func (b *appendBatch) spoolBody(r io.Reader, size int64) (body []byte, pooled bool, err error) {
	if size > spoolPackMax {
		body, err = readBody(r, size)
		return body, true, err
	}
	n := int(size)
	if k := len(b.chunks); k == 0 || cap(*b.chunks[k-1])-len(*b.chunks[k-1]) < n {
		b.chunks = append(b.chunks, spoolChunks.Get().(*[]byte))
	}
	c := b.chunks[len(b.chunks)-1]
	start := len(*c)
	body = (*c)[start : start+n : start+n]
	if err := fill(r, body); err != nil {
		return nil, false, err
	}
	*c = (*c)[:start+n] // the space of a failed read is used again
	return body, false, nil
}

// fill reads exactly len(buf) bytes of a message from r; a source that
// ends early says how much it gave.
func fill(r io.Reader, buf []byte) error {
	n, err := io.ReadFull(r, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("source gave %d of %d bytes", n, len(buf))
	}
	return err
}

// release gives the batch's spooled bodies back once they are stored (or
// were sent again one by one): nothing may read them afterwards.
func (b *appendBatch) release() {
	for i := range b.msgs {
		if b.msgs[i].pooled {
			releaseBody(b.msgs[i].body)
		}
		b.msgs[i].body = nil
	}
	for _, c := range b.chunks {
		*c = (*c)[:0]
		spoolChunks.Put(c)
	}
	b.chunks = nil
}

func sizeClass(size int64) (class int, capacity int64) {
	capacity = 4 << 10
	for capacity < size && class < len(spoolBufs)-1 {
		capacity <<= 1
		class++
	}
	return class, max(capacity, size)
}

// readBody reads exactly size bytes of a message into memory for the spool.
func readBody(r io.Reader, size int64) ([]byte, error) {
	class, capacity := sizeClass(size)
	var buf []byte
	if p, ok := spoolBufs[class].Get().(*[]byte); ok && int64(cap(*p)) >= size {
		buf = (*p)[:size]
	} else {
		buf = make([]byte, size, capacity)
	}
	if err := fill(r, buf); err != nil {
		releaseBody(buf)
		return nil, err
	}
	return buf, nil
}

// releaseBody gives a spooled body back once the server has stored it.
func releaseBody(b []byte) {
	if cap(b) == 0 || cap(b) > spoolMaxSize {
		return
	}
	class, capacity := sizeClass(int64(cap(b)))
	if int64(cap(b)) != capacity {
		return // not one of ours
	}
	b = b[:0]
	spoolBufs[class].Put(&b)
}
