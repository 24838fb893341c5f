// Package memserver runs throw-away IMAP servers inside the process, on
// 127.0.0.1, for `mailferry demo` (a complete migration between two embedded
// servers, with no setup) and for fast unit tests.
//
// A Server wraps go-imap's imapmemserver: one user, every message in RAM,
// plaintext LOGIN / AUTHENTICATE PLAIN allowed because it only listens on the
// loopback interface. Start creates INBOX; Add creates further folders (and
// their parents) and appends messages directly through the imapmemserver
// User API, without a network round trip; Dump reads everything back through
// an in-process IMAP client so that a demo or a test can prove that a source
// and a destination hold the same messages. DemoMessages generates a
// deterministic, realistic mailbox to migrate.
//
// Behaviour of imapmemserver (go-imap v2.0.0-beta.8) worth knowing:
//
//   - The hierarchy separator is "/". Folder names are stored and listed in
//     UTF-8 (modified UTF-7 on the wire, decoded by imapclient).
//   - Flags are stored lowercased. On the wire the server sends `\seen` and
//     `$label1`; imapclient turns the system flags and the well-known
//     keywords it knows ($Forwarded, $MDNSent, $Junk, $NotJunk, $Phishing,
//     $Important) back into their usual spelling, but any other keyword
//     comes back lowercased: "$Label1" is read back as "$label1".
//     NormalizeFlags maps a flag list to that form.
//   - FLAGS in FETCH responses come in random order (a Go map), so Dump and
//     NormalizeFlags sort them.
//   - There are no \Noselect placeholders: LIST only returns mailboxes that
//     were created (CREATE "X/Y" over IMAP does not make "X" appear), so Add
//     creates every parent as an ordinary (selectable, usually empty)
//     mailbox. Add subscribes every mailbox it creates, and LIST reports
//     \Subscribed even without RETURN (SUBSCRIBED); it never reports
//     \HasChildren/\HasNoChildren or SPECIAL-USE attributes (Create ignores
//     them), so neither CHILDREN nor SPECIAL-USE is advertised.
//   - APPEND answers with APPENDUID and COPY/MOVE with COPYUID: UIDPLUS is
//     advertised. \Recent is never set (SELECT says 0 RECENT).
//   - UIDVALIDITY is a per-user counter starting at 1 in creation order, so
//     two Servers give INBOX the same UIDVALIDITY; UIDs start at 1.
//   - The internal date is kept with nanoseconds but INTERNALDATE only has
//     seconds; Dump reports what a client sees. APPEND without a date uses
//     the current time.
package memserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// Separator is the hierarchy separator of a Server.
const Separator = '/'

// DefaultCaps is what Start advertises: IMAP4rev1 plus the extensions that
// imapmemserver really implements. IMAP4rev2 is left out because it implies
// CHILDREN, which imapmemserver does not implement. imapserver adds the
// extensions that need no backend support itself. Before login a client sees
//
//	IMAP4rev1 SASL-IR LITERAL- AUTH=PLAIN
//
// and after login
//
//	IMAP4rev1 SASL-IR LITERAL- UNSELECT ENABLE IDLE UTF8=ACCEPT NAMESPACE
//	UIDPLUS ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS MOVE STATUS=SIZE
//	BINARY
func DefaultCaps() imap.CapSet {
	return imap.CapSet{
		imap.CapIMAP4rev1:    {},
		imap.CapNamespace:    {},
		imap.CapUIDPlus:      {},
		imap.CapESearch:      {},
		imap.CapSearchRes:    {},
		imap.CapListExtended: {},
		imap.CapListStatus:   {},
		imap.CapMove:         {},
		imap.CapStatusSize:   {},
		imap.CapBinary:       {},
	}
}

// Server is a go-imap imapmemserver listening on 127.0.0.1 with one user,
// plaintext auth allowed (loopback only).
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// User and Password are the credentials of the only account.
	User, Password string

	user *imapmemserver.User
	srv  *imapserver.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned

	addMu     sync.Mutex // serialises folder creation in Add
	conns     connCount  // connections accepted and not yet closed
	closeOnce sync.Once
	closeErr  error
}

