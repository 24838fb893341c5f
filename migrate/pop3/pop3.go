// Package pop3 is the POP3 source (and Deleter) of a migration. The session runs on github.com/knadh/go-pop3: it reads
// the greeting, sends every command line, and reads the status lines and the
// CAPA, UIDL and LIST listings. What that library cannot do correctly is
// done here:
//   - the transport (pop3wire.go): TCP, deadlines, implicit TLS and the TLS
//     upgrade after STLS live under the net.Conn handed to the library as its
//     Dialer, which gives the library one line per read, so that nothing is
//     left in the library's buffer for our readers to miss;
//   - message bytes: the answers to RETR and TOP are read by dotReader,
//     streaming and byte-exact (the library's Retr, RetrRaw and Top do not
//     undo dot-stuffing, split lines over 4096 bytes, rewrite bare LF and
//     buffer whole messages);
//   - parsing: status lines are classified and STAT, CAPA, UIDL and LIST
//     answers parsed here (the library's Stat, List and Uidl panic on a short
//     line, and its errors do not tell -ERR from a broken connection);
//   - SASL challenges ("+ " lines, which the library refuses) and pipelined
//     RETR, TOP and DELE (the library waits for each answer).
// Stat, Retr, RetrRaw, Top, List, Uidl, Dele and Auth are never called.

package pop3

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	gopop3 "github.com/knadh/go-pop3"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

const (
	// pop3BufSize is our read buffer. A status or listing line is refused
	// when it does not fit the library's buffer (4096 bytes), a SASL line
	// when it does not fit this one; message lines may be of any length.
	pop3BufSize = 64 << 10
	// pop3Window is how many RETR, TOP or DELE commands are in flight at once
	// when the server announces PIPELINING (the window slides: one more is
	// sent as each answer is read). To keep a link busy it must hold a round
	// trip's worth of messages: at 80 ms and 16,000 small messages a second
	// (a loopback copy of the benchmark's maildrop on a tmpfs) that is
	// 1,280. At 1,024 the 80 ms wire log showed the RETRs answered at
	// 1,024 a round trip, 12,800 a second, the whole of its 5,954
	// messages' 477 ms. The commands are a few bytes each (45 KB at the
	// start, which the server's socket takes in while the first answers
	// come back); pop3WindowBytes bounds what they ask for.
	pop3Window = 4096
	// pop3Refill is how far the window drains before it is topped up: the
	// commands go out this many or more at a time, in one write, where one
	// a message (a write of 12 bytes, and a wake-up of the server reading
	// it) cost a 200k POP3 copy 0.6 s of mailferry's 4.6 s of CPU.
	pop3Refill = pop3Window / 16
	// pop3WindowBytes bounds the messages (by their LIST size) requested
	// ahead of the one being read, so that an fn that fails costs at most
	// this much draining to keep the connection in step.
	pop3WindowBytes = 8 << 20
)

// POP3 is a POP3 session used as a migrate.Source (one folder, INBOX) and a migrate.Deleter.
// It is not safe for concurrent use.
//
// Message IDs are UIDLs. Message numbers are valid for one session only:
// the session keeps the UIDL -> number map of its last List (or of an
// implicit UIDL when Headers, Fetch or Delete come first).
//
// Deleting follows RFC 1939 strictly, and the rule is simple: DELE only marks
// a message; the server removes marked messages when it gets QUIT, and
// Close always sends QUIT on a healthy connection (and waits for its answer
// only where it marked any). A connection that failed
// (any I/O or protocol error, a cancelled context) is closed at once without
// QUIT, so a dropped connection deletes nothing. If any DELE is refused,
// Delete sends RSET (unmarking everything) before returning the error; if the
// RSET fails too, the connection is dropped without QUIT. The engine
// therefore calls Delete at the very end of a successful run, on a fresh
// connection, and the error of Close is the server's answer to QUIT: the
// only confirmation that the deletions happened.
type POP3 struct {
	cfg     mailconn.ServerConfig
	raw     net.Conn // the TCP connection: closing it ends everything
	conn    net.Conn // raw with deadlines, or TLS over it
	wire    *pop3Wire
	c       *gopop3.Conn // the library's session over wire
	timeout time.Duration

	caps       map[string]string // CAPA: upper-case tag -> arguments; nil when CAPA failed
	pipelining bool
	capaSent   bool // CAPA went out before the greeting was read; its answer is still to read

	nums    map[string]int // UIDL -> message number, this session
	sizes   []int64        // LIST octets by message number (an estimate, see List); 0 where unlisted
	deleted map[int]bool   // marked with DELE in this session

	broken error // the connection failed: no more commands, no QUIT
	closed bool

	token string // the OAuth2 token, during the login only

	// ahead holds the answers a pipelined login asked for, until the
	// first Folders (STAT) and List (UIDL, LIST) take them; nil once taken,
	// or when anything else was sent first.
	ahead *pop3Ahead
}

var (
	_ migrate.Source  = (*POP3)(nil)
	_ migrate.Deleter = (*POP3)(nil)
)

