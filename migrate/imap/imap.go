package imap

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// fetchBatch is how many messages one UID FETCH of bodies asks for (a
// variable for tests).
var fetchBatch = 1000

// IMAP is a connection to an IMAP server, usable as a migrate.Source and as a migrate.Sink.
// It is not safe for concurrent use: the engine opens one per worker.
type IMAP struct {
	c        *imapclient.Client
	cfg      mailconn.ServerConfig
	delim    rune
	caps     imap.CapSet
	selected string
	readOnly bool
	seqUID   seqUIDs // sequence number -> UID of the selected folder's last listing
	// listed is the SELECT that the selected folder's listing began with
	// (nil: none since the last SELECT): later windows reuse it.
	listed   *imap.SelectData
	existing map[string]bool // folder names known to exist (sink side)

	// app is the MULTIAPPEND connection (multiappend.go), dialled on the
	// first Store when the server offers MULTIAPPEND and LITERAL+.
	app *appender
	// appDial is the appender being dialled in the background
	// (PrepareStore), until appenderReady takes it.
	appDial chan appenderDial
	// fetchActivity is when a FETCH last received something (UnixNano):
	// the stall watchdogs of FETCHes in flight together share it.
	fetchActivity atomic.Int64
	noBatch       bool     // set when the server lacks what the appender needs
	auth          imapAuth // how this connection logged in: the appender does the same

	// nsPrefix is the personal namespace's prefix ("INBOX." on Courier and
	// Cyrus; usually empty): Folder.Path leaves it out, Folder.Name and
	// Ensure put it in. See pathOf and nameOf.
	nsPrefix string
	// ns is every namespace NAMESPACE announced (namespace.go): folders in
	// other users' and shared ones are marked Folder.Shared.
	ns []nsEntry

	quirks flagQuirks // imapquirks.go

	changed chan struct{} // the server reported a change (imapidle.go)
	// listing is Folders' LIST, sent by discover where the engine lists
	// this connection's folders next; nil once read, or where not sent.
	listing *imapclient.ListCommand
	// rtt is the shorter of the LOGIN's round trip and discover's
	// LIST "" "" (with NAMESPACE), at the run's start: with the
	// appender's LOGIN it tells a slow link (CarryBatch). Either alone
	// can be long on loopback: a LOGIN under load, and a LIST "" "" sent
	// with the folder listing (ListsNext), which Dovecot answers only
	// with the listing's answers, after counting every folder.
	rtt time.Duration
	// login is the LOGIN's (or AUTHENTICATE's) round trip.
	login time.Duration

	// A destination folder opened ahead for writing (imapwrite.go): the
	// command whose answer is still to be read, the folder PrepareWrite
	// named, and the SELECT answer of the read-write selection held.
	ahead   *ahead
	writing string
	rw      *imap.SelectData
	// left is go-imap's selected mailbox when deselect left it by a
	// refused SELECT (go-imap still shows it; the server has none).
	left *imapclient.SelectedMailbox

	probeDeleted *imapclient.Command // the DELETE of the probe folder (imapprobe.go)
}

var (
	_ migrate.Deleter   = (*IMAP)(nil)
	_ migrate.Source    = (*IMAP)(nil)
	_ migrate.Sink      = (*IMAP)(nil)
	_ migrate.Committer = (*IMAP)(nil)

	_ migrate.PartialCommitter = (*IMAP)(nil)
	_ migrate.FolderLearner    = (*IMAP)(nil)
)

// DialIMAP connects and logs in: LOGIN with cfg.Password, or with cfg.Token
// AUTHENTICATE OAUTHBEARER or XOAUTH2 (a refused token is tried once more
// with a new one, on a new connection). Authentication failures come back
// wrapped in migrate.ErrAuth, TLS failures in migrate.ErrTLS; neither carries the password
// or the token.
//
// When the server has NAMESPACE and its personal namespace has a prefix
// ("INBOX." as Courier and Cyrus have), the prefix is hidden: Folders gives
// "INBOX.Archive.2023" the Path {"Archive", "2023"} and Ensure of that path
// creates "INBOX.Archive.2023".
func DialIMAP(ctx context.Context, cfg mailconn.ServerConfig) (*IMAP, error) {
	if cfg.Token == nil {
		return dialIMAP(ctx, cfg, "")
	}
	return mailconn.WithToken(ctx, cfg, func(token string) (*IMAP, error) { return dialIMAP(ctx, cfg, token) })
}