// Start starts a server on 127.0.0.1 with a kernel-chosen port, one user and
// an empty INBOX. It advertises DefaultCaps.
func Start(user, password string) (*Server, error) {
	return StartWithCaps(user, password, nil)
}

// StartWithCaps is Start with another capability set (nil: DefaultCaps), for
// tests of a client's fallbacks, e.g. without UIDPLUS or MOVE. The set must
// contain IMAP4rev1 or IMAP4rev2. Capabilities mostly change what is
// advertised: imapserver still accepts most commands of extensions left out.
func StartWithCaps(user, password string, caps imap.CapSet) (*Server, error) {
	return startServer(user, password, caps, nil)
}

func startServer(user, password string, caps imap.CapSet, rewrite Rewrite) (*Server, error) {
	if user == "" {
		return nil, errors.New("memserver: empty user name")
	}
	if caps == nil {
		caps = DefaultCaps()
	}
	if !caps.Has(imap.CapIMAP4rev1) && !caps.Has(imap.CapIMAP4rev2) {
		return nil, errors.New("memserver: capabilities must include IMAP4rev1 or IMAP4rev2")
	}

	u := imapmemserver.NewUser(user, password)
	if err := u.Create("INBOX", nil); err != nil {
		return nil, fmt.Errorf("memserver: create INBOX: %w", err)
	}
	if err := u.Subscribe("INBOX"); err != nil {
		return nil, fmt.Errorf("memserver: subscribe INBOX: %w", err)
	}
	mem := imapmemserver.New()
	mem.AddUser(u)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("memserver: listen: %w", err)
	}
	s := &Server{
		Addr:     ln.Addr().String(),
		User:     user,
		Password: password,
		user:     u,
		ln:       ln,
		done:     make(chan struct{}),
	}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			if rewrite != nil {
				// imapmemserver's sessions implement IMAP4rev2 (NAMESPACE, MOVE).
				return &rewriteSession{mem.NewSession().(imapserver.SessionIMAP4rev2), rewrite}, nil, nil
			}
			return mem.NewSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		// Clients that hang up without LOGOUT are normal in tests and in
		// the demo; don't let them write to the process's log.
		Logger: log.New(io.Discard, "", 0),
	})
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(countingListener{ln, &s.conns})
	}()
	return s, nil
}

// WaitConnsClosed waits until every connection the server accepted is
// closed, at most timeout. imapserver closes a connection only after it has
// run every command the client sent before it hung up, so a test that killed
// a client reads the server's final contents after this: an APPEND whose
// bytes were on their way when the client died is stored by then.
func (s *Server) WaitConnsClosed(timeout time.Duration) error {
	return s.conns.waitZero(timeout)
}

// connCount counts open connections.
type connCount struct {
	mu   sync.Mutex
	open int
	zero chan struct{} // closed when open drops to 0; nil while it is 0
}

func (c *connCount) add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == 0 {
		c.zero = make(chan struct{})
	}
	c.open++
}

func (c *connCount) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open--
	if c.open == 0 {
		close(c.zero)
		c.zero = nil
	}
}

func (c *connCount) waitZero(timeout time.Duration) error {
	c.mu.Lock()
	zero := c.zero
	c.mu.Unlock()
	if zero == nil {
		return nil
	}
	select {
	case <-zero:
		return nil
	case <-time.After(timeout):
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Errorf("memserver: %d connections still open after %v", c.open, timeout)
	}
}

// countingListener counts the connections it accepts until they are closed.
type countingListener struct {
	net.Listener
	n *connCount
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.n.add()
	return &countedConn{Conn: c, n: l.n}, nil
}

type countedConn struct {
	net.Conn
	n    *connCount
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.n.done)
	return err
}

// Close stops listening, ends every open connection and waits for the accept
// loop to finish. It can be called more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		err := s.srv.Close()
		// Serve may not have registered the listener yet, in which case
		// imapserver did not close it.
		if lnErr := s.ln.Close(); err == nil && !errors.Is(lnErr, net.ErrClosed) {
			err = lnErr
		}
		<-s.done
		if err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = err
		}
	})
	return s.closeErr
}

