package migrate

// The POP3 source is a small client of our own over net.Conn, not
// github.com/knadh/go-pop3: that library's RetrRaw does no dot-unstuffing,
// breaks lines longer than 4096 bytes and buffers whole messages, and it has
// no STLS, no CAPA and no deadlines (see LIBRARIES.md). What is needed here
// (RFC 1939 with RFC 2449 CAPA and PIPELINING, RFC 2595 STLS, RFC 3206
// response codes) is a few hundred lines, and every byte of a message passes
// through code we can read.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/formats"
)

const (
	// pop3BufSize is the read buffer. A status or listing line longer than
	// this is refused; message lines may be of any length.
	pop3BufSize = 64 << 10
	// pop3Window is how many RETR, TOP or DELE commands are in flight at once
	// when the server announces PIPELINING (one round trip per window, not
	// per message).
	pop3Window = 32
	// pop3WindowBytes bounds the messages (by their LIST size) requested
	// ahead of the one being read, so that an fn that fails costs at most
	// this much draining to keep the connection in step.
	pop3WindowBytes = 1 << 20
)

// POP3 is a POP3 session used as a Source (one folder, INBOX) and a Deleter.
// It is not safe for concurrent use.
//
// Message IDs are UIDLs. Message numbers are valid for one session only:
// the session keeps the UIDL -> number map of its last List (or of an
// implicit UIDL when Headers, Fetch or Delete come first).
//
// Deleting follows RFC 1939 strictly, and the rule is simple: DELE only marks
// a message; the server removes marked messages when it gets QUIT, and
// Close always sends QUIT on a healthy connection. A connection that failed
// (any I/O or protocol error, a cancelled context) is closed at once without
// QUIT, so a dropped connection deletes nothing. If any DELE is refused,
// Delete sends RSET (unmarking everything) before returning the error; if the
// RSET fails too, the connection is dropped without QUIT. The engine
// therefore calls Delete at the very end of a successful run, on a fresh
// connection, and the error of Close is the server's answer to QUIT: the
// only confirmation that the deletions happened.
type POP3 struct {
	cfg     ServerConfig
	raw     net.Conn // the TCP connection: closing it ends everything
	conn    net.Conn // raw with deadlines, or TLS over it
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration

	caps       map[string]string // CAPA: upper-case tag -> arguments; nil when CAPA failed
	pipelining bool

	nums    map[string]int // UIDL -> message number, this session
	sizes   map[int]int64  // message number -> LIST octets (an estimate, see List)
	deleted map[int]bool   // marked with DELE in this session

	broken error // the connection failed: no more commands, no QUIT
	closed bool

	token string // the OAuth2 token, during the login only
}

var (
	_ Source  = (*POP3)(nil)
	_ Deleter = (*POP3)(nil)
)

// DialPOP3 connects, protects the connection as cfg.TLS asks, and logs in
// (USER/PASS, or AUTH PLAIN when the server offers only SASL).
//
// TLSImplicit is pop3s (port 995). TLSStartTLS sends CAPA and requires STLS;
// a server that does not offer it is refused with an error wrapping ErrTLS,
// never used in plaintext. TLSNone is plaintext all the way. An empty
// cfg.TLSConfig.ServerName is taken from cfg.Addr.
//
// A refused login wraps ErrAuth, a TLS failure ErrTLS; neither carries the
// password. A login refused with [IN-USE], [LOGIN-DELAY] or [SYS/TEMP]
// (RFC 2449, 3206: the mailbox is locked by another session, or the server
// has a transient fault) is a *RetryableError, as are connection failures.
// Every read and write has a deadline of cfg.Timeout (30 s when zero),
// renewed as data flows, so a silent server cannot hang a run.
func DialPOP3(ctx context.Context, cfg ServerConfig) (*POP3, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	switch cfg.TLS {
	case TLSImplicit, TLSStartTLS, TLSNone:
	default:
		return nil, fmt.Errorf("%w: unknown TLS mode %q", ErrUsage, cfg.TLS)
	}
	if strings.ContainsAny(cfg.User, "\r\n\x00") || strings.ContainsAny(cfg.Password, "\r\n\x00") {
		return nil, fmt.Errorf("%w: pop3: %s: user name or password contains a line break or NUL", ErrUsage, cfg)
	}
	if cfg.Token != nil {
		return withToken(ctx, cfg, func(token string) (*POP3, error) { return openPOP3(ctx, cfg, timeout, token) })
	}
	return openPOP3(ctx, cfg, timeout, "")
}