func dialIMAP(ctx context.Context, cfg mailconn.ServerConfig, token string) (*IMAP, error) {
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	changed := make(chan struct{}, 1)
	opts := &imapclient.Options{
		TLSConfig:             cfg.TLSClientConfig(""), // a copy for this connection, naming the host
		Dialer:                &net.Dialer{Timeout: timeout},
		UnilateralDataHandler: changeHandler(changed), // imapidle.go
	}
	var (
		c   *imapclient.Client
		err error
	)
	switch cfg.TLS {
	case mailconn.TLSImplicit:
		c, err = dialTLS(ctx, cfg.Addr, opts)
	case mailconn.TLSStartTLS:
		c, err = dialStartTLS(ctx, cfg.Addr, opts, timeout)
	case mailconn.TLSNone:
		c, err = imapclient.DialInsecure(cfg.Addr, opts)
	default:
		return nil, fmt.Errorf("%w: unknown TLS mode %q", migrate.ErrUsage, cfg.TLS)
	}
	if err != nil {
		return nil, mailconn.ClassifyDialError("imap", cfg, "", err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, mailconn.ClassifyDialError("imap", cfg, "", err)
	}
	// A worker's connection dialled beside the run's first waits here for
	// that one's login (migrate.BeforeLogin): a wrong password is sent once.
	if err := migrate.BeforeLogin(ctx); err != nil {
		c.Close()
		return nil, err
	}
	var auth imapAuth
	loginSent := time.Now()
	if token != "" {
		if auth, err = authenticateIMAP(c, cfg, token); err != nil {
			c.Close() // never go on after a failed SASL exchange
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
	} else if err := c.Login(cfg.User, cfg.Password).Wait(); err != nil {
		c.Close()
		var ie *imap.Error
		if errors.As(err, &ie) {
			if later := refusedForNow(cfg, ie.Code, ie.Text); later != nil {
				return nil, later
			}
			return nil, fmt.Errorf("%w: %s: login refused: %s", migrate.ErrAuth, cfg, ie.Text)
		}
		return nil, &migrate.RetryableError{Err: fmt.Errorf("imap: %s: login: %w", cfg, err)}
	}
	login := time.Since(loginSent)
	migrate.LoggedIn(ctx) // the engine may open its other connections meanwhile
	m := &IMAP{c: c, cfg: cfg, caps: c.Caps(), existing: map[string]bool{}, auth: auth, changed: changed, login: login}
	m.noBatch = !(m.caps.Has(imap.CapMultiAppend) && m.caps.Has(imap.CapLiteralPlus))
	if err := m.discoverShared(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return m, nil
}

// refusedForNow is a server's NO to a login that does not say the
// credentials are wrong: too many sessions of this user
// (migrate.ErrTooManyConnections), or its authentication down for now.
// Both are worth another try later; nil for any other NO, which is a
// refusal of the credentials (migrate.ErrAuth).
//
// Too many sessions: [LIMIT] (RFC 5530; Dovecot 2.3 beyond
// mail_max_userip_connections), or the words of the servers that say it
// with another code: Dovecot before 2.3 ("[UNAVAILABLE] Maximum number of
// connections from user+IP exceeded") and Gmail ("[ALERT] Too many
// simultaneous connections. (Failure)", beyond 15). Down for now:
// [UNAVAILABLE] (Dovecot's "Temporary authentication failure").
func refusedForNow(cfg mailconn.ServerConfig, code imap.ResponseCode, text string) error {
	lower := strings.ToLower(text)
	switch {
	case code == imap.ResponseCodeLimit,
		strings.Contains(lower, "maximum number of connections"),
		strings.Contains(lower, "too many simultaneous connections"):
		return &migrate.RetryableError{Err: fmt.Errorf("%w: imap: %s: login refused: %s", migrate.ErrTooManyConnections, cfg, text)}
	case code == imap.ResponseCodeUnavailable:
		return &migrate.RetryableError{Err: fmt.Errorf("imap: %s: login refused for now: %s", cfg, text)}
	}
	return nil
}

// serverFacts is what discover learns, the same for every connection of
// a run's side (migrate.ServerFacts).
type serverFacts struct {
	delim    rune
	nsPrefix string
	ns       []nsEntry // read only, once shared
	rtt      time.Duration
}

// discoverShared is discover, done once for the connections of a run's
// side: a connection opened after the first takes the first one's answers
// (its round trip too, for CarryBatch: the same link) instead of asking
// again.
func (m *IMAP) discoverShared(ctx context.Context) error {
	v, err := migrate.ServerFactsOf(ctx).Learn(ctx, func() (any, error) {
		if err := m.discover(migrate.ListsNext(ctx)); err != nil {
			return nil, err
		}
		return serverFacts{delim: m.delim, nsPrefix: m.nsPrefix, ns: m.ns, rtt: m.rtt}, nil
	})
	if err != nil {
		return err
	}
	f := v.(serverFacts)
	m.delim, m.nsPrefix, m.ns, m.rtt = f.delim, f.nsPrefix, f.ns, f.rtt
	// This connection's own LOGIN crossed the same link: on a slow one it
	// took a round trip too, and on a fast one it may not have waited for
	// a busy server as the first connection's did, whose LOGIN now goes
	// out while the workers' connections are being greeted.
	if m.login > 0 {
		m.rtt = min(m.rtt, m.login)
	}
	return nil
}

// discover learns the hierarchy separator (LIST "" "") and the namespaces;
// NAMESPACE goes out with the LIST, without waiting: one round trip for
// both. With listsNext (the engine lists this connection's folders next:
// migrate.ListsNext) the folder listing goes out with them too, for
// Folders to read: its command does not depend on their answers, only the
// reading of its names does.
func (m *IMAP) discover(listsNext bool) error {
	sent := time.Now()
	listCmd := m.c.List("", "", nil)
	var nsCmd *imapclient.NamespaceCommand
	if m.caps.Has(imap.CapNamespace) {
		nsCmd = m.c.Namespace()
	}
	if listsNext {
		m.listing = m.c.List("", "*", m.listOptions())
	}
	list, err := listCmd.Collect()
	m.rtt = min(time.Since(sent), m.login)
	if err != nil {
		if nsCmd != nil {
			nsCmd.Wait()
		}
		return &migrate.RetryableError{Err: fmt.Errorf("imap: %s: list: %w", m.cfg, err)}
	}
	if len(list) > 0 {
		m.delim = list[0].Delim
	}
	if nsCmd == nil {
		return nil
	}
	ns, err := nsCmd.Wait()
	var ie *imap.Error
	switch {
	case errors.As(err, &ie):
		// A server that refuses NAMESPACE: no prefix to hide.
	case err != nil:
		return &migrate.RetryableError{Err: fmt.Errorf("imap: %s: namespace: %w", m.cfg, err)}
	default:
		m.setNamespaces(ns)
		if len(ns.Personal) > 0 {
			m.nsPrefix = personalPrefix(ns.Personal[0].Prefix, ns.Personal[0].Delim)
		}
	}
	return nil
}

// personalPrefix is the part of a personal namespace's prefix to hide: a
// prefix that is only INBOX itself (with or without the delimiter, "INBOX."
// as Courier and Cyrus name it) or any other name ending with the
// delimiter. An empty prefix, or one that is not a whole folder level,
// hides nothing.
func personalPrefix(prefix string, delim rune) string {
	if prefix == "" || delim == 0 {
		return ""
	}
	d := string(delim)
	if strings.EqualFold(prefix, "INBOX") {
		prefix = "INBOX" + d
	}
	if !strings.HasSuffix(prefix, d) || prefix == d {
		return ""
	}
	if strings.EqualFold(prefix[:len(prefix)-len(d)], "INBOX") {
		prefix = "INBOX" + d
	}
	return prefix
}

// pathOf is a listed name's Path: split at the delimiter, the personal
// namespace prefix left out. INBOX stays INBOX; "INBOX.INBOX" (a folder
// called INBOX under an "INBOX." prefix) keeps its prefix, or it would be
// taken for INBOX itself.
func (m *IMAP) pathOf(name string, delim rune) []string {
	if rest, ok := m.cutPrefix(name); ok {
		p := formats.SplitFolder(rest, delim)
		if !formats.IsInbox(p) {
			return p
		}
	}
	return formats.SplitFolder(name, delim)
}

func (m *IMAP) cutPrefix(name string) (string, bool) {
	pfx := m.nsPrefix
	if pfx == "" || len(name) <= len(pfx) {
		return "", false
	}
	head := name[:len(pfx)]
	// INBOX is case-insensitive, so is an "INBOX." prefix's INBOX.
	inboxPfx := strings.HasPrefix(pfx, "INBOX") && utf8.RuneCountInString(pfx) == 6
	if head == pfx || inboxPfx && strings.EqualFold(head[:5], "INBOX") && head[5:] == pfx[5:] {
		return name[len(pfx):], true
	}
	return "", false
}

// FolderName is the name Ensure gives path on this server (personal
// namespace prefix included), for a report that must name a folder without
// creating it (--dry-run).
func (m *IMAP) FolderName(path []string) string { return m.nameOf(path) }

// nameOf is the server's name for a Path: joined with the delimiter, under
// the personal namespace prefix (INBOX itself has none).
func (m *IMAP) nameOf(path []string) string {
	name, _ := formats.JoinFolder(path, m.delim)
	if formats.IsInbox(path) {
		return "INBOX"
	}
	return m.nsPrefix + name
}

// dialTLS is imapclient.DialTLS with the connection and the handshake
// bounded by ctx as well as by the dialer's timeout.
func dialTLS(ctx context.Context, addr string, opts *imapclient.Options) (*imapclient.Client, error) {
	tc := opts.TLSConfig.Clone()
	if tc.NextProtos == nil {
		tc.NextProtos = []string{"imap"}
	}
	d := &tls.Dialer{NetDialer: opts.Dialer, Config: tc}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return imapclient.New(conn, opts), nil
}

// dialStartTLS refuses a server that does not offer STARTTLS instead of
// falling back to plaintext. The whole exchange (greeting, STARTTLS, TLS
// handshake) is bounded by timeout and by ctx: imapclient gives the
// handshake after STARTTLS no deadline of its own.
func dialStartTLS(ctx context.Context, addr string, opts *imapclient.Options, timeout time.Duration) (*imapclient.Client, error) {
	conn, err := opts.Dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	timer := time.AfterFunc(timeout, func() { conn.Close() })
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, err := startTLS(conn, addr, opts)
	expired, cancelled := !timer.Stop(), !stop()
	if expired || cancelled {
		if c != nil {
			c.Close()
		}
		if cancelled {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("no TLS session within %v: %w", timeout, context.DeadlineExceeded)
	}
	return c, err
}

func startTLS(conn net.Conn, addr string, opts *imapclient.Options) (*imapclient.Client, error) {
	o := *opts
	// NewStartTLS sends STARTTLS and upgrades; a server without STARTTLS
	// answers NO or BAD, and we stop there rather than go on in plaintext.
	c, err := imapclient.NewStartTLS(conn, &o)
	var ie *imap.Error
	if errors.As(err, &ie) {
		return nil, mailconn.ErrNoStartTLS
	}
	return c, err
}

// Close logs out and closes the connection. Messages queued and not
// committed are abandoned: the server has not been told to keep them.
func (m *IMAP) Close() error {
	m.closeAppender()
	// LOGOUT is sent but its answer not awaited: every command that
	// mattered was answered already, and a round trip per connection is
	// what a no-op rerun would spend waiting. The probe folder's DELETE
	// is the exception: it must not be left undone.
	if m.probeDeleted != nil {
		m.probeDeleted.Wait()
	}
	m.c.Logout()
	return m.c.Close()
}

// Separator is the server's hierarchy delimiter (0 for a flat namespace).
func (m *IMAP) Separator() rune { return m.delim }

// Folders lists every folder with special use and STATUS counts, parents
// before children, adding missing parents as NoSelect tree nodes.
func (m *IMAP) Folders(ctx context.Context) ([]formats.Folder, error) {
	opts := m.listOptions()
	cmd := m.listing // sent by discover, where it was
	m.listing = nil
	if cmd == nil {
		cmd = m.c.List("", "*", opts)
	}
	list, err := cmd.Collect()
	if err != nil {
		return nil, m.wrap("list", err)
	}
	byName := map[string]*formats.Folder{}
	var out []*formats.Folder
	for _, ld := range list {
		f := &formats.Folder{Name: ld.Mailbox, Path: m.pathOf(ld.Mailbox, ld.Delim), Shared: m.sharedName(ld.Mailbox)}
		if m.delim == 0 && ld.Delim != 0 {
			m.delim = ld.Delim
		}
		for _, a := range ld.Attrs {
			switch a {
			case imap.MailboxAttrNoSelect, imap.MailboxAttrNonExistent:
				f.NoSelect = true
			case imap.MailboxAttrSent, imap.MailboxAttrDrafts, imap.MailboxAttrTrash,
				imap.MailboxAttrJunk, imap.MailboxAttrArchive, imap.MailboxAttrAll, imap.MailboxAttrFlagged,
				imap.MailboxAttrImportant:
				f.SpecialUse = string(a)
			}
		}
		if formats.IsInbox(f.Path) {
			f.Name = "INBOX"
		}
		if ld.Status != nil {
			setStatus(f, ld.Status)
		}
		key := strings.Join(f.Path, "\x00")
		if byName[key] != nil {
			continue
		}
		byName[key] = f
		out = append(out, f)
	}
	// Missing parents become tree nodes.
	for _, f := range append([]*formats.Folder(nil), out...) {
		for i := 1; i < len(f.Path); i++ {
			key := strings.Join(f.Path[:i], "\x00")
			if byName[key] == nil {
				name := m.nameOf(f.Path[:i])
				p := &formats.Folder{Name: name, Path: append([]string(nil), f.Path[:i]...), NoSelect: true, Shared: m.sharedName(name)}
				byName[key] = p
				out = append(out, p)
			}
		}
	}
	if opts == nil || opts.ReturnStatus == nil {
		if err := m.statusEach(out); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return formats.ComparePaths(out[i].Path, out[j].Path) < 0 })
	res := make([]formats.Folder, len(out))
	for i, f := range out {
		res[i] = *f
		if !f.NoSelect {
			m.existing[f.Name] = true
		}
	}
	return res, nil
}

// listOptions are Folders' LIST options: special use and STATUS counts
// returned with the names, where the server can.
func (m *IMAP) listOptions() *imap.ListOptions {
	if !m.caps.Has(imap.CapListExtended) {
		return nil
	}
	opts := &imap.ListOptions{}
	if m.caps.Has(imap.CapSpecialUse) {
		opts.ReturnSpecialUse = true
	}
	if m.caps.Has(imap.CapListStatus) {
		opts.ReturnStatus = m.statusOptions()
	}
	return opts
}

// statusEach asks STATUS of every selectable folder, where LIST-STATUS was
// not available.
func (m *IMAP) statusEach(out []*formats.Folder) error {
	for _, f := range out {
		if f.NoSelect {
			continue
		}
		sd, err := m.startStatus(f.Name).Wait()
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
			// Listed, but it cannot be opened now (mailutils lists the
			// temporary file of a folder being rewritten): no counts, so
			// the engine looks at it afresh, and a source folder that
			// really cannot be opened fails by name when it is listed.
			continue
		}
		if err != nil {
			return m.wrap("status "+f.Name, err)
		}
		setStatus(f, sd)
	}
	return nil
}

func setStatus(f *formats.Folder, sd *imap.StatusData) {
	if sd.NumMessages != nil {
		f.Messages = *sd.NumMessages
	}
	f.UIDNext = uint32(sd.UIDNext)
	f.Validity = sd.UIDValidity
	f.HighestModSeq = sd.HighestModSeq
}

func (m *IMAP) sel(name string, readOnly bool) (*imap.SelectData, error) {
	m.settle() // imapwrite.go
	if m.selected == name && !m.readOnly && !readOnly {
		return m.rw, nil
	}
	if m.selected == name && readOnly {
		return nil, nil
	}
	sd, err := m.c.Select(name, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		m.selected = ""
		return nil, m.selectErr(name, err)
	}
	m.selected, m.readOnly, m.seqUID, m.listed, m.rw = name, readOnly, nil, nil, nil
	if !readOnly {
		m.rw = sd
	}
	return sd, nil
}

// List selects the folder read-only and lists UID, FLAGS, INTERNALDATE and
// RFC822.SIZE of every message.
func (m *IMAP) List(ctx context.Context, folder formats.Folder) (uint32, []formats.Message, error) {
	set, most := listSet(0, 0)
	return m.list(ctx, folder, set, most)
}

// ListUIDs is List of the messages whose UIDs lie in [first, last]: a
// large folder listed in parts for its first copy (migrate.RangeLister).
func (m *IMAP) ListUIDs(ctx context.Context, folder formats.Folder, first, last uint32) (uint32, []formats.Message, error) {
	set, most := listSet(first, last)
	return m.list(ctx, folder, set, most)
}

// listSet is what a listing asks for: the UIDs in [first, last], or with
// last 0 the whole folder (1:*); and at most how many messages it expects
// (0: all).
func listSet(first, last uint32) (imap.NumSet, int) {
	if last == 0 {
		all := imap.SeqSet{}
		all.AddRange(1, 0) // 1:*
		return all, 0
	}
	uids := imap.UIDSet{}
	uids.AddRange(imap.UID(first), imap.UID(last))
	return uids, int(last - first + 1)
}

// encodingSection is the header fields Fetch's one-command-at-a-time path
// chooses between BINARY[] and BODY[] by (rawUnderBinary).
var encodingSection = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader,
	HeaderFields: []string{"Content-Transfer-Encoding", "Content-Type"}, Peek: true}

// listOptions is what a listing fetches.
var listOptions = &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true}