// Message is one message to put on a Server.
type Message struct {
	// Folder is the "/"-separated folder name, e.g. "Archive/2023".
	// "" and any case of "INBOX" mean INBOX.
	Folder string
	// Body is the whole RFC 5322 message, stored byte for byte.
	Body []byte
	// Flags in IMAP spelling (`\Seen`, `$Forwarded`). Keywords are stored
	// lowercased by imapmemserver (see the package documentation).
	Flags []string
	// Date is the internal date; zero means now.
	Date time.Time
}

// Add appends msgs in order, creating missing folders and their parents. It
// goes straight to the in-memory store (no IMAP round trip), so hundreds of
// messages take milliseconds. Open sessions see the new messages as usual
// (EXISTS on their next command). Add validates every message before storing
// any.
func (s *Server) Add(msgs []Message) error {
	folders := make([]string, len(msgs))
	for i, m := range msgs {
		name, err := cleanFolder(m.Folder)
		if err != nil {
			return fmt.Errorf("memserver: message %d: %w", i, err)
		}
		if err := checkFlags(m.Flags); err != nil {
			return fmt.Errorf("memserver: message %d: %w", i, err)
		}
		folders[i] = name
	}

	s.addMu.Lock()
	defer s.addMu.Unlock()
	ensured := make(map[string]bool)
	for i, m := range msgs {
		name := folders[i]
		if !ensured[name] {
			if err := s.ensureLocked(name); err != nil {
				return err
			}
			ensured[name] = true
		}
		flags := make([]imap.Flag, len(m.Flags))
		for j, f := range m.Flags {
			flags[j] = imap.Flag(f)
		}
		// Append copies the body, so the caller may reuse m.Body.
		_, err := s.user.Append(name, bytes.NewReader(m.Body), &imap.AppendOptions{
			Flags: flags,
			Time:  m.Date,
		})
		if err != nil {
			return fmt.Errorf("memserver: append message %d to %q: %w", i, name, err)
		}
	}
	return nil
}

// ensureLocked creates name and every missing parent, subscribed.
func (s *Server) ensureLocked(name string) error {
	parts := strings.Split(name, string(Separator))
	for i := range parts {
		path := strings.Join(parts[:i+1], string(Separator))
		if _, err := s.user.Status(path, &imap.StatusOptions{}); err == nil {
			continue
		}
		if err := s.user.Create(path, nil); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAlreadyExists {
				return fmt.Errorf("memserver: create %q: %w", path, err)
			}
		}
		if err := s.user.Subscribe(path); err != nil {
			return fmt.Errorf("memserver: subscribe %q: %w", path, err)
		}
	}
	return nil
}

func cleanFolder(folder string) (string, error) {
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		return "INBOX", nil
	}
	parts := strings.Split(folder, string(Separator))
	if strings.EqualFold(parts[0], "INBOX") {
		parts[0] = "INBOX"
	}
	for _, p := range parts {
		if p == "" {
			return "", fmt.Errorf("invalid folder name %q: empty component", folder)
		}
		if strings.ContainsAny(p, "*%\r\n\x00") {
			return "", fmt.Errorf("invalid folder name %q", folder)
		}
	}
	return strings.Join(parts, string(Separator)), nil
}

func checkFlags(flags []string) error {
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			switch strings.ToLower(f) {
			case `\seen`, `\answered`, `\flagged`, `\deleted`, `\draft`:
				continue
			}
			return fmt.Errorf("flag %q cannot be stored", f)
		}
		if f == "" {
			return errors.New("empty flag")
		}
		for i := 0; i < len(f); i++ {
			c := f[i]
			if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
				return fmt.Errorf("invalid keyword %q", f)
			}
		}
	}
	return nil
}

// wellKnown are the flags imapclient spells canonically whatever case the
// server sends; any other keyword is seen as the server sends it, which for
// imapmemserver means lowercased.
var wellKnown = func() map[string]string {
	m := make(map[string]string)
	for _, f := range []imap.Flag{
		imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted,
		imap.FlagDraft, imap.FlagForwarded, imap.FlagMDNSent, imap.FlagJunk,
		imap.FlagNotJunk, imap.FlagPhishing, imap.FlagImportant,
	} {
		m[strings.ToLower(string(f))] = string(f)
	}
	return m
}()