// DialPOP3 connects, protects the connection as cfg.TLS asks, and logs in
// (USER/PASS, or AUTH PLAIN when the server offers only SASL).
//
// mailconn.TLSImplicit is pop3s (port 995). mailconn.TLSStartTLS sends CAPA and requires STLS;
// a server that does not offer it is refused with an error wrapping migrate.ErrTLS,
// never used in plaintext. mailconn.TLSNone is plaintext all the way. An empty
// cfg.TLSConfig.ServerName is taken from cfg.Addr.
//
// A refused login wraps migrate.ErrAuth, a TLS failure migrate.ErrTLS; neither carries the
// password. A login refused with [IN-USE], [LOGIN-DELAY] or [SYS/TEMP]
// (RFC 2449, 3206: the mailbox is locked by another session, or the server
// has a transient fault) is a *migrate.RetryableError, as are connection failures.
// Every read and write has a deadline of cfg.Timeout (30 s when zero),
// renewed as data flows, so a silent server cannot hang a run.
func DialPOP3(ctx context.Context, cfg mailconn.ServerConfig) (*POP3, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	switch cfg.TLS {
	case mailconn.TLSImplicit, mailconn.TLSStartTLS, mailconn.TLSNone:
	default:
		return nil, fmt.Errorf("%w: unknown TLS mode %q", migrate.ErrUsage, cfg.TLS)
	}
	if strings.ContainsAny(cfg.User, "\r\n\x00") || strings.ContainsAny(cfg.Password, "\r\n\x00") {
		return nil, fmt.Errorf("%w: pop3: %s: user name or password contains a line break or NUL", migrate.ErrUsage, cfg)
	}
	if cfg.Token != nil {
		return mailconn.WithToken(ctx, cfg, func(token string) (*POP3, error) { return openPOP3(ctx, cfg, timeout, token) })
	}
	return openPOP3(ctx, cfg, timeout, "")
}