// list lists set of the folder, expecting at most most messages (0: all).
func (m *IMAP) list(ctx context.Context, folder formats.Folder, set imap.NumSet, most int) (uint32, []formats.Message, error) {
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	m.settle() // imapwrite.go
	sd := m.listed
	if most == 0 || sd == nil || m.selected != folder.Name || !m.readOnly {
		// Re-select (fresh UIDVALIDITY and EXISTS), with the FETCH sent
		// right behind the EXAMINE. The next window of a folder still
		// selected is not re-selected: a SELECT makes Dovecot read a
		// Maildir's whole directory (300,000 names a window).
		return m.sendList(ctx, folder, set, most)()
	}
	fc := m.c.Fetch(set, listOptions)
	if sd.NumMessages == 0 {
		fc.Close()
		return sd.UIDValidity, nil, nil
	}
	if m.seqUID == nil {
		m.seqUID = make(seqUIDs, sd.NumMessages+1)
	}
	msgs, seqs, err := collectListing(fc, sd, most)
	if err != nil {
		return 0, nil, m.wrap("fetch list", err)
	}
	for i, msg := range msgs {
		m.seqUID.set(seqs[i], msg.UID)
	}
	sortByUID(msgs, seqs)
	return sd.UIDValidity, msgs, nil
}

// collectListing reads the answers of a listing FETCH: the messages and
// the sequence number of each, in the order they came.
func collectListing(fc *imapclient.FetchCommand, sd *imap.SelectData, most int) ([]formats.Message, []uint32, error) {
	n := int(sd.NumMessages)
	if most > 0 {
		n = min(n, most)
	}
	msgs := make([]formats.Message, 0, n)
	seqs := make([]uint32, 0, n)
	shared := map[string][]string{} // one slice per set of flags, not per message
	err := eachListed(fc, func(seq uint32, buf *imapclient.FetchMessageBuffer) {
		seqs = append(seqs, seq)
		msgs = append(msgs, listed(buf, sharedFlags(shared, flagStrings(buf.Flags))))
	})
	return msgs, seqs, err
}

// sortByUID sorts msgs by UID (the sequence numbers seqs along with them).
func sortByUID(msgs []formats.Message, seqs []uint32) {
	sort.Sort(byUID{msgs, seqs})
}

type byUID struct {
	msgs []formats.Message
	seqs []uint32
}

func (b byUID) Len() int           { return len(b.msgs) }
func (b byUID) Less(i, j int) bool { return b.msgs[i].UID < b.msgs[j].UID }
func (b byUID) Swap(i, j int) {
	b.msgs[i], b.msgs[j] = b.msgs[j], b.msgs[i]
	b.seqs[i], b.seqs[j] = b.seqs[j], b.seqs[i]
}

// ListUIDsAhead sends the listing of [first, last] of the folder the last
// ListUIDs left selected, and returns at once: its answers are read by a
// goroutine of their own while the connection carries other commands (the
// bodies of the window before), and wait gives what ListUIDs would have
// (migrate.AheadLister). It returns nil where ListUIDs would select
// again; then the caller lists as usual.
func (m *IMAP) ListUIDsAhead(ctx context.Context, folder formats.Folder, first, last uint32) (wait func() (uint32, []formats.Message, error)) {
	m.settle() // imapwrite.go
	sd := m.listed
	if sd == nil || m.selected != folder.Name || !m.readOnly || sd.NumMessages == 0 {
		return nil
	}
	set := imap.UIDSet{}
	set.AddRange(imap.UID(first), imap.UID(last))
	fc := m.c.Fetch(set, listOptions)
	type listing struct {
		msgs []formats.Message
		seqs []uint32
		err  error
	}
	done := make(chan listing, 1)
	go func() {
		msgs, seqs, err := collectListing(fc, sd, int(last-first+1))
		done <- listing{msgs, seqs, err}
	}()
	return func() (uint32, []formats.Message, error) {
		stop := context.AfterFunc(ctx, func() { m.c.Close() })
		defer stop()
		l := <-done
		if l.err != nil {
			return 0, nil, m.wrap("fetch list", l.err)
		}
		if m.selected == folder.Name && m.listed == sd { // still the selection the numbers belong to
			for i, msg := range l.msgs {
				m.seqUID.set(l.seqs[i], msg.UID)
			}
		}
		sortByUID(l.msgs, l.seqs)
		return sd.UIDValidity, l.msgs, nil
	}
}

// StartList sends the EXAMINE of folder with the listing FETCH right
// behind it, and returns at once: the answers are read aside, and wait
// gives what List (last 0) or ListUIDs would have (migrate.ListStarter).
// Until wait, which must come before any other use of the connection, the
// selection is unknown.
func (m *IMAP) StartList(ctx context.Context, folder formats.Folder, first, last uint32) func() (uint32, []formats.Message, error) {
	m.settle() // imapwrite.go
	set, most := listSet(first, last)
	return m.sendList(ctx, folder, set, most)
}