// NormalizeFlags returns flags the way Dump reports them after a round trip
// through a Server: system flags and well-known keywords in their usual
// spelling, other keywords lowercased, without \Recent or duplicates, sorted.
func NormalizeFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		l := strings.ToLower(f)
		if l == "" || l == `\recent` {
			continue
		}
		if c, ok := wellKnown[l]; ok {
			l = c
		}
		out = append(out, l)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// DumpEntry describes one stored message.
type DumpEntry struct {
	// SHA256 is the lowercase hex SHA-256 of the bytes FETCH BODY.PEEK[]
	// returns.
	SHA256 string
	// Flags as a client sees them, sorted, without \Recent.
	Flags []string
	// Date is the INTERNALDATE, in UTC.
	Date time.Time
}

// Dump reads every folder through an in-process IMAP client (LIST, EXAMINE,
// FETCH BODY.PEEK[], so nothing changes) and returns, for each folder name,
// its messages sorted by date, then hash, then flags: two servers with the
// same messages compare equal (reflect.DeepEqual) whatever the order the
// messages were appended in. Empty folders are present with an empty slice.
func (s *Server) Dump() (map[string][]DumpEntry, error) {
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		return nil, fmt.Errorf("memserver: dump: %w", err)
	}
	defer c.Close()
	if err := c.Login(s.User, s.Password).Wait(); err != nil {
		return nil, fmt.Errorf("memserver: dump: login: %w", err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("memserver: dump: list: %w", err)
	}
	out := make(map[string][]DumpEntry, len(list))
	for _, mb := range list {
		entries, err := dumpFolder(c, mb.Mailbox)
		if err != nil {
			return nil, fmt.Errorf("memserver: dump %q: %w", mb.Mailbox, err)
		}
		out[mb.Mailbox] = entries
	}
	_ = c.Logout().Wait()
	return out, nil
}

func dumpFolder(c *imapclient.Client, name string) ([]DumpEntry, error) {
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, err
	}
	entries := []DumpEntry{}
	if sel.NumMessages == 0 {
		return entries, nil
	}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	cmd := c.Fetch(all, &imap.FetchOptions{
		Flags:        true,
		InternalDate: true,
		BodySection:  []*imap.FetchItemBodySection{{Peek: true}},
	})
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var e DumpEntry
		gotBody := false
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch item := item.(type) {
			case imapclient.FetchItemDataFlags:
				for _, f := range item.Flags {
					if !strings.EqualFold(string(f), `\Recent`) {
						e.Flags = append(e.Flags, string(f))
					}
				}
			case imapclient.FetchItemDataInternalDate:
				e.Date = item.Time.UTC()
			case imapclient.FetchItemDataBodySection:
				h := sha256.New()
				if _, err := io.Copy(h, item.Literal); err != nil {
					cmd.Close()
					return nil, err
				}
				e.SHA256 = hex.EncodeToString(h.Sum(nil))
				gotBody = true
			}
		}
		if !gotBody {
			cmd.Close()
			return nil, fmt.Errorf("message %d: no body in FETCH response", msg.SeqNum)
		}
		sort.Strings(e.Flags)
		if e.Flags == nil {
			e.Flags = []string{}
		}
		entries = append(entries, e)
	}
	if err := cmd.Close(); err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if !a.Date.Equal(b.Date) {
			return a.Date.Before(b.Date)
		}
		if a.SHA256 != b.SHA256 {
			return a.SHA256 < b.SHA256
		}
		return strings.Join(a.Flags, " ") < strings.Join(b.Flags, " ")
	})
	return entries, nil
}

// AddHostile creates folder exactly as named, with no check at all (names
// such as "..", "../x", "-rf" or ones holding control characters), and
// appends body to it. It exists for tests that play a hostile server.
func (s *Server) AddHostile(folder string, body []byte) error {
	s.addMu.Lock()
	defer s.addMu.Unlock()
	if err := s.user.Create(folder, nil); err != nil {
		var ie *imap.Error
		if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAlreadyExists {
			return fmt.Errorf("memserver: create %q: %w", folder, err)
		}
	}
	if err := s.user.Subscribe(folder); err != nil {
		return fmt.Errorf("memserver: subscribe %q: %w", folder, err)
	}
	_, err := s.user.Append(folder, bytes.NewReader(body), &imap.AppendOptions{})
	return err
}