// openPOP3 connects and logs in, with token when it is not empty.
func openPOP3(ctx context.Context, cfg mailconn.ServerConfig, timeout time.Duration, token string) (*POP3, error) {
	p := &POP3{cfg: cfg, timeout: timeout, token: token}
	defer func() { p.token = "" }() // needed for the login only
	stop := func() bool { return false }
	defer func() { stop() }()
	err := p.connect(ctx, func(raw net.Conn) { stop = context.AfterFunc(ctx, func() { raw.Close() }) })
	if err == nil {
		err = p.open(ctx)
	}
	if err != nil {
		if p.raw != nil {
			p.raw.Close()
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return p, nil
}

// connect dials (TCP, and TLS for mailconn.TLSImplicit) under the library's
// NewConn, which then reads the greeting. dialed is called with the TCP
// connection as soon as there is one.
func (p *POP3) connect(ctx context.Context, dialed func(net.Conn)) error {
	var ready bool
	dial := pop3Dialer(func() (net.Conn, error) {
		raw, err := (&net.Dialer{Timeout: p.timeout}).DialContext(ctx, "tcp", p.cfg.Addr)
		if err != nil {
			return nil, &migrate.RetryableError{Err: fmt.Errorf("pop3: %s: %w", p.cfg.Addr, err)}
		}
		p.raw = raw
		dialed(raw)
		p.conn = &deadlineConn{Conn: raw, timeout: p.timeout}
		p.wire = newPOP3Wire(p.conn)
		if p.cfg.TLS == mailconn.TLSImplicit {
			if err := p.handshake(ctx); err != nil {
				return nil, err
			}
		}
		// CAPA goes out before the greeting is read: a server reads
		// what a client sent once it has greeted, and on a slow link
		// the answer then comes half a round trip after the greeting,
		// not a round trip and a half after the connection.
		if _, err := p.wire.Write([]byte("CAPA\r\n")); err != nil {
			return nil, &migrate.RetryableError{Err: fmt.Errorf("pop3: %s: %w", p.cfg.Addr, err)}
		}
		p.capaSent = true
		ready = true
		return p.wire, nil
	})
	c, err := gopop3.New(gopop3.Opt{Dialer: dial}).NewConn()
	if !ready {
		return err // classified by dial
	}
	ok, text, err := p.wire.reply(err)
	if err != nil {
		return p.dialErr("greeting", err)
	}
	if !ok {
		return &migrate.RetryableError{Err: fmt.Errorf("pop3: %s: the server refused the connection: %s", p.cfg.Addr, text)}
	}
	p.c = c
	return nil
}

// open runs everything after the greeting up to the login: CAPA, and STLS
// with its handshake when cfg.TLS asks for it.
func (p *POP3) open(ctx context.Context) error {
	cfg := p.cfg
	p.capa() // a server without CAPA (RFC 1939 only) is fine
	if cfg.TLS == mailconn.TLSStartTLS {
		if _, ok := p.caps["STLS"]; !ok {
			return fmt.Errorf("%w: %s: the server does not offer STLS; refusing to log in without TLS (use --src-tls none only on a trusted network)", migrate.ErrTLS, cfg.Addr)
		}
		ok, text, err := p.cmd("STLS")
		if err != nil {
			return p.dialErr("STLS", err)
		}
		if !ok {
			return fmt.Errorf("%w: %s: STLS refused: %s; refusing to log in without TLS", migrate.ErrTLS, cfg.Addr, text)
		}
		// Anything the server sent after +OK and before the handshake would
		// be plaintext read as if it were protected (STARTTLS injection).
		if p.wire.r.Buffered() > 0 {
			return fmt.Errorf("%w: %s: the server sent data after +OK to STLS, before the TLS handshake", migrate.ErrTLS, cfg.Addr)
		}
		if err := p.handshake(ctx); err != nil {
			return err
		}
		p.capa() // RFC 2595: capabilities may change after STLS
	}
	if err := p.utf8(); err != nil {
		return err
	}
	return p.login()
}

// handshake starts TLS over the raw connection (keeping its deadlines) and
// puts it under the library's session.
func (p *POP3) handshake(ctx context.Context) error {
	tc := p.cfg.TLSClientConfig("")
	t := tls.Client(&deadlineConn{Conn: p.raw, timeout: p.timeout}, tc)
	if err := t.HandshakeContext(ctx); err != nil {
		return p.dialErr("TLS handshake", err)
	}
	p.conn = t
	p.wire.setConn(t)
	return nil
}

// dialErr classifies a failure before login (mailconn.ClassifyDialError).
func (p *POP3) dialErr(what string, err error) error {
	return mailconn.ClassifyDialError("pop3", p.cfg, what, err)
}

// capa sends CAPA (or reads the answer to the one sent before the
// greeting) and records the answer; on -ERR or an error p.caps is nil.
func (p *POP3) capa() {
	p.caps, p.pipelining = nil, false
	sent := p.capaSent
	p.capaSent = false
	ok, _, lines, err := p.listing("CAPA", !sent)
	if err != nil || !ok {
		return
	}
	caps := map[string]string{}
	for _, line := range lines {
		tag, args, _ := strings.Cut(line, " ")
		caps[strings.ToUpper(tag)] = args
	}
	p.caps = caps
	_, p.pipelining = caps["PIPELINING"]
}

// login uses USER/PASS, or AUTH PLAIN when CAPA lists SASL PLAIN but not
// USER; with an OAuth2 token, AUTH OAUTHBEARER or XOAUTH2 (loginOAuth2).
func (p *POP3) login() error {
	if p.token != "" {
		return p.loginOAuth2()
	}
	_, hasUser := p.caps["USER"]
	sasl := strings.Fields(strings.ToUpper(p.caps["SASL"]))
	plain := false
	for _, m := range sasl {
		plain = plain || m == "PLAIN"
	}
	var ok bool
	var text string
	var err error
	if p.caps != nil && !hasUser && plain {
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + p.cfg.User + "\x00" + p.cfg.Password))
		ok, text, err = p.cmd("AUTH PLAIN " + resp)
	} else if p.pipelining {
		ok, text, err = p.loginPipelined()
	} else {
		ok, text, err = p.call(func() error { return p.c.User(p.cfg.User) })
		if err == nil && ok {
			ok, text, err = p.call(func() error { return p.c.Pass(p.cfg.Password) })
		}
	}
	if err != nil {
		return p.dialErr("login", err)
	}
	if !ok {
		text = p.redact(text)
		if hasCode(text, "IN-USE", "LOGIN-DELAY", "SYS/TEMP") {
			return &migrate.RetryableError{Err: fmt.Errorf("pop3: %s: login refused for now: %s", p.cfg, text)}
		}
		return fmt.Errorf("%w: %s: login refused: %s", migrate.ErrAuth, p.cfg, text)
	}
	return nil
}

// pop3Ahead is what a pipelined login asked beyond the login itself: the
// answers to STAT, UIDL and LIST, for the session's first Folders and List.
type pop3Ahead struct {
	stat, uidl, list *listingAnswer // nil once taken (stat has no lines)
}

// loginPipelined sends USER and PASS together where the server pipelines
// (CAPA PIPELINING, RFC 2449), and once logged in STAT, UIDL and LIST
// together: what a run asks next (Folders, then List), so that the
// session reaches its listing in two round trips after CAPA instead of
// four (on a slow link, all of them before the first message). Nothing is
// pipelined across the login itself: Courier's pop3login hands the
// session to pop3d after PASS, and what it had read beyond PASS was lost
// (the STAT never answered). The answers are kept for Folders and List
// (p.ahead).
func (p *POP3) loginPipelined() (ok bool, text string, err error) {
	if err := p.send("USER "+p.cfg.User, "PASS "+p.cfg.Password); err != nil {
		return false, "", err
	}
	okUser, textUser, err := p.status()
	if err != nil {
		return false, "", err
	}
	if ok, text, err = p.status(); err != nil || !okUser || !ok {
		if err == nil && !okUser {
			text = textUser
		}
		return false, text, err
	}
	// A broken answer to what follows the login leaves the session out
	// of step: it is closed, and its first use says why.
	a := &pop3Ahead{stat: &listingAnswer{}, uidl: &listingAnswer{}, list: &listingAnswer{}}
	if err := p.send("STAT", "UIDL", "LIST"); err != nil {
		p.fail(nil, "STAT", err)
		return true, text, nil
	}
	if a.stat.ok, a.stat.text, a.stat.err = p.status(); a.stat.err != nil {
		p.fail(nil, "STAT", a.stat.err)
	}
	for i, l := range []*listingAnswer{a.uidl, a.list} {
		if p.broken == nil {
			if l.ok, l.text, l.lines, l.err = p.listing("", false); l.err != nil {
				p.fail(nil, []string{"UIDL", "LIST"}[i], l.err)
			}
		}
	}
	if p.broken == nil {
		p.ahead = a
	}
	return true, text, nil
}