// sendList sends EXAMINE and the listing FETCH of set together (one round
// trip for both) and returns what waits for their answers, which a
// goroutine reads meanwhile. If the EXAMINE fails, or the folder is empty
// (some servers answer BAD to 1:* then), the FETCH's answer is read and
// ignored.
func (m *IMAP) sendList(ctx context.Context, folder formats.Folder, set imap.NumSet, most int) func() (uint32, []formats.Message, error) {
	m.selected, m.seqUID, m.listed, m.rw = "", nil, nil, nil
	selCmd := m.c.Select(folder.Name, &imap.SelectOptions{ReadOnly: true})
	fc := m.c.Fetch(set, listOptions)
	type listing struct {
		sd          *imap.SelectData
		msgs        []formats.Message
		seqs        []uint32
		selErr, err error
	}
	done := make(chan listing, 1)
	go func() {
		sd, err := selCmd.Wait()
		if err != nil || sd.NumMessages == 0 {
			fc.Close()
			done <- listing{sd: sd, selErr: err}
			return
		}
		msgs, seqs, err := collectListing(fc, sd, most)
		done <- listing{sd: sd, msgs: msgs, seqs: seqs, err: err}
	}()
	return func() (uint32, []formats.Message, error) {
		stop := context.AfterFunc(ctx, func() { m.c.Close() })
		defer stop()
		l := <-done
		if l.selErr != nil {
			return 0, nil, m.selectErr(folder.Name, l.selErr)
		}
		m.selected, m.readOnly, m.seqUID, m.listed = folder.Name, true, nil, l.sd
		if l.sd.NumMessages == 0 {
			return l.sd.UIDValidity, nil, nil
		}
		if l.err != nil {
			return 0, nil, m.wrap("fetch list", l.err)
		}
		m.seqUID = make(seqUIDs, l.sd.NumMessages+1)
		for i, msg := range l.msgs {
			m.seqUID.set(l.seqs[i], msg.UID)
		}
		sortByUID(l.msgs, l.seqs)
		return l.sd.UIDValidity, l.msgs, nil
	}
}

// eachListed calls fn with each answer of a listing FETCH that has a UID.
func eachListed(fc *imapclient.FetchCommand, fn func(seq uint32, buf *imapclient.FetchMessageBuffer)) error {
	for {
		md := fc.Next()
		if md == nil {
			break
		}
		buf, err := md.Collect()
		if err != nil {
			fc.Close()
			return err
		}
		if buf.UID != 0 {
			fn(md.SeqNum, buf)
		}
	}
	return fc.Close()
}

// listed is a listing's message, with its flags cleaned by the caller.
func listed(buf *imapclient.FetchMessageBuffer, flags []string) formats.Message {
	return formats.Message{
		ID: strconv.FormatUint(uint64(buf.UID), 10), UID: uint32(buf.UID),
		Size: buf.RFC822Size, Flags: flags, Date: buf.InternalDate,
	}
}

func cleanFlags(fl []imap.Flag) []string { return formats.CleanFlags(flagStrings(fl)) }

func flagStrings(fl []imap.Flag) []string {
	flags := make([]string, len(fl))
	for i, f := range fl {
		flags[i] = string(f)
	}
	return flags
}

// seqUIDs maps the sequence numbers of a listing to UIDs (0: unknown).
type seqUIDs []uint32

func (s seqUIDs) get(seq uint32) uint32 {
	if int(seq) < len(s) {
		return s[seq]
	}
	return 0
}

func (s *seqUIDs) set(seq, uid uint32) {
	for int(seq) >= len(*s) {
		*s = append(*s, 0)
	}
	(*s)[seq] = uid
}

// sharedFlags is formats.CleanFlags(flags), the same slice for the same
// flags (a listing of 300,000 messages holds a few dozen sets). Nothing
// changes a Message's Flags in place.
func sharedFlags(shared map[string][]string, flags []string) []string {
	k := strings.Join(flags, "\x00")
	if f, ok := shared[k]; ok {
		return f
	}
	f := slices.Clip(formats.CleanFlags(flags))
	shared[k] = f
	return f
}

// Headers fetches BODY.PEEK[HEADER] of msgs.
//
// A FETCH the server answers NO (for one message it cannot read) is asked
// again for each message not delivered, alone, and the ones refused again
// are left out: the engine then copies them, and Fetch names them as failed
// (fetchAlone).
func (m *IMAP) Headers(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(m formats.Message, header []byte) error) error {
	item := fetchItem{body: &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}}
	got := map[uint32]bool{}
	var fnErr error
	each := func(msg formats.Message, lit imap.LiteralReader) error {
		got[msg.UID] = true
		b, err := io.ReadAll(io.LimitReader(lit, formats.MaxHeaderBytes))
		if err == nil {
			err = fn(msg, b)
		}
		fnErr = err
		return err
	}
	err := m.fetchSections(ctx, folder, msgs, item, each)
	if !fetchAnsweredNo(ctx, err, fnErr) {
		return err
	}
	for _, msg := range msgs {
		if got[msg.UID] {
			continue
		}
		err := m.fetchSections(ctx, folder, []formats.Message{msg}, item, each)
		if err != nil && !fetchAnsweredNo(ctx, err, fnErr) {
			return err
		} // (refused again: left out)
	}
	return nil
}

// Fetch streams the exact bytes of msgs in UID batches. m.Size passed to fn
// is the literal's exact size.
//
// The bytes are BODY.PEEK[], except where the server offers BINARY (RFC
// 3516) and the message is a single part whose top-level
// Content-Transfer-Encoding is absent, 7bit, 8bit or binary: then they are
// BINARY.PEEK[], which keeps a NUL byte that BODY[] cannot carry (Dovecot
// serves a stored NUL as 0x80 in BODY[]; Cyrus sends a literal8 that
// go-imap cannot read there). BINARY[] decodes: a base64 or
// quoted-printable message, or any encoded part of a multipart one (Dovecot
// decodes those too), would come back decoded and with its header changed,
// so those go as BODY[].
//
// Where the server offers BINARY, a message of at most checkedMax bytes is
// first asked as BODY[] in pipelined FETCHes and taken where that is sure
// to be its stored bytes (fetchahead.go). The rest go one command at a
// time, in batches: a cheap BODY.PEEK[HEADER.FIELDS
// (CONTENT-TRANSFER-ENCODING CONTENT-TYPE)] (encodingSection) picks BINARY[]
// or BODY[], and a BINARY[] literal whose size is not the RFC822.SIZE that
// List reported (something was decoded after all) is not used: that message
// is fetched again as BODY[].
func (m *IMAP) Fetch(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	fn func(m formats.Message, body io.Reader) error) error {
	return m.fetch(ctx, folder, msgs, nil, fn)
}

// StartFetch sends the first FETCHes of a Fetch of msgs now and returns the
// rest of that Fetch, which reads their answers (migrate.FetchStarter). It
// starts only in the folder already selected, where nothing waits for an
// answer; elsewhere, and without BINARY, it returns nil.
func (m *IMAP) StartFetch(folder formats.Folder, msgs []formats.Message) func(context.Context, func(formats.Message, io.Reader) error) error {
	if !m.caps.Has(imap.CapBinary) || m.ahead != nil || m.selected != folder.Name {
		return nil // (m.ahead: a selection on the way, imapwrite.go)
	}
	sent := m.sendFetches(msgs) // fetchahead.go
	if sent == nil {
		return nil
	}
	return func(ctx context.Context, fn func(formats.Message, io.Reader) error) error {
		return m.fetch(ctx, folder, msgs, sent, fn)
	}
}

// fetch is Fetch, whose first FETCHes StartFetch may have sent (sent).
func (m *IMAP) fetch(ctx context.Context, folder formats.Folder, msgs []formats.Message, sent *sentFetch,
	fn func(m formats.Message, body io.Reader) error) error {
	delivered := map[uint32]bool{}
	var fnErr error
	deliver := func(msg formats.Message, lit imap.LiteralReader) error {
		msg.Size = lit.Size()
		delivered[msg.UID] = true
		if err := fn(msg, lit); err != nil {
			fnErr = err
			return err
		}
		return nil
	}
	err := m.fetchAll(ctx, folder, msgs, sent, deliver, delivered, &fnErr)
	if !fetchAnsweredNo(ctx, err, fnErr) {
		return err
	}
	return m.fetchAlone(ctx, folder, msgs, deliver, delivered, &fnErr)
}

// fetchAnsweredNo tells a FETCH the server answered NO (for one message it
// cannot read, say) from a lost connection, a folder it would not open, an
// answer go-imap could not parse, the caller's function failing (fnErr) or
// a run stopped (ctx).
func fetchAnsweredNo(ctx context.Context, err, fnErr error) bool {
	var ie *imap.Error
	var fe *migrate.FolderOpenError
	return err != nil && fnErr == nil && ctx.Err() == nil && errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo &&
		!errors.As(err, &fe) && !migrate.IsRetryable(err)
}

// unreadableLiteral is a message the server would not send: its FETCH
// alone was answered NO (formats.Unreadable).
type unreadableLiteral struct{ formats.Unreadable }

func (unreadableLiteral) Size() int64 { return 0 }