// openPOP3 connects and logs in, with token when it is not empty.
func openPOP3(ctx context.Context, cfg ServerConfig, timeout time.Duration, token string) (*POP3, error) {
	d := &net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, &RetryableError{Err: fmt.Errorf("pop3: %s: %w", cfg.Addr, err)}
	}
	p := &POP3{cfg: cfg, raw: raw, timeout: timeout, token: token}
	defer func() { p.token = "" }() // needed for the login only
	p.setConn(&deadlineConn{Conn: raw, timeout: timeout})
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	if err := p.open(ctx); err != nil {
		raw.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return p, nil
}

// open runs everything from the TLS handshake to the login.
func (p *POP3) open(ctx context.Context) error {
	cfg := p.cfg
	if cfg.TLS == TLSImplicit {
		if err := p.handshake(ctx); err != nil {
			return err
		}
	}
	ok, text, err := p.readStatus()
	if err != nil {
		return p.dialErr("greeting", err)
	}
	if !ok {
		return &RetryableError{Err: fmt.Errorf("pop3: %s: the server refused the connection: %s", cfg.Addr, text)}
	}
	p.capa() // a server without CAPA (RFC 1939 only) is fine
	if cfg.TLS == TLSStartTLS {
		if _, ok := p.caps["STLS"]; !ok {
			return fmt.Errorf("%w: %s: the server does not offer STLS; refusing to log in without TLS (use --src-tls none only on a trusted network)", ErrTLS, cfg.Addr)
		}
		ok, text, err := p.cmd("STLS")
		if err != nil {
			return p.dialErr("STLS", err)
		}
		if !ok {
			return fmt.Errorf("%w: %s: STLS refused: %s; refusing to log in without TLS", ErrTLS, cfg.Addr, text)
		}
		// Anything the server sent after +OK and before the handshake would
		// be plaintext read as if it were protected (STARTTLS injection).
		if p.r.Buffered() > 0 {
			return fmt.Errorf("%w: %s: the server sent data after +OK to STLS, before the TLS handshake", ErrTLS, cfg.Addr)
		}
		if err := p.handshake(ctx); err != nil {
			return err
		}
		p.capa() // RFC 2595: capabilities may change after STLS
	}
	return p.login()
}

func (p *POP3) setConn(c net.Conn) {
	p.conn = c
	p.r = bufio.NewReaderSize(c, pop3BufSize)
	p.w = bufio.NewWriter(c)
}

// handshake starts TLS over the raw connection (keeping its deadlines).
func (p *POP3) handshake(ctx context.Context) error {
	host, _, _ := net.SplitHostPort(p.cfg.Addr)
	tc := p.cfg.TLSConfig.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	t := tls.Client(&deadlineConn{Conn: p.raw, timeout: p.timeout}, tc)
	if err := t.HandshakeContext(ctx); err != nil {
		return p.dialErr("TLS handshake", err)
	}
	p.setConn(t)
	return nil
}

// dialErr classifies a failure before login: certificate and TLS record
// problems are ErrTLS (fatal), anything else is a connection failure.
func (p *POP3) dialErr(what string, err error) error {
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var recErr tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, &certErr), errors.As(err, &hostErr), errors.As(err, &authErr),
		errors.As(err, &recErr), errors.As(err, &alert):
		return fmt.Errorf("%w: %s: %s: %v", ErrTLS, p.cfg.Addr, what, err)
	case errors.Is(err, errPOP3Protocol):
		// Not a POP3 server (or not speaking POP3 on this port): retrying
		// will not help.
		return fmt.Errorf("pop3: %s: %s: %w", p.cfg.Addr, what, err)
	}
	return &RetryableError{Err: fmt.Errorf("pop3: %s: %s: %w", p.cfg.Addr, what, err)}
}