// send writes commands in one go, without reading their answers
// (pipelined).
func (p *POP3) send(cmds ...string) error {
	p.wire.cork()
	for _, c := range cmds {
		if err := p.c.Send(c); err != nil {
			return err
		}
	}
	return p.wire.uncork()
}

// pop3AuthLineMax is the longest AUTH command that may carry the initial
// response (RFC 5034, 4: 255 octets); a longer one (Microsoft's tokens are)
// waits for the server's empty challenge instead.
const pop3AuthLineMax = 255

// loginOAuth2 runs AUTH with the OAuth2 mechanism CAPA's SASL line offers.
// After an error challenge it answers as the mechanism wants and reads the
// server's -ERR; any failure leaves the connection to be closed.
func (p *POP3) loginOAuth2() error {
	sasl := strings.Fields(strings.ToUpper(p.caps["SASL"]))
	mech, err := mailconn.ChooseOAuth2(p.cfg, func(m string) bool { return slices.Contains(sasl, m) }, sasl)
	if err != nil {
		return err
	}
	cl := mailconn.NewOAuth2Client(mech, p.cfg.User, p.token, p.cfg.Addr)
	_, ir, _ := cl.Start()
	line := "AUTH " + mech + " " + mailconn.SASLLine(ir)
	pendingIR := len(line) > pop3AuthLineMax
	if pendingIR {
		line = "AUTH " + mech
	}
	fail := func(err error) error { return p.dialErr("login", err) } // I/O errors: no server text in them
	if err := p.c.Send(line); err != nil {
		return fail(err)
	}
	for challenges := 0; ; {
		resp, err := p.wire.readLine() // "+ " lines: the library's ReadOne refuses them
		if err != nil {
			return fail(err)
		}
		switch {
		case strings.HasPrefix(resp, "+OK"):
			return nil
		case strings.HasPrefix(resp, "-ERR"):
			text := strings.TrimSpace(resp[4:])
			if hasCode(text, "IN-USE", "LOGIN-DELAY", "SYS/TEMP") {
				return &migrate.RetryableError{Err: fmt.Errorf("pop3: %s: login refused for now: %s", p.cfg, mailconn.RedactToken(p.redact(text), p.token))}
			}
			r := cl.Refusal()
			if r == nil {
				r = mailconn.NewRefusal(mech, "")
			}
			return mailconn.Refused(p.cfg, r.WithText(p.redact(text)), p.token)
		case strings.HasPrefix(resp, "+"):
			ch := strings.TrimSpace(resp[1:])
			var answer string
			switch {
			case pendingIR && ch == "":
				answer, pendingIR = mailconn.SASLLine(ir), false
			case challenges > 0:
				p.cmd("*") // cancel (RFC 5034): a refusal was answered already
				return mailconn.Refused(p.cfg, cl.Refusal(), p.token)
			default:
				challenges++
				b, _ := base64.StdEncoding.DecodeString(ch)
				cl.Next(b)
				answer = mailconn.SASLLine(cl.AbortResponse())
			}
			if err := p.c.Send(answer); err != nil {
				return fail(err)
			}
		default:
			return p.dialErr("login", fmt.Errorf("%w: %q", mailconn.ErrProtocol, mailconn.Printable(resp, 80)))
		}
	}
}

// redact removes the password from server text, in case a server echoes it.
func (p *POP3) redact(s string) string {
	if p.cfg.Password != "" {
		s = strings.ReplaceAll(s, p.cfg.Password, "***")
	}
	return s
}

// hasCode reports whether a -ERR text starts with one of the RFC 2449
// response codes ("[IN-USE] ...").
func hasCode(text string, codes ...string) bool {
	if !strings.HasPrefix(text, "[") {
		return false
	}
	end := strings.IndexByte(text, ']')
	if end < 0 {
		return false
	}
	code := strings.ToUpper(text[1:end])
	for _, c := range codes {
		if code == c || strings.HasPrefix(code, c+"/") {
			return true
		}
	}
	return false
}

// call runs a library call that reads one status line, and classifies that
// line (pop3Wire.reply).
func (p *POP3) call(f func() error) (ok bool, text string, err error) {
	p.wire.mark()
	return p.wire.reply(f())
}

// cmd sends one command through the library and reads its status line.
func (p *POP3) cmd(line string) (ok bool, text string, err error) {
	return p.call(func() error { _, err := p.c.Cmd(line, false); return err })
}

// status reads the status line of a command sent earlier (pipelined).
func (p *POP3) status() (ok bool, text string, err error) {
	return p.call(func() error { _, err := p.c.ReadOne(); return err })
}