// fetchAlone asks, after a FETCH the server answered NO, for each message
// of msgs not delivered yet in a FETCH of its own: one the server answers
// NO again goes to the caller as a formats.Unreadable (named as failed),
// one it no longer has ([EXPUNGEISSUED], or no answer) is left out as
// vanished, and the others are delivered. Before, the NO ended the folder's
// pass and with it the run, at every rerun again.
func (m *IMAP) fetchAlone(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	deliver func(formats.Message, imap.LiteralReader) error, delivered map[uint32]bool, fnErr *error) error {
	for _, msg := range msgs {
		if delivered[msg.UID] {
			continue
		}
		err := m.fetchBodies(ctx, folder, []formats.Message{msg}, deliver, delivered, fnErr)
		if !fetchAnsweredNo(ctx, err, *fnErr) {
			if err != nil {
				return err
			}
			continue
		}
		if delivered[msg.UID] {
			continue // sent, then NO: it was delivered whole
		}
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Code == "EXPUNGEISSUED" { // RFC 5530; go-imap names no constant
			continue // gone from the folder: vanished
		}
		if err := deliver(msg, unreadableLiteral{formats.Unreadable{Err: err}}); err != nil {
			return err
		}
	}
	return nil
}

// fetchAll is fetch's first try, for all of msgs at once.
func (m *IMAP) fetchAll(ctx context.Context, folder formats.Folder, msgs []formats.Message, sent *sentFetch,
	deliver func(formats.Message, imap.LiteralReader) error, delivered map[uint32]bool, fnErr *error) error {
	if !m.caps.Has(imap.CapBinary) {
		return m.fetchSections(ctx, folder, msgs, bodyItem, deliver)
	}
	if len(msgs) == 0 {
		return nil
	}
	// Selected once here, so that the look-ahead below only reads m.selected.
	if _, err := m.sel(folder.Name, true); err != nil {
		return err
	}
	if sent == nil {
		sent = m.sendFetches(msgs) // fetchahead.go
	}
	// The header look-ahead for the next batch runs in its own goroutine
	// (go-imap routes each FETCH response to its command by UID), so that
	// its round trip overlaps this batch's BINARY FETCH.
	var next chan splitResult
	defer func() {
		if next != nil {
			<-next // never leave it reading on a connection the caller reuses
		}
	}()
	if sent != nil {
		// One message at a time reaches deliver, from whichever FETCH
		// is being read (fetchAhead's, and the large messages' beside
		// them), and none after it failed.
		var mu sync.Mutex
		one := func(msg formats.Message, lit imap.LiteralReader) error {
			mu.Lock()
			defer mu.Unlock()
			if *fnErr != nil {
				return *fnErr // a reader beside the one that failed: stop
			}
			return deliver(msg, lit)
		}
		// The first batch of the messages too large for the pipelined
		// FETCHes is fetched beside them (fetchLargeBeside) once its
		// split is known, not after them: on a slow link that waited a
		// round trip at every window of a folder of large messages.
		var beside chan error
		if split := sent.split; split != nil {
			beside = make(chan error, 1)
			go func() { beside <- m.fetchLargeBeside(ctx, split, one, &mu, delivered, fnErr) }()
		}
		err := m.fetchAhead(ctx, sent, one, &mu, fnErr)
		var lerr error
		if beside != nil {
			lerr = <-beside
		}
		switch {
		case err == nil && lerr == nil:
		case *fnErr != nil || ctx.Err() != nil:
			return cmp.Or(err, lerr, *fnErr)
		case unreadableResponse(err) || unreadableResponse(lerr):
			// go-imap could not read an answer and closed the connection
			if err := m.redial(ctx); err != nil {
				return err
			}
		case err != nil:
			return err
		case !refusedFetch(lerr, nil):
			return lerr
		} // a large message's FETCH refused: what it left goes below
		// What did not come back as planned goes one command at a time.
		var left []formats.Message
		for _, msg := range msgs {
			if !delivered[msg.UID] {
				left = append(left, msg)
			}
		}
		if msgs = left; len(msgs) == 0 {
			return nil
		}
		if _, err := m.sel(folder.Name, true); err != nil {
			return err
		}
	}
	if next == nil {
		next = m.startSplit(ctx, folder, msgs[:min(fetchBatch, len(msgs))])
	}
	for start := 0; start < len(msgs); start += fetchBatch {
		res := <-next
		next = nil
		if res.err != nil {
			return res.err
		}
		if end := start + fetchBatch; end < len(msgs) {
			next = m.startSplit(ctx, folder, msgs[end:min(end+fetchBatch, len(msgs))])
		}
		raw, rest := res.raw, res.rest
		if err := m.fetchBinary(ctx, folder, raw, deliver, delivered, fnErr); err != nil {
			return err
		}
		for _, msg := range raw {
			if !delivered[msg.UID] {
				rest = append(rest, msg)
			}
		}
		sort.Slice(rest, func(i, j int) bool { return rest[i].UID < rest[j].UID })
		if err := m.fetchBodies(ctx, folder, rest, deliver, delivered, fnErr); err != nil {
			return err
		}
	}
	return nil
}

// fetchLargeBeside fetches the messages of split's batch (too large for
// fetchAhead's FETCHes) while fetchAhead reads its own: BINARY[] for those
// whose BINARY[] is their bytes and BODY[] for the others, each delivered
// through one (which holds mu). It sends nothing before split's answer
// has every header: go-imap gives a FETCH answer to the oldest command
// that asked for its UID and has not had it, and split asked for the same
// UIDs. What it could not fetch (a refused FETCH, a raw message whose
// BINARY[] was decoded after all) is left undelivered for fetchAll to ask
// again the old way.
func (m *IMAP) fetchLargeBeside(ctx context.Context, split chan splitResult,
	one func(formats.Message, imap.LiteralReader) error, mu *sync.Mutex, delivered map[uint32]bool, fnErr *error) error {
	res := <-split
	if res.err != nil {
		return res.err
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return *fnErr
	}
	if err := failed(); err != nil {
		return err // nothing more is delivered: ask for nothing
	}
	// Both FETCHes at once, each read by a goroutine of its own (as
	// fetchAhead's): Dovecot would hold the first one's tagged OK until
	// the window's other FETCHes are done.
	var binErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		binErr = m.fetchSelected(ctx, res.raw, binaryItem, one)
	}()
	bodyErr := m.fetchSelected(ctx, res.rest, bodyItem, one)
	<-done
	for _, err := range []error{binErr, bodyErr} {
		if err != nil && !refusedFetch(err, nil) {
			return err
		}
	}
	return cmp.Or(binErr, bodyErr) // a raw one BINARY[] decoded after all is left undelivered too
}

// largeOnes is msgs less fetchJobs' messages (fetchahead.go), in order.
func largeOnes(msgs []formats.Message) []formats.Message {
	var out []formats.Message
	for _, msg := range msgs {
		if msg.Size < 0 || msg.Size > checkedMax {
			out = append(out, msg)
		}
	}
	return out
}

// fetchBinary fetches raw as BINARY.PEEK[] (see Fetch). A literal of
// another size than RFC822.SIZE was decoded after all: it is skipped, and
// the caller fetches that message as BODY[]. A tagged NO (Dovecot: NO
// [UNKNOWN-CTE] for a message with a second, unknown encoding field) ends
// the BINARY FETCH but not the session: the messages it did not send are
// asked for one by one, and the one refused is left to BODY[] too. A lost
// connection or fn's own error (*fnErr) ends it.
func (m *IMAP) fetchBinary(ctx context.Context, folder formats.Folder, raw []formats.Message,
	deliver func(formats.Message, imap.LiteralReader) error, delivered map[uint32]bool, fnErr *error) error {
	refused := func(err error) bool { return refusedFetch(err, *fnErr) }
	err := m.fetchSections(ctx, folder, raw, binaryItem, deliver)
	if err == nil || !refused(err) {
		return err
	}
	for _, msg := range raw {
		if delivered[msg.UID] {
			continue
		}
		if err := m.fetchSections(ctx, folder, []formats.Message{msg}, binaryItem, deliver); err != nil && !refused(err) {
			return err
		}
	}
	return nil
}

// splitResult is what splitRaw found for one batch.
type splitResult struct {
	raw, rest []formats.Message
	err       error
}

// startSplit runs splitRaw for msgs in a goroutine; the channel delivers
// its result once.
func (m *IMAP) startSplit(ctx context.Context, folder formats.Folder, msgs []formats.Message) chan splitResult {
	ch := make(chan splitResult, 1)
	go func() {
		raw, rest, err := m.splitRaw(ctx, folder, msgs)
		ch <- splitResult{raw, rest, err}
	}()
	return ch
}