// capa sends CAPA and records the answer; on -ERR or an error p.caps is nil.
func (p *POP3) capa() {
	p.caps, p.pipelining = nil, false
	ok, _, err := p.cmd("CAPA")
	if err != nil || !ok {
		return
	}
	caps := map[string]string{}
	if err := p.readList(func(line string) error {
		tag, args, _ := strings.Cut(line, " ")
		caps[strings.ToUpper(tag)] = args
		return nil
	}); err != nil {
		return
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
	} else {
		ok, text, err = p.cmd("USER " + p.cfg.User)
		if err == nil && ok {
			ok, text, err = p.cmd("PASS " + p.cfg.Password)
		}
	}
	if err != nil {
		return p.dialErr("login", err)
	}
	if !ok {
		text = p.redact(text)
		if hasCode(text, "IN-USE", "LOGIN-DELAY", "SYS/TEMP") {
			return &RetryableError{Err: fmt.Errorf("pop3: %s: login refused for now: %s", p.cfg, text)}
		}
		return fmt.Errorf("%w: %s: login refused: %s", ErrAuth, p.cfg, text)
	}
	return nil
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
	mech, err := chooseOAuth2(p.cfg, func(m string) bool { return slices.Contains(sasl, m) }, sasl)
	if err != nil {
		return err
	}
	cl := newOAuth2Client(mech, p.cfg.User, p.token, p.cfg.Addr)
	_, ir, _ := cl.Start()
	line := "AUTH " + mech + " " + saslLine(ir)
	pendingIR := len(line) > pop3AuthLineMax
	if pendingIR {
		line = "AUTH " + mech
	}
	fail := func(err error) error { return p.dialErr("login", err) } // I/O errors: no server text in them
	if err := p.send(line); err != nil {
		return fail(err)
	}
	if err := p.w.Flush(); err != nil {
		return fail(err)
	}
	for challenges := 0; ; {
		resp, err := p.readLine()
		if err != nil {
			return fail(err)
		}
		switch {
		case strings.HasPrefix(resp, "+OK"):
			return nil
		case strings.HasPrefix(resp, "-ERR"):
			text := strings.TrimSpace(resp[4:])
			if hasCode(text, "IN-USE", "LOGIN-DELAY", "SYS/TEMP") {
				return &RetryableError{Err: fmt.Errorf("pop3: %s: login refused for now: %s", p.cfg, redactToken(p.redact(text), p.token))}
			}
			r := cl.refusal
			if r == nil {
				r = &oauth2Refusal{mech: mech}
			}
			r.text = p.redact(text)
			return refused(p.cfg, r, p.token)
		case strings.HasPrefix(resp, "+"):
			ch := strings.TrimSpace(resp[1:])
			var answer string
			switch {
			case pendingIR && ch == "":
				answer, pendingIR = saslLine(ir), false
			case challenges > 0:
				p.cmd("*") // cancel (RFC 5034): a refusal was answered already
				return refused(p.cfg, cl.refusal, p.token)
			default:
				challenges++
				b, _ := base64.StdEncoding.DecodeString(ch)
				cl.Next(b)
				answer = saslLine(cl.abortResponse())
			}
			if err := p.send(answer); err != nil {
				return fail(err)
			}
			if err := p.w.Flush(); err != nil {
				return fail(err)
			}
		default:
			return p.dialErr("login", fmt.Errorf("%w: %q", errPOP3Protocol, printable(resp, 80)))
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

var errPOP3Protocol = errors.New("unexpected response")

// send buffers one command line; flush sends what is buffered.
func (p *POP3) send(line string) error {
	_, err := p.w.WriteString(line + "\r\n")
	return err
}

// cmd sends one command and reads its status line.
func (p *POP3) cmd(line string) (ok bool, text string, err error) {
	if err := p.send(line); err != nil {
		return false, "", err
	}
	if err := p.w.Flush(); err != nil {
		return false, "", err
	}
	return p.readStatus()
}

// readLine reads one line without its line ending. Lines longer than the
// read buffer are refused (status and listing lines are short).
func (p *POP3) readLine() (string, error) {
	b, err := p.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("%w: a response line longer than %d bytes", errPOP3Protocol, pop3BufSize)
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	return string(b), nil
}

// readStatus reads a "+OK text" or "-ERR text" line.
func (p *POP3) readStatus() (ok bool, text string, err error) {
	line, err := p.readLine()
	if err != nil {
		return false, "", err
	}
	switch {
	case strings.HasPrefix(line, "+OK"):
		return true, strings.TrimSpace(line[3:]), nil
	case strings.HasPrefix(line, "-ERR"):
		return false, strings.TrimSpace(line[4:]), nil
	}
	if len(line) > 80 {
		line = line[:80] + "..."
	}
	return false, "", fmt.Errorf("%w: %q", errPOP3Protocol, line)
}

// readList reads the lines of a multi-line response (after its +OK) up to
// the terminating ".", unstuffing leading dots.
func (p *POP3) readList(fn func(line string) error) error {
	var ferr error
	for {
		line, err := p.readLine()
		if err != nil {
			return err
		}
		if line == "." {
			return ferr
		}
		line = strings.TrimPrefix(line, ".")
		if ferr == nil {
			ferr = fn(line)
		}
	}
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
	return &RetryableError{Err: fmt.Errorf("pop3: %s: %s: %w", p.cfg, what, err)}
}

// usable refuses commands on a closed or failed connection.
func (p *POP3) usable() error {
	if p.closed {
		return fmt.Errorf("pop3: %s: connection already closed", p.cfg)
	}
	if p.broken != nil {
		return &RetryableError{Err: fmt.Errorf("pop3: %s: connection closed after an earlier error: %w", p.cfg, p.broken)}
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
	ok, text, err := p.cmd("STAT")
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
		return nil, p.fail(ctx, "STAT", fmt.Errorf("%w: %q", errPOP3Protocol, "+OK "+text))
	}
	return []formats.Folder{{Path: []string{"INBOX"}, Name: "INBOX", Validity: 1, Messages: uint32(n)}}, nil
}

// List runs UIDL and LIST (pipelined where the server allows) and returns
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

func sortByNum(msgs []formats.Message, nums map[string]int) {
	slices.SortFunc(msgs, func(a, b formats.Message) int { return nums[a.ID] - nums[b.ID] })
}

// uidl fills p.nums (and p.sizes when withSizes) for this session.
func (p *POP3) uidl(ctx context.Context, withSizes bool) error {
	if err := p.send("UIDL"); err != nil {
		return p.fail(ctx, "UIDL", err)
	}
	if withSizes && p.pipelining {
		if err := p.send("LIST"); err != nil {
			return p.fail(ctx, "LIST", err)
		}
	}
	if err := p.w.Flush(); err != nil {
		return p.fail(ctx, "UIDL", err)
	}
	nums := map[string]int{}
	var dup error
	ok, text, err := p.readStatus()
	if err != nil {
		return p.fail(ctx, "UIDL", err)
	}
	if ok {
		err = p.readList(func(line string) error {
			f := strings.Fields(line)
			n, err := 0, errPOP3Protocol
			if len(f) == 2 {
				n, err = strconv.Atoi(f[0])
			}
			if err != nil || n <= 0 {
				return fmt.Errorf("%w: UIDL line %q", errPOP3Protocol, line)
			}
			if prev, ok := nums[f[1]]; ok && dup == nil {
				dup = fmt.Errorf("pop3: %s: messages %d and %d have the same UIDL %q; cannot tell them apart", p.cfg, prev, n, f[1])
			}
			nums[f[1]] = n
			return nil
		})
		if err != nil {
			return p.fail(ctx, "UIDL", err)
		}
	}
	var sizes map[int]int64
	if withSizes {
		if !p.pipelining {
			if err := p.send("LIST"); err != nil {
				return p.fail(ctx, "LIST", err)
			}
			if err := p.w.Flush(); err != nil {
				return p.fail(ctx, "LIST", err)
			}
		}
		lok, ltext, err := p.readStatus()
		if err != nil {
			return p.fail(ctx, "LIST", err)
		}
		sizes = map[int]int64{}
		if lok {
			err = p.readList(func(line string) error {
				f := strings.Fields(line)
				if len(f) >= 2 {
					n, err1 := strconv.Atoi(f[0])
					s, err2 := strconv.ParseInt(f[1], 10, 64)
					if err1 == nil && err2 == nil {
						sizes[n] = s
						return nil
					}
				}
				return fmt.Errorf("%w: LIST line %q", errPOP3Protocol, line)
			})
			if err != nil {
				return p.fail(ctx, "LIST", err)
			}
		} else if ok {
			return fmt.Errorf("pop3: %s: LIST refused: %s", p.cfg, ltext)
		}
	}
	if !ok {
		return fmt.Errorf("pop3: %s: UIDL refused: %s (without UIDL, messages cannot be identified across sessions)", p.cfg, text)
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
// message that looks complete), and Fetch returns a *RetryableError whatever
// fn returned. What fn leaves unread is drained, so fn may stop early.
// A message the server refuses (-ERR, e.g. removed by another session) is
// not passed to fn; [IN-USE] or [SYS/TEMP] make Fetch return a
// *RetryableError.
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

// each runs verb (RETR or TOP) for msgs, keeping up to pop3Window commands
// and pop3WindowBytes of LIST-estimated data in flight, and calls fn with
// each multi-line answer.
func (p *POP3) each(ctx context.Context, folder formats.Folder, msgs []formats.Message, verb string,
	fn func(formats.Message, io.Reader) error) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := p.usable(); err != nil {
		return err
	}
	if err := checkPOP3Folder(folder); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { p.raw.Close() })
	defer stop()
	if p.nums == nil {
		if err := p.uidl(ctx, false); err != nil {
			return err
		}
	}
	type job struct {
		m formats.Message
		n int
	}
	jobs := make([]job, 0, len(msgs))
	for _, m := range msgs {
		if n, ok := p.nums[m.ID]; ok && !p.deleted[n] {
			jobs = append(jobs, job{m, n})
		}
	}
	window := 1
	if p.pipelining {
		window = pop3Window
	}
	cmdName, _, _ := strings.Cut(verb, " ")
	var (
		sent     int
		inflight int64 // estimated bytes of jobs sent and not yet read, after the current one
		ferr     error // the first error from fn, or a retryable -ERR; no more commands are sent
	)
	for i := 0; i < sent || (ferr == nil && i < len(jobs)); i++ {
		if i < sent {
			inflight -= p.sizes[jobs[i].n] // sent ahead, now the current one
		}
		if ferr == nil {
			for sent < len(jobs) && (sent == i || (sent-i < window && inflight+p.sizes[jobs[sent].n] <= pop3WindowBytes)) {
				if err := p.send(fmt.Sprintf(verb, jobs[sent].n)); err != nil {
					return p.fail(ctx, cmdName, err)
				}
				if sent > i {
					inflight += p.sizes[jobs[sent].n]
				}
				sent++
			}
			if err := p.w.Flush(); err != nil {
				return p.fail(ctx, cmdName, err)
			}
		}
		j := jobs[i]
		what := fmt.Sprintf("%s %d (UIDL %s)", cmdName, j.n, j.m.ID)
		ok, text, err := p.readStatus()
		if err != nil {
			return p.fail(ctx, what, err)
		}
		if !ok {
			if ferr == nil && hasCode(text, "IN-USE", "SYS/TEMP", "LOGIN-DELAY") {
				ferr = &RetryableError{Err: fmt.Errorf("pop3: %s: %s refused for now: %s", p.cfg, what, text)}
			}
			continue // gone from the maildrop: not passed to fn
		}
		body := &dotReader{r: p.r}
		if ferr == nil {
			err := fn(j.m, body)
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

// Delete marks msgs with DELE (by this session's UIDL -> number map; a UIDL
// the server no longer lists is already gone and skipped). The server removes
// them when Close sends QUIT. If any DELE is refused, Delete sends RSET, so
// that nothing is deleted, and returns the error; an I/O error drops the
// connection without QUIT, which deletes nothing either.
func (p *POP3) Delete(ctx context.Context, folder formats.Folder, msgs []formats.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := p.usable(); err != nil {
		return err
	}
	if err := checkPOP3Folder(folder); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { p.raw.Close() })
	defer stop()
	if p.nums == nil {
		if err := p.uidl(ctx, false); err != nil {
			return err
		}
	}
	var nums []int
	seen := map[int]bool{}
	for _, m := range msgs {
		if n, ok := p.nums[m.ID]; ok && !seen[n] && !p.deleted[n] {
			seen[n] = true
			nums = append(nums, n)
		}
	}
	window := 1
	if p.pipelining {
		window = pop3Window
	}
	var refused error
	for start := 0; start < len(nums); start += window {
		batch := nums[start:min(start+window, len(nums))]
		for _, n := range batch {
			if err := p.send("DELE " + strconv.Itoa(n)); err != nil {
				return p.fail(ctx, "DELE", err)
			}
		}
		if err := p.w.Flush(); err != nil {
			return p.fail(ctx, "DELE", err)
		}
		for _, n := range batch {
			ok, text, err := p.readStatus()
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
		ok, text, err := p.cmd("RSET")
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
// removed) or a failure to get its answer. A connection that failed earlier
// is just closed, without QUIT, so nothing is deleted.
func (p *POP3) Close() error {
	if p.closed {
		return nil
	}
	p.closed = true
	if p.broken != nil {
		p.conn.Close()
		return nil
	}
	ok, text, err := p.cmd("QUIT")
	p.conn.Close()
	switch {
	case err != nil && len(p.deleted) > 0:
		return &RetryableError{Err: fmt.Errorf("pop3: %s: QUIT after marking %d messages for deletion: no answer (%w); they may or may not have been deleted", p.cfg, len(p.deleted), err)}
	case err != nil:
		return nil // nothing to commit: the session is over either way
	case !ok:
		return fmt.Errorf("pop3: %s: QUIT refused: %s (messages marked for deletion may remain)", p.cfg, text)
	}
	return nil
}

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