// listingAnswer is what listing returns, kept for later.
type listingAnswer struct {
	ok    bool
	text  string
	lines []string
	err   error
}

// listing sends a command with a multi-line answer through the library (or,
// when send is false, reads the answer to one sent earlier, pipelined) and
// returns the lines of the answer, leading dots unstuffed (when ok; else
// text is the -ERR text). The lines are parsed by the caller, never by the
// library.
func (p *POP3) listing(cmd string, send bool) (ok bool, text string, lines []string, err error) {
	var buf *bytes.Buffer
	ok, text, err = p.call(func() (err error) {
		if send {
			buf, err = p.c.Cmd(cmd, true)
			return err
		}
		if _, err = p.c.ReadOne(); err != nil { // sent earlier, pipelined
			return err
		}
		buf, err = p.c.ReadAll()
		return err
	})
	if err != nil || !ok {
		return ok, text, nil, err
	}
	// The library joins the lines with CRLF after each; they hold no LF.
	lines = strings.Split(buf.String(), "\r\n")
	lines = lines[:len(lines)-1]
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, ".")
	}
	return true, text, lines, nil
}

// fail marks the connection unusable and closes it: after an I/O or protocol
// error the command stream is out of step, and no QUIT may follow (QUIT would
// commit DELEs). It returns the error to give the caller.
func (p *POP3) fail(ctx context.Context, what string, err error) error {
	if p.broken == nil {
		p.broken = err
	}
	p.raw.Close()
	if ctx != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return &migrate.RetryableError{Err: fmt.Errorf("pop3: %s: %s: %w", p.cfg, what, err)}
}

// usable refuses commands on a closed or failed connection.
func (p *POP3) usable() error {
	if p.closed {
		return fmt.Errorf("pop3: %s: connection already closed", p.cfg)
	}
	if p.broken != nil {
		return &migrate.RetryableError{Err: fmt.Errorf("pop3: %s: connection closed after an earlier error: %w", p.cfg, p.broken)}
	}
	return nil
}

func checkPOP3Folder(f formats.Folder) error {
	if f.Name != "INBOX" {
		return fmt.Errorf("pop3: no folder %q: a POP3 server has only INBOX", f.Name)
	}
	return nil
}

// Folders returns the one folder POP3 has: INBOX, with the message count of
// STAT. Validity is always 1: a UIDL is meant to be stable for good
// (RFC 1939), and identity keys catch a server that renumbers anyway.
func (p *POP3) Folders(ctx context.Context) ([]formats.Folder, error) {
	if err := p.usable(); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { p.raw.Close() })
	defer stop()
	var ok bool
	var text string
	var err error
	if a := p.ahead; a != nil && a.stat != nil { // asked with the login
		ok, text, err = a.stat.ok, a.stat.text, a.stat.err
		a.stat = nil
	} else {
		ok, text, err = p.cmd("STAT")
	}
	if err != nil {
		return nil, p.fail(ctx, "STAT", err)
	}
	if !ok {
		return nil, fmt.Errorf("pop3: %s: STAT refused: %s", p.cfg, text)
	}
	f := strings.Fields(text)
	var n uint64
	if len(f) >= 1 {
		n, err = strconv.ParseUint(f[0], 10, 32)
	}
	if len(f) < 1 || err != nil {
		return nil, p.fail(ctx, "STAT", fmt.Errorf("%w: %q", mailconn.ErrProtocol, "+OK "+text))
	}
	return []formats.Folder{{Path: []string{"INBOX"}, Name: "INBOX", Validity: 1, Messages: uint32(n)}}, nil
}

// List runs UIDL and LIST (one after the other) and returns
// the messages in message-number order (the maildrop's order; UIDLs are
// opaque strings with no order of their own), with ID = UIDL, Size = -1,
// no flags and a zero date.
//
// Size is -1 because LIST's octet count is only an estimate of what RETR
// yields: RFC 1939 lets it differ (a server storing LF line endings may count
// them, or not, before adding CR), and it never accounts for dot-stuffing.
// It is kept inside the session to bound pipelining.
//
// Two messages with the same UIDL make List fail: neither could be named
// safely, and skipping one would lose it silently.
func (p *POP3) List(ctx context.Context, folder formats.Folder) (uint32, []formats.Message, error) {
	if err := p.usable(); err != nil {
		return 0, nil, err
	}
	if err := checkPOP3Folder(folder); err != nil {
		return 0, nil, err
	}
	stop := context.AfterFunc(ctx, func() { p.raw.Close() })
	defer stop()
	if err := p.uidl(ctx, true); err != nil {
		return 0, nil, err
	}
	msgs := make([]formats.Message, 0, len(p.nums))
	for id, n := range p.nums {
		if !p.deleted[n] {
			msgs = append(msgs, formats.Message{ID: id, Size: -1})
		}
	}
	sortByNum(msgs, p.nums)
	return 1, msgs, nil
}