// sendSplit sends splitRaw's FETCH for msgs in the folder selected, now,
// and reads its answer in a goroutine; the channel delivers the result
// once, as soon as every message's header is in. Dovecot answers a FETCH
// sent beside others at once but holds its tagged OK until those are done
// (pipelined beside the bodies of a window's small messages, until they
// all came), and the headers are all this needs. A message the answer
// leaves out goes with the rest (BODY[]).
func (m *IMAP) sendSplit(msgs []formats.Message) chan splitResult {
	item := fetchItem{body: encodingSection}
	fc := m.sendFetch(msgs, item)
	ch := make(chan splitResult, 1)
	go func() {
		find := finderOf(msgs)
		plain := map[uint32]bool{}
		note := encodingsInto(plain)
		sent := false
		send := func(res splitResult) {
			if !sent {
				sent = true
				ch <- res
			}
		}
		err := m.readFetch(context.Background(), fc, find, item, map[uint32]bool{}, func(msg formats.Message, lit imap.LiteralReader) error {
			err := note(msg, lit)
			if err == nil && len(plain) == len(msgs) {
				var res splitResult
				res.raw, res.rest = splitBy(msgs, plain)
				send(res) // the tagged OK is read on, here
			}
			return err
		})
		if !sent { // not all the headers came, or the FETCH failed
			var res splitResult
			if res.err = err; err == nil {
				res.raw, res.rest = splitBy(msgs, plain)
			}
			send(res)
		}
	}()
	return ch
}

// encodingsInto notes in plain, for each message's header, whether
// BINARY[] leaves its bytes as they are.
func encodingsInto(plain map[uint32]bool) func(formats.Message, imap.LiteralReader) error {
	return func(msg formats.Message, lit imap.LiteralReader) error {
		h, err := io.ReadAll(io.LimitReader(lit, formats.MaxHeaderBytes))
		if err != nil {
			return err
		}
		plain[msg.UID] = rawUnderBinary(h)
		return nil
	}
}

// splitBy sorts msgs by plain, in order: raw where plain says so.
func splitBy(msgs []formats.Message, plain map[uint32]bool) (raw, rest []formats.Message) {
	for _, msg := range msgs {
		if plain[msg.UID] {
			raw = append(raw, msg)
		} else {
			rest = append(rest, msg)
		}
	}
	return raw, rest
}

// splitRaw sorts msgs into those whose BINARY[] is their stored bytes (a
// single part, top-level Content-Transfer-Encoding absent, 7bit, 8bit or
// binary) and the rest (including any that vanished). See Fetch.
func (m *IMAP) splitRaw(ctx context.Context, folder formats.Folder, msgs []formats.Message) (raw, rest []formats.Message, err error) {
	plain := map[uint32]bool{}
	if err := m.fetchSections(ctx, folder, msgs, fetchItem{body: encodingSection}, encodingsInto(plain)); err != nil {
		return nil, nil, err
	}
	raw, rest = splitBy(msgs, plain)
	return raw, rest, nil
}

// rawUnderBinary tells from a message's Content-Transfer-Encoding and
// Content-Type fields whether BINARY[] leaves its bytes as they are: a
// single part (not multipart/*, not message/*) whose encoding is absent,
// 7bit, 8bit or binary.
func rawUnderBinary(header []byte) bool {
	cte := strings.ToLower(formats.HeaderValue(header, "Content-Transfer-Encoding"))
	switch {
	case cte == "7bit", cte == "8bit", cte == "binary":
	case cte == "" && !bytes.Contains(bytes.ToLower(header), []byte("content-transfer-encoding")):
		// absent (an empty field is an unknown encoding to Dovecot)
	default:
		return false
	}
	ct := strings.ToLower(formats.HeaderValue(header, "Content-Type"))
	return !strings.HasPrefix(ct, "multipart/") && !strings.HasPrefix(ct, "message/")
}

// fetchItem is what fetchSections asks for: the BODY.PEEK section body, or
// BINARY.PEEK[] where binary is set. accept, when set, sees each literal's
// size before it is passed on: a literal it refuses is skipped (and not
// asked for again).
type fetchItem struct {
	body   *imap.FetchItemBodySection
	binary bool
	accept func(msg formats.Message, size int64) bool
	// check, when set, makes each literal be read whole and passed on
	// only if check takes it; one it refuses, or one larger than
	// checkedMax, is skipped like one accept refuses (fetchahead.go).
	check func(msg formats.Message, b []byte) bool
}

// The two items of a body's FETCH: BODY.PEEK[], and BINARY.PEEK[] taken
// only where its literal is RFC822.SIZE long (see Fetch).
var (
	bodyItem   = fetchItem{body: &imap.FetchItemBodySection{Peek: true}}
	binaryItem = fetchItem{binary: true, accept: func(msg formats.Message, size int64) bool { return size == msg.Size }}
)

// fetchSections runs UID FETCH (UID item) over msgs in batches, matching
// each response to the message asked for (by UID, or by sequence number when
// a server sends the UID after the literal), and retries once for UIDs that
// did not come back.
func (m *IMAP) fetchSections(ctx context.Context, folder formats.Folder, msgs []formats.Message,
	item fetchItem, fn func(formats.Message, imap.LiteralReader) error) error {
	if len(msgs) == 0 {
		return nil
	}
	if _, err := m.sel(folder.Name, true); err != nil {
		return err
	}
	return m.fetchSelected(ctx, msgs, item, fn)
}

// fetchSelected is fetchSections in the folder selected, which it does
// not touch: fetchLargeBeside runs it beside the reads of fetchAhead.
func (m *IMAP) fetchSelected(ctx context.Context, msgs []formats.Message,
	item fetchItem, fn func(formats.Message, imap.LiteralReader) error) error {
	if len(msgs) == 0 {
		return nil
	}
	find := finderOf(msgs)
	pending := msgs
	for attempt := 0; attempt < 2 && len(pending) > 0; attempt++ {
		got := map[uint32]bool{}
		for start := 0; start < len(pending); start += fetchBatch {
			end := min(start+fetchBatch, len(pending))
			if err := m.fetchBatch(ctx, pending[start:end], find, item, got, fn); err != nil {
				return err
			}
		}
		var missing []formats.Message
		for _, msg := range pending {
			if !got[msg.UID] {
				missing = append(missing, msg)
			}
		}
		pending = missing
	}
	return nil
}

func (m *IMAP) fetchBatch(ctx context.Context, batch []formats.Message, find func(uint32) (formats.Message, bool),
	item fetchItem, got map[uint32]bool, fn func(formats.Message, imap.LiteralReader) error) error {
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	return m.readFetch(ctx, m.sendFetch(batch, item), find, item, got, fn)
}

// finderOf finds a message of msgs by its UID, for readFetch.
func finderOf(msgs []formats.Message) func(uint32) (formats.Message, bool) {
	byUID := make(map[uint32]formats.Message, len(msgs))
	for _, msg := range msgs {
		byUID[msg.UID] = msg
	}
	return func(uid uint32) (formats.Message, bool) { msg, ok := byUID[uid]; return msg, ok }
}

// sendFetch sends UID FETCH (UID item) of batch; its answers are read by
// readFetch.
func (m *IMAP) sendFetch(batch []formats.Message, item fetchItem) *imapclient.FetchCommand {
	var set imap.UIDSet
	for _, msg := range batch {
		set.AddNum(imap.UID(msg.UID))
	}
	opts := &imap.FetchOptions{UID: true}
	if item.binary {
		opts.BinarySection = []*imap.FetchItemBinarySection{{Peek: true}}
	} else {
		opts.BodySection = []*imap.FetchItemBodySection{item.body}
	}
	return m.c.Fetch(set, opts)
}

// readFetch reads the answers of a FETCH sendFetch sent, passing each
// literal of a message find knows (and not in got) to fn, and closes it.
func (m *IMAP) readFetch(ctx context.Context, fc *imapclient.FetchCommand, find func(uid uint32) (formats.Message, bool),
	item fetchItem, got map[uint32]bool, fn func(formats.Message, imap.LiteralReader) error) error {
	// A server that goes silent mid-FETCH would hold us for go-imap's fixed
	// 5 minutes per literal: this watchdog drops the connection after
	// stallTimeout without a byte, and the engine reconnects and resumes.
	idle := m.stallWatchdog()
	defer idle.Stop()
	var whole []byte // a checked literal, read whole (item.check)
	for {
		md := fc.Next()
		if md == nil {
			break
		}
		idle.Reset(m.stallTimeout())
		m.fetchActivity.Store(time.Now().UnixNano())
		uid := uint32(0)
		for {
			data := md.Next()
			if data == nil {
				break
			}
			var lit imap.LiteralReader
			switch it := data.(type) {
			case imapclient.FetchItemDataUID:
				uid = uint32(it.UID)
				continue
			case imapclient.FetchItemDataBodySection:
				lit = it.Literal
			case imapclient.FetchItemDataBinarySection:
				lit = it.Literal
			default:
				continue
			}
			if uid == 0 {
				uid = m.seqUID.get(md.SeqNum)
			}
			msg, ok := find(uid)
			if !ok || got[uid] || lit == nil {
				continue // discarded by the next Next
			}
			if item.accept != nil && !item.accept(msg, lit.Size()) {
				got[uid] = true // the caller fetches it some other way
				continue
			}
			lr := &literalReader{r: lit, idle: idle, timeout: m.stallTimeout(), activity: &m.fetchActivity}
			var ferr error
			switch {
			case item.check == nil:
				ferr = fn(msg, literal{lr, lit.Size()})
			case lit.Size() > checkedMax:
				// Not the size listed: not taken, and discarded by the
				// next Next. The caller fetches it some other way.
				got[uid] = true
				continue
			default:
				whole = slices.Grow(whole[:0], int(lit.Size()))[:lit.Size()]
				if _, err := io.ReadFull(lr, whole); err == nil {
					if !item.check(msg, whole) {
						got[uid] = true
						continue
					}
					ferr = fn(msg, literal{bytes.NewReader(whole), lit.Size()})
				} // else the connection broke: see below
			}
			io.Copy(io.Discard, lr) // the rest, if fn stopped early
			if lr.err != nil || lr.n != lit.Size() {
				// The connection broke inside the literal. go-imap's
				// reader goroutine has moved on already; FetchCommand.Close
				// would read the literal again at the same time (a data
				// race): drop the whole connection instead.
				m.c.Close()
				return &migrate.RetryableError{Err: &migrate.CutInsideMessageError{Err: fmt.Errorf("imap: %s: message UID %d: connection ended after %d of %d bytes", m.cfg, uid, lr.n, lit.Size())}}
			}
			if ferr != nil {
				fc.Close() // the literal is intact: Close skips the rest
				return ferr
			}
			got[uid] = true
		}
	}
	if err := fc.Close(); err != nil {
		return m.wrap("fetch", err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

type literal struct {
	io.Reader
	size int64
}

func (l literal) Size() int64 { return l.size }

// stallWatchdog drops the connection after stallTimeout without a byte.
// Two FETCHes may be in flight (the header look-ahead: see Fetch), and the
// second hears nothing while the first streams: a byte for either counts
// (m.fetchActivity) before the connection is taken for stalled.
func (m *IMAP) stallWatchdog() *time.Timer {
	var idle *time.Timer
	idle = time.AfterFunc(m.stallTimeout(), func() {
		if quiet := time.Since(time.Unix(0, m.fetchActivity.Load())); quiet < m.stallTimeout() {
			idle.Reset(m.stallTimeout() - quiet)
			return
		}
		m.c.Close()
	})
	return idle
}

// literalReader reads a FETCH literal: it counts bytes, keeps the watchdog
// fed, and after the first error (other than the literal's own end) never
// reads again.
type literalReader struct {
	r        io.Reader
	n        int64
	eof      bool
	err      error
	idle     *time.Timer
	timeout  time.Duration
	activity *atomic.Int64 // when a byte last came (IMAP.fetchActivity)
}

func (l *literalReader) Read(p []byte) (int, error) {
	if l.eof {
		return 0, io.EOF
	}
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if n > 0 {
		l.idle.Reset(l.timeout)
		l.activity.Store(time.Now().UnixNano())
	}
	switch {
	case err == io.EOF:
		l.eof = true // an early end is a dropped connection: never read again
	case err != nil:
		l.err = err
	}
	return n, err
}

// stallTimeout is how long a FETCH may go without a byte.
func (m *IMAP) stallTimeout() time.Duration {
	if m.cfg.Timeout > 0 {
		return m.cfg.Timeout
	}
	return 60 * time.Second
}

// Ensure creates the folder if needed and returns its STATUS. The name is
// path joined with the separator, under the personal namespace prefix.
func (m *IMAP) Ensure(ctx context.Context, path []string) (formats.Folder, error) {
	wait, err := m.sendEnsure(path)
	if err != nil {
		return formats.Folder{}, err
	}
	return wait()
}

// StartEnsure sends Ensure's commands and returns at once; wait reads
// their answers (migrate.EnsureStarter). Not for a name that is not an
// atom, whose STATUS is an EXAMINE (imapquirks.go): that would change the
// selection under whatever the connection does before wait.
func (m *IMAP) StartEnsure(ctx context.Context, path []string) func() (formats.Folder, error) {
	if !isAtom(m.nameOf(path)) {
		return nil
	}
	wait, err := m.sendEnsure(path)
	if err != nil {
		return nil // a shared name: Ensure says why
	}
	return wait
}

// sendEnsure sends CREATE, SUBSCRIBE and STATUS together (one round trip)
// and returns what reads their answers.
func (m *IMAP) sendEnsure(path []string) (func() (formats.Folder, error), error) {
	name := m.nameOf(path)
	if m.sharedName(name) {
		return nil, migrate.Usagef("%s: destination folder %q would be in another user's or a shared namespace; put it elsewhere with --prefix or --map", m.cfg, name)
	}
	var create, subscribe *imapclient.Command
	if !m.existing[name] && name != "INBOX" {
		create = m.c.Create(name, nil)
		subscribe = m.c.Subscribe(name) // best effort: clients show subscribed folders
	}
	status := m.startStatus(name) // imapquirks.go
	return func() (formats.Folder, error) {
		if create != nil {
			err := create.Wait()
			var ie *imap.Error
			if err != nil && !(errors.As(err, &ie) && (ie.Code == imap.ResponseCodeAlreadyExists || strings.Contains(strings.ToLower(ie.Text), "exist"))) &&
				!createRefusedButExists(err, status) { // imapquirks.go
				status.Wait()
				subscribe.Wait()
				return formats.Folder{}, m.createFailed(name, err) // imapquirks.go
			}
			subscribe.Wait()
			m.existing[name] = true
		}
		sd, err := status.Wait()
		if err != nil {
			return formats.Folder{}, m.wrap("status "+name, err)
		}
		f := formats.Folder{Name: name, Path: m.pathOf(name, m.delim)}
		setStatus(&f, sd)
		return f, nil
	}, nil
}

// Index lists the folder's UIDs and fetches the header of each unknown one.
func (m *IMAP) Index(ctx context.Context, folder formats.Folder, known func(id string) bool,
	fn func(id string, key formats.Key) error) error {
	_, msgs, err := m.List(ctx, folder)
	if err != nil {
		return err
	}
	var unknown []formats.Message
	for _, msg := range msgs {
		if !known(msg.ID) {
			unknown = append(unknown, msg)
		}
	}
	return m.Headers(ctx, folder, unknown, func(msg formats.Message, header []byte) error {
		return fn(msg.ID, formats.IdentityKey(header))
	})
}

// Store APPENDs one message with its flags and internal date. Where the
// server allows (MULTIAPPEND and LITERAL+), the message is queued and
// Store returns migrate.ErrQueued, Commit gives its outcome: up to spoolMaxSize
// into a MULTIAPPEND batch, a larger one streamed as an APPEND of its own.
func (m *IMAP) Store(ctx context.Context, folder formats.Folder, msg formats.Message, size int64, body io.Reader) (string, error) {
	if size < 0 {
		// APPEND needs the size first (POP3 cannot tell it): spool to an
		// unlinked temporary file, so memory stays flat.
		f, n, err := spool(body)
		if err != nil {
			return "", err
		}
		defer f.Close()
		body, size = f, n
	}
	if !m.noBatch {
		if err := m.appenderReady(ctx); err != nil {
			return "", err
		}
	}
	if !m.noBatch { // (appenderReady may have set it)
		stop := context.AfterFunc(ctx, func() { m.app.conn.Close() })
		defer stop()
		flags := m.keepable(folder.Name, formats.CleanFlags(msg.Flags))
		if size <= spoolMaxSize {
			if err := m.app.addFrom(folder.Name, flags, msg.Date, size, body); err != nil {
				return "", err
			}
			return "", migrate.ErrQueued
		}
		if err := m.app.addStream(folder.Name, flags, msg.Date, size, body); err != nil {
			return "", err
		}
		return "", migrate.ErrQueued
	}
	m.settle()
	if m.holds(folder.Name) {
		// Never APPEND into the folder this session has selected: Courier
		// refuses it when the folder was EXAMINEd (by the listing of the
		// destination's index), and mailutils loses it when the folder is
		// selected read-write (permanentFlags).
		if err := m.leaveReadWrite(folder.Name); err != nil {
			return "", err
		}
	}
	m.selected = "" // a later List must re-select
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	flags := make([]imap.Flag, 0, len(msg.Flags))
	for _, f := range m.keepable(folder.Name, formats.CleanFlags(msg.Flags)) {
		flags = append(flags, imap.Flag(f))
	}
	cmd := m.c.Append(folder.Name, size, &imap.AppendOptions{Flags: flags, Time: msg.Date})
	n, werr := io.Copy(cmd, io.LimitReader(body, size))
	if werr == nil && n != size {
		werr = fmt.Errorf("source gave %d of %d bytes", n, size)
	}
	if werr != nil {
		// A short literal breaks the connection: close it so nothing half-sent is taken.
		m.c.Close()
		cmd.Close()
		return "", &migrate.RetryableError{Err: fmt.Errorf("imap: %s: append to %s: %w", m.cfg, folder.Name, werr)}
	}
	if err := cmd.Close(); err != nil {
		return "", m.wrap("append to "+folder.Name, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
			if ie.Code == imap.ResponseCodeOverQuota || quotaRefusal(ie.Text) {
				return "", fmt.Errorf("%w: %s: %s", migrate.ErrQuota, m.cfg, ie.Text)
			}
			return "", &migrate.MessageError{Err: fmt.Errorf("destination refused the message: %s", ie.Text)}
		}
		return "", m.wrap("append to "+folder.Name, err)
	}
	if data.UID == 0 {
		return "", nil
	}
	return strconv.FormatUint(uint64(data.UID), 10), nil
}

// Delete marks msgs \Deleted and expunges exactly those UIDs (UID EXPUNGE,
// RFC 4315). Without UIDPLUS it only marks them: a plain EXPUNGE would also
// remove messages someone else marked, and go-imap's Move fallback does not
// check that COPY worked, so neither is used.
func (m *IMAP) Delete(ctx context.Context, folder formats.Folder, msgs []formats.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if folder.Shared || m.sharedName(folder.Name) { // someone else's mail (namespace.go)
		return fmt.Errorf("--delete-source: %s: %q is in another user's or a shared namespace: not deleting from it", m.cfg, folder.Name)
	}
	if _, err := m.sel(folder.Name, false); err != nil {
		return err
	}
	if m.writing != folder.Name {
		m.selected = "" // the next List re-selects read-only
	}
	// Every UID STORE \Deleted (1,000 UIDs each) goes out at once, and only
	// once all are answered the UID EXPUNGEs of the same UIDs. Each
	// EXPUNGE used to go out with its STORE, taken to run after it; Dovecot
	// runs pipelined commands side by side where their kinds allow it, and
	// a UID EXPUNGE that ran before its STORE had set \Deleted expunged
	// nothing, with OK: of 1,500 messages deleted at the source, 1,000 were
	// left at the destination, reported as deleted and forgotten by the
	// state (TestDeletionsOfMoreThanOneBatch).
	var sets []imap.UIDSet
	for start := 0; start < len(msgs); start += 1000 {
		var set imap.UIDSet
		for _, msg := range msgs[start:min(start+1000, len(msgs))] {
			set.AddNum(imap.UID(msg.UID))
		}
		sets = append(sets, set)
	}
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
	var sent []closer
	for _, set := range sets {
		sent = append(sent, m.c.Store(set, store, nil))
	}
	if err := closeAll(sent); err != nil {
		return m.wrap("store \\Deleted in "+folder.Name, err)
	}
	if !m.caps.Has(imap.CapUIDPlus) {
		return nil // marked only (DeleteMarksOnly)
	}
	sent = sent[:0]
	for _, set := range sets {
		sent = append(sent, m.c.UIDExpunge(set))
	}
	if err := closeAll(sent); err != nil {
		return m.wrap("uid expunge in "+folder.Name, err)
	}
	// The proof: none of the UIDs is left in the folder. An OK to UID
	// EXPUNGE is not one (above); what a server kept is tried again, and
	// stays recorded until it is gone.
	var searches []*imapclient.SearchCommand
	for _, set := range sets {
		searches = append(searches, m.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil))
	}
	left := 0
	var serr error
	for _, sc := range searches {
		data, err := sc.Wait()
		if err != nil {
			serr = errors.Join(serr, err)
			continue
		}
		left += len(data.AllUIDs())
	}
	if serr != nil {
		return m.wrap("uid search after expunge in "+folder.Name, serr)
	}
	if left > 0 {
		return &migrate.RetryableError{Err: fmt.Errorf("imap: %s: %s: the server kept %d of the %d messages it expunged with OK", m.cfg, folder.Name, left, len(msgs))}
	}
	return nil
}

// spool copies r into an unlinked temporary file and rewinds it.
func spool(r io.Reader) (*os.File, int64, error) {
	f, err := os.CreateTemp("", "mailferry-spool-")
	if err != nil {
		return nil, 0, fmt.Errorf("imap: spool: %w", err)
	}
	os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, &migrate.RetryableError{Err: fmt.Errorf("imap: spool: %w", err)}
	}
	return f, n, nil
}

// Commit waits until every queued message is appended or refused and
// returns their outcomes in Store order.
func (m *IMAP) Commit(ctx context.Context) ([]migrate.StoreResult, error) {
	return m.commit(ctx, true)
}

// KnowFolders takes another connection's listing of the account as this
// one's (migrate.FolderTeller).
func (m *IMAP) KnowFolders(folders []formats.Folder) {
	for _, f := range folders {
		if !f.NoSelect {
			m.existing[f.Name] = true
		}
	}
}

// LearnFolders lists the folders, so that this connection knows which
// exist (migrate.FolderLearner).
func (m *IMAP) LearnFolders(ctx context.Context) error {
	_, err := m.Folders(ctx)
	return err
}

// CommitSome gives the outcomes of the queued messages whose batches were
// sent before the last CommitSome (and of any answered meanwhile); the
// newer ones stay in flight (migrate.PartialCommitter, appender.commitSome).
func (m *IMAP) CommitSome(ctx context.Context) ([]migrate.StoreResult, error) {
	return m.commit(ctx, false)
}

// commit waits for every batch (all), or for those commitSome waits for.
func (m *IMAP) commit(ctx context.Context, all bool) ([]migrate.StoreResult, error) {
	if m.app == nil {
		return nil, nil
	}
	stop := context.AfterFunc(ctx, func() { m.app.conn.Close() })
	defer stop()
	var outs []appendOutcome
	var err error
	if all {
		outs, err = m.app.commit()
	} else {
		outs, err = m.app.commitSome()
	}
	if err != nil {
		return nil, err
	}
	res := make([]migrate.StoreResult, len(outs))
	for i, o := range outs {
		res[i].Err = o.err
		if o.uid != 0 {
			res[i].ID = strconv.FormatUint(uint64(o.uid), 10)
		}
	}
	return res, nil
}

// wrap classifies a command error: a server NO/BAD stays as it is, anything
// else (connection gone, timeout) is retryable.
func (m *IMAP) wrap(what string, err error) error {
	var ie *imap.Error
	if errors.As(err, &ie) {
		if ie.Code == imap.ResponseCodeUnavailable || ie.Code == imap.ResponseCodeLimit {
			return &migrate.RetryableError{Err: fmt.Errorf("imap: %s: %s: %w", m.cfg, what, err)}
		}
		return fmt.Errorf("imap: %s: %s: %w", m.cfg, what, err)
	}
	return &migrate.RetryableError{Err: fmt.Errorf("imap: %s: %s: %w", m.cfg, what, err)}
}

// selectErr is a failed SELECT or EXAMINE of name. A NO (the server cannot
// read the folder, a right is missing) concerns that folder alone: a
// migrate.FolderOpenError, which fails the folder and not the run.
func (m *IMAP) selectErr(name string, err error) error {
	werr := m.wrap("select "+name, err)
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo && !migrate.IsRetryable(werr) {
		return &migrate.FolderOpenError{Folder: name, Err: werr}
	}
	return werr
}

var (
	_ migrate.FolderPreparer = (*IMAP)(nil)
	_ migrate.ListStarter    = (*IMAP)(nil)
	_ migrate.EnsureStarter  = (*IMAP)(nil)
)

// EnsureAll creates the folders at paths that this connection does not know
// to exist, sending every CREATE and SUBSCRIBE at once (one round trip for
// all) on this one connection (migrate.FolderPreparer: why), each with a
// STATUS of the folder just made, and a STATUS alone of each it knows to
// exist (INBOX): it returns their counts (made[i] for paths[i]; the zero
// Folder where it made none, or where the name is not an atom: that STATUS
// would be an EXAMINE, imapquirks.go). A folder the server refuses, or one
// in someone else's namespace, is left for Ensure to report by name.
func (m *IMAP) EnsureAll(ctx context.Context, paths [][]string) (made []formats.Folder, err error) {
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	type pending struct {
		i                 int
		name              string
		create, subscribe *imapclient.Command
		status            *imapclient.StatusCommand
	}
	var sent []pending
	for i, p := range paths {
		name := m.nameOf(p)
		known := m.existing[name] || name == "INBOX"
		if m.sharedName(name) || known && !isAtom(name) {
			continue
		}
		pd := pending{i: i, name: name}
		if !known {
			pd.create, pd.subscribe = m.c.Create(name, nil), m.c.Subscribe(name)
		}
		if isAtom(name) {
			pd.status = m.c.Status(name, m.statusOptions())
		}
		sent = append(sent, pd)
	}
	made = make([]formats.Folder, len(paths))
	var lost error
	for _, p := range sent {
		var err error
		if p.create != nil {
			err = p.create.Wait()
			var ie *imap.Error
			switch {
			case err == nil:
				m.existing[p.name] = true
			case !errors.As(err, &ie) && lost == nil:
				lost = m.wrap("create "+p.name, err)
			}
			p.subscribe.Wait() // best effort, as in Ensure
		}
		if p.status == nil {
			continue
		}
		sd, serr := p.status.Wait()
		if err == nil && serr == nil && sd.UIDValidity != 0 && sd.UIDNext != 0 && sd.NumMessages != nil {
			made[p.i] = formats.Folder{Name: p.name, Path: m.pathOf(p.name, m.delim)}
			setStatus(&made[p.i], sd)
		}
	}
	return made, lost
}