// listSizes parses a LIST answer's lines ("n size") into sizes by number
// (an array of them: a map took about 50 bytes a message, 3 MB for a
// 60,000-message maildrop). Numbers run from 1 to the messages of the
// maildrop when the session began (RFC 1939 never renumbers them), which
// is at most most; a server numbering beyond that, far beyond, gets no
// size for those messages rather than an array that large (a size only
// bounds what is asked for at once).
func listSizes(lines []string, most int) ([]int64, error) {
	sizes := make([]int64, len(lines)+1)
	for _, line := range lines {
		f := strings.Fields(line)
		var err1, err2 error = mailconn.ErrProtocol, nil
		var n int
		var s int64
		if len(f) >= 2 {
			n, err1 = strconv.Atoi(f[0])
			s, err2 = strconv.ParseInt(f[1], 10, 64)
		}
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: LIST line %q", mailconn.ErrProtocol, mailconn.Printable(line, 80))
		}
		switch {
		case n < len(sizes):
		case n <= 2*most+1024:
			sizes = append(sizes, make([]int64, n+1-len(sizes))...)
		default:
			continue
		}
		if n > 0 {
			sizes[n] = s
		}
	}
	return sizes, nil
}

// sizeOf is message n's LIST octets, 0 where LIST did not give it.
func (p *POP3) sizeOf(n int32) int64 {
	if n > 0 && int(n) < len(p.sizes) {
		return p.sizes[n]
	}
	return 0
}

func sortByNum(msgs []formats.Message, nums map[string]int) {
	slices.SortFunc(msgs, func(a, b formats.Message) int { return nums[a.ID] - nums[b.ID] })
}

// uidl fills p.nums (and p.sizes when withSizes) for this session. The
// listings are read by the library and parsed here: a short or malformed
// line is a protocol error.
func (p *POP3) uidl(ctx context.Context, withSizes bool) error {
	var u, list listingAnswer
	switch a := p.ahead; {
	case withSizes && a != nil && a.uidl != nil:
		// Asked with the login (loginPipelined), nothing sent since.
		u, list = *a.uidl, *a.list
	case withSizes && p.pipelining:
		// Where the server pipelines, UIDL and LIST go out together: one
		// round trip, and both answers are read before either is looked at.
		if err := p.send("UIDL", "LIST"); err != nil {
			return p.fail(ctx, "UIDL", err)
		}
		u.ok, u.text, u.lines, u.err = p.listing("UIDL", false)
		if u.err == nil {
			list.ok, list.text, list.lines, list.err = p.listing("LIST", false)
		}
	default:
		u.ok, u.text, u.lines, u.err = p.listing("UIDL", true)
		if withSizes && u.err == nil && u.ok {
			list.ok, list.text, list.lines, list.err = p.listing("LIST", true)
		}
	}
	p.ahead = nil // what the login asked is taken, or out of date
	ok, text, lines, err := u.ok, u.text, u.lines, u.err
	if err != nil {
		return p.fail(ctx, "UIDL", err)
	}
	if !ok {
		return fmt.Errorf("pop3: %s: UIDL refused: %s (without UIDL, messages cannot be identified across sessions)", p.cfg, text)
	}
	nums := map[string]int{}
	var dup error
	for _, line := range lines {
		f := strings.Fields(line)
		n, err := 0, mailconn.ErrProtocol
		if len(f) == 2 {
			n, err = strconv.Atoi(f[0])
		}
		if err != nil || n <= 0 || n > math.MaxInt32 { // a job keeps it in 32 bits (pop3Job)
			return p.fail(ctx, "UIDL", fmt.Errorf("%w: UIDL line %q", mailconn.ErrProtocol, mailconn.Printable(line, 80)))
		}
		if prev, ok := nums[f[1]]; ok && dup == nil {
			dup = fmt.Errorf("pop3: %s: messages %d and %d have the same UIDL %q; cannot tell them apart", p.cfg, prev, n, f[1])
		}
		nums[f[1]] = n
	}
	var sizes []int64
	if withSizes {
		ok, text, lines, err := list.ok, list.text, list.lines, list.err
		if err != nil {
			return p.fail(ctx, "LIST", err)
		}
		if !ok {
			return fmt.Errorf("pop3: %s: LIST refused: %s", p.cfg, text)
		}
		if sizes, err = listSizes(lines, len(u.lines)+len(p.deleted)); err != nil {
			return p.fail(ctx, "LIST", err)
		}
	}
	if dup != nil {
		return dup
	}
	p.nums = nums
	if sizes != nil {
		p.sizes = sizes
	}
	return nil
}

// Headers sends TOP n 0 for each message and passes the header block as the
// server sends it (with its empty line, like IMAP's BODY[HEADER]), up to
// formats.MaxHeaderBytes. A server whose CAPA lacks TOP is asked for RETR,
// read up to the end of the header.
func (p *POP3) Headers(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(m formats.Message, header []byte) error) error {
	verb := "TOP %d 0"
	if _, ok := p.caps["TOP"]; p.caps != nil && !ok {
		verb = "RETR %d"
	}
	return p.each(ctx, folder, msgs, verb, func(m formats.Message, body io.Reader) error {
		h, err := readHeader(body)
		if err != nil {
			return err
		}
		return fn(m, h)
	})
}

// readHeader reads up to and including the empty line that ends the header
// (or everything, up to formats.MaxHeaderBytes).
func readHeader(r io.Reader) ([]byte, error) {
	var b []byte
	buf := make([]byte, 4096)
	for len(b) < formats.MaxHeaderBytes {
		n, err := r.Read(buf[:min(len(buf), formats.MaxHeaderBytes-len(b))])
		from := max(len(b)-3, 0)
		b = append(b, buf[:n]...)
		if end := headerEnd(b, from); end >= 0 {
			return b[:end], nil
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// headerEnd returns the length of the header including its empty line, or
// -1 when b holds no empty line (searching from index from).
func headerEnd(b []byte, from int) int {
	if from == 0 {
		if bytes.HasPrefix(b, []byte("\n")) {
			return 1
		}
		if bytes.HasPrefix(b, []byte("\r\n")) {
			return 2
		}
	}
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return -1
}

// Fetch sends RETR for each message (pipelined where the server allows) and
// passes fn a reader of the message exactly as the server sends it, with
// the dot-stuffing of RFC 1939 undone and nothing else changed: line endings
// as sent (CRLF from every server that follows the RFC), lines of any
// length, no whole-message buffer.
//
// The reader returns io.EOF only after the terminating ".\r\n" has been read;
// a connection that ends or stalls before it gives an error (never a short
// message that looks complete), and Fetch returns a *migrate.RetryableError whatever
// fn returned. What fn leaves unread is drained, so fn may stop early.
// A message the server refuses (-ERR, e.g. removed by another session) is
// not passed to fn; [IN-USE] or [SYS/TEMP] make Fetch return a
// *migrate.RetryableError.
//
// What Dovecot 2.3 serves, pinned by pop3_test.go: the bytes of IMAP's
// BODY[] (bare LF turned into CRLF, a lone CR kept), except that a NUL byte
// comes as NUL where BODY[] gives 0x80, and a message that does not end with
// a line break gets CRLF added (RFC 1939 has no way to end mid-line; LIST
// counts the message without it). RETR sets \Seen, applied when the session
// ends, with or without QUIT; TOP (Headers) does not.
func (p *POP3) Fetch(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(m formats.Message, body io.Reader) error) error {
	return p.each(ctx, folder, msgs, "RETR %d", fn)
}

// begin readies the session for commands on msgs of folder: the
// connection is usable, the folder is INBOX, a cancelled ctx closes the
// connection until stop is called, and the UIDL -> number map is there.
func (p *POP3) begin(ctx context.Context, folder formats.Folder) (stop func() bool, err error) {
	if err := p.usable(); err != nil {
		return nil, err
	}
	if err := checkPOP3Folder(folder); err != nil {
		return nil, err
	}
	stop = context.AfterFunc(ctx, func() { p.raw.Close() })
	if p.nums == nil {
		if err := p.uidl(ctx, false); err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}

// each runs verb (RETR or TOP) for msgs, keeping up to pop3Window commands
// and pop3WindowBytes of LIST-estimated data in flight, and calls fn with
// each multi-line answer.
func (p *POP3) each(ctx context.Context, folder formats.Folder, msgs []formats.Message, verb string,
	fn func(formats.Message, io.Reader) error) error {
	if len(msgs) == 0 {
		return nil
	}
	stop, err := p.begin(ctx, folder)
	if err != nil {
		return err
	}
	defer stop()
	jobs := p.jobs(msgs)
	window := p.window()
	cmdName, _, _ := strings.Cut(verb, " ")
	var (
		sent     int
		inflight int64 // estimated bytes of jobs sent and not yet read, after the current one
		ferr     error // the first error from fn, or a retryable -ERR; no more commands are sent
	)
	for i := 0; i < sent || (ferr == nil && i < len(jobs)); i++ {
		if i < sent {
			inflight -= p.sizeOf(jobs[i].n) // sent ahead, now the current one
		}
		if ferr == nil && (sent == i || sent-i <= window-min(window, pop3Refill)) {
			p.wire.cork() // the window goes out in one write
			for sent < len(jobs) && (sent == i || (sent-i < window && inflight+p.sizeOf(jobs[sent].n) <= pop3WindowBytes)) {
				if err := p.c.Send(fmt.Sprintf(verb, jobs[sent].n)); err != nil {
					return p.fail(ctx, cmdName, err)
				}
				if sent > i {
					inflight += p.sizeOf(jobs[sent].n)
				}
				sent++
			}
			if err := p.wire.uncork(); err != nil {
				return p.fail(ctx, cmdName, err)
			}
		}
		j := jobs[i]
		m := msgs[j.i]
		what := fmt.Sprintf("%s %d (UIDL %s)", cmdName, j.n, m.ID)
		ok, text, err := p.status()
		if err != nil {
			return p.fail(ctx, what, err)
		}
		if !ok {
			if ferr == nil && hasCode(text, "IN-USE", "SYS/TEMP", "LOGIN-DELAY") {
				ferr = &migrate.RetryableError{Err: fmt.Errorf("pop3: %s: %s refused for now: %s", p.cfg, what, text)}
			}
			continue // gone from the maildrop: not passed to fn
		}
		body := &dotReader{r: p.wire.r} // the library's buffer is empty: see pop3Wire
		if ferr == nil {
			err := fn(m, body)
			if body.err != nil {
				return p.fail(ctx, what, body.err)
			}
			ferr = err
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return p.fail(ctx, what, err)
		}
		body.r = nil // fn may not keep it
	}
	if ferr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return ferr
}

// pop3Job is one message of a command: its place in the caller's list
// and its number in this session. Eight bytes, where a copy of the
// message took 104: a maildrop's jobs are made at once.
type pop3Job struct {
	i, n int32
}

// jobs returns msgs that the server listed in this session and that were
// not deleted in it, with their numbers.
func (p *POP3) jobs(msgs []formats.Message) []pop3Job {
	jobs := make([]pop3Job, 0, len(msgs))
	for i, m := range msgs {
		if n, ok := p.nums[m.ID]; ok && !p.deleted[n] {
			jobs = append(jobs, pop3Job{int32(i), int32(n)})
		}
	}
	return jobs
}

// window is how many commands may be in flight.
func (p *POP3) window() int {
	if p.pipelining {
		return pop3Window
	}
	return 1
}

// Delete marks msgs with DELE (by this session's UIDL -> number map; a UIDL
// the server no longer lists is already gone and skipped). The server removes
// them when Close sends QUIT. If any DELE is refused, Delete sends RSET, so
// that nothing is deleted, and returns the error; an I/O error drops the
// connection without QUIT, which deletes nothing either.
func (p *POP3) Delete(ctx context.Context, folder formats.Folder, msgs []formats.Message) error {
	p.ahead = nil // DELE changes what UIDL and LIST would say
	if len(msgs) == 0 {
		return nil
	}
	stop, err := p.begin(ctx, folder)
	if err != nil {
		return err
	}
	defer stop()
	var nums []int
	seen := map[int]bool{}
	for _, m := range msgs {
		if n, ok := p.nums[m.ID]; ok && !seen[n] && !p.deleted[n] {
			seen[n] = true
			nums = append(nums, n)
		}
	}
	window := p.window()
	var refused error
	for start := 0; start < len(nums); start += window {
		batch := nums[start:min(start+window, len(nums))]
		p.wire.cork()
		for _, n := range batch {
			if err := p.c.Send("DELE " + strconv.Itoa(n)); err != nil {
				return p.fail(ctx, "DELE", err)
			}
		}
		if err := p.wire.uncork(); err != nil {
			return p.fail(ctx, "DELE", err)
		}
		for _, n := range batch {
			ok, text, err := p.status()
			if err != nil {
				return p.fail(ctx, "DELE", err)
			}
			if !ok && refused == nil {
				refused = fmt.Errorf("pop3: %s: DELE %d refused: %s", p.cfg, n, text)
			}
		}
		if refused != nil {
			break
		}
	}
	if refused != nil {
		ok, text, err := p.call(p.c.Rset)
		if err != nil {
			return errors.Join(refused, p.fail(ctx, "RSET", err))
		}
		if !ok {
			// Marks may remain: never QUIT on this connection.
			return errors.Join(refused, p.fail(ctx, "RSET", fmt.Errorf("RSET refused: %s", text)))
		}
		p.deleted = nil
		return fmt.Errorf("%w; RSET sent: nothing will be deleted", refused)
	}
	if ctx.Err() != nil {
		// The marks are there, but the caller gave up: do not commit them.
		return p.fail(ctx, "DELE", ctx.Err())
	}
	if p.deleted == nil {
		p.deleted = map[int]bool{}
	}
	for _, n := range nums {
		p.deleted[n] = true
	}
	return nil
}

// Close ends the session. On a healthy connection it sends QUIT, which makes
// the server remove the messages marked by Delete (RFC 1939 UPDATE state);
// the error is the server's refusal (-ERR: some marked messages were not
// removed) or a failure to get its answer. Where nothing was marked, the
// answer is not awaited. A connection that failed earlier is just closed,
// without QUIT, so nothing is deleted.
func (p *POP3) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	if p.broken != nil {
		p.conn.Close()
		return nil
	}
	if len(p.deleted) == 0 {
		// Nothing to commit: QUIT ends the session as the server expects
		// (and keeps what RETR changed, e.g. Dovecot's \Seen), but its
		// answer would tell nothing, and on a slow link waiting for it
		// was a run's last round trip. As IMAP's LOGOUT (imap.go).
		p.send("QUIT")
		p.conn.Close()
		return nil
	}
	ok, text, err := p.cmd("QUIT")
	p.conn.Close()
	switch {
	case err != nil && len(p.deleted) > 0:
		return &migrate.RetryableError{Err: fmt.Errorf("pop3: %s: QUIT after marking %d messages for deletion: no answer (%w); they may or may not have been deleted", p.cfg, len(p.deleted), err)}
	case err != nil:
		return nil // nothing to commit: the session is over either way
	case !ok:
		return fmt.Errorf("pop3: %s: QUIT refused: %s (messages marked for deletion may remain)", p.cfg, text)
	}
	return nil
}
