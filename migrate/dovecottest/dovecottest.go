// Package dovecottest starts throwaway Dovecot 2.3 instances on 127.0.0.1
// for tests that need a real IMAP or POP3 server.
//
// Every instance lives in its own temporary directory (configuration, runtime
// sockets, state, log, mail) with its own ports, so tests in different
// packages may start instances at the same time. The master runs in the
// foreground (dovecot -F) as a child of the test binary and is stopped, and
// its directory removed, by t.Cleanup.
//
// With Options.OAuth2IntrospectionURL users may also log in with OAuth2
// tokens (XOAUTH2, OAUTHBEARER) that an OAuth2Server (oauth.go) vouches
// for; with Options.NamespacePrefix the personal namespace has a prefix
// ("INBOX.", as on Courier and Cyrus); with Options.Sharing users may share
// folders (Server.Share) and there is a public namespace (sharing.go).
//
// With Options.TLS an instance also speaks TLS: a CA and a server
// certificate made for it (see tls.go), STARTTLS and STLS offered on the
// plaintext ports, and imaps and pop3s listeners (Server.IMAPSPort,
// POP3SPort, CAFile).
//
// Requirements: the dovecot binary (Debian: apt-get install dovecot-imapd
// dovecot-pop3d) and root, because Dovecot's login processes switch users.
// Without them Start skips the test, except when the environment has
// CI=true: then it fails it, so a CI machine cannot pass by skipping.
//
// What Dovecot 2.3.19 does, found with this harness and pinned by the tests
// in dovecottest_test.go (check them again when the Dovecot version changes):
//
//   - Maildir files are stored with LF line endings (the file name carries
//     S=<LF size>,W=<CRLF size>), and BODY[] is always served with CRLF. So a
//     CRLF message comes back byte for byte, while a bare-LF message comes
//     back with every LF turned into CRLF (RFC822.SIZE and the literal grow
//     by one byte per line). A lone CR is kept as it is.
//   - A NUL byte in an ordinary APPEND literal is accepted (go-imap has no
//     literal8) and stored as NUL on disk, but BODY[] serves every NUL as
//     0x80. BINARY[] (a literal8) returns the NUL. Snapshot hashes BODY[], so
//     it sees 0x80.
//   - On a '.' server a folder name may not contain '/': CREATE "a/b" gets
//     NO [CANNOT] Character not allowed in mailbox name: '/' (mail_location
//     maildir:...:LAYOUT=fs keeps '/' for the directory tree). On a '/' server
//     a name may contain '.' (which the default Maildir++ layout forbids).
//   - A plain LIST "" "*" already carries the special-use attributes (\Sent
//     and so on). A parent that only exists because a child was created
//     (CREATE "a/b" alone) is listed \Noselect; Seed creates parents itself,
//     so they are real, selectable folders.
//   - INTERNALDATE keeps the instant given to APPEND (to the second) but not
//     its zone: Maildir keeps it as the file's mtime, and it comes back in
//     +0000. Compare dates with time.Time.Equal.
//   - An instance is up (both greetings received) about 40 ms after exec
//     here, the first one of a test binary about 100 ms. Stop takes a few ms;
//     a polite SIGTERM shutdown would take 1 s, or 6 s with a client logged
//     in, which is why Stop kills.
package dovecottest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/migrate/internal/testproc"
)

// MailUser is the unprivileged system user that owns the test mailboxes.
// Start creates it (useradd --system) when it does not exist.
const MailUser = "mailferrytest"

// flagRecent is not in go-imap v2 (IMAP4rev2 dropped it); Dovecot still sends it.
const flagRecent = `\Recent`

// dirPrefix names the instance directories under os.TempDir(); Start removes
// those left behind by test binaries that died without running cleanups.
const dirPrefix = "mailferry-dovecot-"

// Options configures an instance. The zero value is a '/' server with the
// default users, no special-use folders and no TLS.
type Options struct {
	// Separator is the hierarchy separator: '/' or '.'; 0 means '/'.
	Separator rune
	// Users maps user names to passwords; nil means DefaultUsers.
	Users map[string]string
	// SpecialUse creates Sent (\Sent), Drafts (\Drafts), Trash (\Trash),
	// Junk (\Junk) and Archive (\Archive), subscribed, on first access.
	SpecialUse bool
	// SentName names the \Sent folder when SpecialUse is set ("Sent" if
	// empty), in the server's own spelling (e.g. "Sent Items").
	SentName string
	// TLS turns on ssl = yes (not required: plaintext LOGIN still works on
	// the plaintext ports, which offer STARTTLS and STLS) with a certificate
	// signed by a CA made for the instance (Server.CAFile), and adds imaps
	// and pop3s listeners (Server.IMAPSPort, POP3SPort).
	TLS bool
	// TLSHost, with TLS, is the only name the server certificate is issued
	// for (a DNS name or an IP address), e.g. "mail.example.invalid" for a
	// certificate that does not match 127.0.0.1 or localhost. Empty means
	// "localhost" and 127.0.0.1.
	TLSHost string
	// MaxMailSize, when positive, makes the server refuse any message larger
	// than this many bytes (quota plugin, quota_max_mail_size): the test
	// server for "a message the destination refuses".
	MaxMailSize int64
	// QuotaBytes, when positive, is each user's storage quota (quota plugin):
	// the test server for "a full quota".
	QuotaBytes int64
	// NamespacePrefix is the personal namespace's prefix, ending with the
	// separator: "INBOX." makes a server laid out as Courier and Cyrus are
	// (INBOX is "INBOX", every other folder "INBOX.Name"; NAMESPACE says
	// (("INBOX." ".")) ). Empty means no prefix. Seed, Folders and
	// Snapshot use the server's own spelling, prefix included.
	NamespacePrefix string
	// OAuth2IntrospectionURL, when set, adds XOAUTH2 and OAUTHBEARER
	// (auth_mechanisms) with an oauth2 passdb that asks this URL (RFC 7662
	// token introspection, POST token=...) whether a token is active and
	// whose it is; see OAuth2Server for a test endpoint. Plaintext LOGIN and
	// PLAIN keep using the passwords of Users. auth_failure_delay is 0 and
	// the auth penalty is off, so that a refused token answers at once
	// however many came before.
	OAuth2IntrospectionURL string
	// SpecialUseFolders maps more folder names (the server's spelling, e.g.
	// "[Gmail]/All Mail") to a special-use attribute (`\All`, `\Flagged`):
	// each is created and subscribed on first access, as with SpecialUse.
	SpecialUseFolders map[string]string
	// Sharing turns on Dovecot's ACLs (acl = vfile, imap_acl, with a shared
	// mailbox dictionary so that LIST shows what was shared) and two more
	// namespaces, as a server with shared folders has them: an other users'
	// namespace "shared<sep><owner><sep>" (type shared; a folder appears
	// there once its owner grants it with Server.Share) and a shared
	// namespace "Public<sep>" (type public; see PublicFolders). NAMESPACE
	// then answers with all three (RFC 2342).
	Sharing bool
	// PublicFolders, with Sharing, are created in the public namespace on
	// start (names without the "Public<sep>" prefix, the server's
	// separator), each with an ACL giving every user all rights, so that
	// any user can Seed them and, unless a client refrains, expunge.
	PublicFolders []string
	// IMAPCapability, when set, replaces the capabilities IMAP announces
	// after login (imap_capability): e.g. WithoutCaps("CONDSTORE",
	// "QRESYNC") for a server whose clients must do without them. Dovecot
	// still answers the commands; a client that reads CAPABILITY will not
	// use them.
	IMAPCapability string
	// MailLocation, when set, replaces the mail_location (default
	// "maildir:DIR/mail/%u:LAYOUT=fs"), for a server pointed at a
	// Maildir a test made: "maildir:~/Maildir" is Dovecot's default
	// Maildir++ in Server.Home(user) + "/Maildir" (see GiveToMailUser).
	MailLocation string
	// MaxUserIPConnections, when positive, is mail_max_userip_connections:
	// a login beyond that many sessions of one user from one address is
	// refused with "NO [LIMIT] Maximum number of connections from user+IP
	// exceeded". Dovecot's own default is 10; the harness's is 200, so
	// that tests running side by side do not meet it.
	MaxUserIPConnections int
}

// PostLoginCaps is what Dovecot 2.3.19 announces after login with this
// harness's configuration.
const PostLoginCaps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"

// WithoutCaps is PostLoginCaps without the named capabilities.
func WithoutCaps(drop ...string) string {
	var out []string
	for _, c := range strings.Fields(PostLoginCaps) {
		keep := true
		for _, d := range drop {
			if strings.EqualFold(c, d) {
				keep = false
			}
		}
		if keep {
			out = append(out, c)
		}
	}
	return strings.Join(out, " ")
}

// DefaultUsers returns the users an instance gets when Options.Users is nil.
func DefaultUsers() map[string]string {
	return map[string]string{"alice": "alice-secret-pw", "bob": "bob-secret-pw"}
}

// Server is a running instance.
type Server struct {
	Dir       string // instance directory (removed on cleanup)
	Host      string // "127.0.0.1"
	IMAPPort  int
	POP3Port  int
	Separator rune
	Users     map[string]string

	// Settle, when set, is called before every connection the helpers
	// open (Client, Seed, Snapshot, Folders). servertest sets it for a
	// server that goes on working on a session after its client has hung
	// up, so that what the helpers read is what that session left.
	Settle func() error

	// With Options.TLS (zero and empty without it):
	IMAPSPort int    // implicit-TLS IMAP listener
	POP3SPort int    // implicit-TLS POP3 listener
	CAFile    string // PEM of the CA that signed the server certificate (inside Dir)

	certFile, keyFile string            // ssl_cert and ssl_key
	caCert            *x509.Certificate // the CA in CAFile
	tlsNames          []string          // what the server certificate is issued for

	bin      string // the dovecot binary
	cmd      *exec.Cmd
	done     chan struct{} // closed when the master has been waited for
	waitErr  error
	logPath  string
	quota    quotaOpts
	extra    extraOpts
	stopOnce sync.Once
}

// IMAPAddr returns "127.0.0.1:port" of the plaintext IMAP listener.
func (s *Server) IMAPAddr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.IMAPPort)) }

// POP3Addr returns "127.0.0.1:port" of the plaintext POP3 listener.
func (s *Server) POP3Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.POP3Port)) }

// Home returns user's home directory (owned by MailUser; it may not exist
// before the user's first login).
func (s *Server) Home(user string) string { return filepath.Join(s.Dir, "home", user) }

// GiveToMailUser makes path and everything below it MailUser's, so that
// the server can read and change a Maildir a test put there.
func (s *Server) GiveToMailUser(t testing.TB, path string) {
	t.Helper()
	uid, gid, err := ensureMailUser()
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	err = filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
}

// RefuseLogins makes the server refuse user's password (refuse) or accept
// it again (!refuse), as a server does whose authentication is briefly
// broken: Dovecot answers "Authentication failed." to a good password while
// its auth process is down or restarting. The passwd-file is replaced, and
// Dovecot reads it again at the next login because its size changed; but
// it looks at the file at most once a second (db-passwd-file.c), so
// RefuseLogins returns a second later, when every login sees the change.
// Seed, Client and the other helpers log in with Users, so they fail while
// logins are refused.
func (s *Server) RefuseLogins(t testing.TB, user string, refuse bool) {
	t.Helper()
	if _, ok := s.Users[user]; !ok {
		t.Fatalf("dovecottest: RefuseLogins: no user %q", user)
	}
	users := maps.Clone(s.Users)
	if refuse {
		users[user] += "-refused"
	}
	if err := writePasswd(filepath.Join(s.Dir, "passwd"), users); err != nil {
		t.Fatalf("dovecottest: RefuseLogins: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
}

// writePasswd writes users' passwords as the passwd-file at path, in
// place of the one there (a rename: the auth process never reads half a
// file). It is read by the auth process, which runs as the dovecot user;
// the passwords are test fixtures, so world-readable is fine.
func writePasswd(path string, users map[string]string) error {
	var pw strings.Builder
	for _, u := range slices.Sorted(maps.Keys(users)) {
		fmt.Fprintf(&pw, "%s:{PLAIN}%s\n", u, users[u])
	}
	if err := os.WriteFile(path+".new", []byte(pw.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".new", path)
}

// LogTail returns the last n lines of the instance's log.
func (s *Server) LogTail(n int) string { return tailFile(s.logPath, n) }

// Start starts an instance, waits until its IMAP and POP3 listeners greet,
// and registers Stop with t.Cleanup. It skips the test, saying why, when
// dovecot is not installed or the test does not run as root; with CI=true in
// the environment it fails the test instead. A failed start fails the test
// with the tail of Dovecot's log and the generated config.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := requireDovecot(t)

	sep := opts.Separator
	if sep == 0 {
		sep = '/'
	}
	if sep != '/' && sep != '.' {
		t.Fatalf("dovecottest: separator %q not supported (use '/' or '.')", sep)
	}
	users := opts.Users
	if users == nil {
		users = DefaultUsers()
	}
	users = maps.Clone(users)
	for u, p := range users {
		if u == "" || strings.ContainsAny(u, ":/\n\r\t %\x00") || strings.ContainsAny(p, ":\n\r\x00") {
			t.Fatalf("dovecottest: user %q or its password cannot go into a passwd-file", u)
		}
	}
	sentName := opts.SentName
	if sentName == "" {
		sentName = "Sent"
	}
	if pfx := opts.NamespacePrefix; pfx != "" && (!strings.HasSuffix(pfx, string(sep)) ||
		len(pfx) == 1 || strings.ContainsAny(pfx, " \t\r\n\"\\{}#")) {
		t.Fatalf("dovecottest: NamespacePrefix %q must be a name followed by the separator %q", pfx, sep)
	}
	if len(opts.PublicFolders) > 0 && !opts.Sharing {
		t.Fatalf("dovecottest: Options.PublicFolders without Options.Sharing")
	}
	for _, f := range opts.PublicFolders {
		if f == "" || strings.ContainsAny(f, "\x00\r\n") || strings.Contains(f, "..") || strings.HasPrefix(f, string(sep)) {
			t.Fatalf("dovecottest: public folder %q", f)
		}
	}
	if u := opts.OAuth2IntrospectionURL; strings.ContainsAny(u, " \t\r\n") {
		t.Fatalf("dovecottest: OAuth2IntrospectionURL %q", u)
	}
	var tlsNames []string
	if opts.TLS {
		tlsNames = tlsCertNames(opts.TLSHost)
	} else if opts.TLSHost != "" {
		t.Fatalf("dovecottest: Options.TLSHost %q without Options.TLS", opts.TLSHost)
	}

	uid, gid, err := ensureMailUser()
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	reapStale()

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(bin, sep, users, opts.SpecialUse, sentName, uid, gid, tlsNames, quotaOpts{opts.MaxMailSize, opts.QuotaBytes},
			extraOpts{nsPrefix: opts.NamespacePrefix, oauth2URL: opts.OAuth2IntrospectionURL, specialUse: opts.SpecialUseFolders,
				sharing: opts.Sharing, public: opts.PublicFolders, capability: opts.IMAPCapability,
				mailLocation: opts.MailLocation, maxUserIP: opts.MaxUserIPConnections})
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("dovecottest: %v", lastErr)
	return nil
}

var errPortTaken = errors.New("port taken")

// requireDovecot returns the dovecot binary, or skips (fails under CI=true)
// when it is missing or we are not root.
func requireDovecot(t testing.TB) string {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("CI") == "true" {
			t.Fatalf("dovecottest: %s (CI=true: not skipping)", msg)
		}
		t.Skipf("dovecottest: skipping: %s", msg)
	}
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		for _, p := range []string{"/usr/sbin/dovecot", "/usr/local/sbin/dovecot"} {
			if _, err2 := os.Stat(p); err2 == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		skip("dovecot is not installed (apt-get install -y dovecot-imapd dovecot-pop3d, or run scripts/test as root)")
	}
	if os.Geteuid() != 0 {
		skip("a Dovecot test instance needs root (its login processes change user); uid is %d", os.Geteuid())
	}
	return bin
}

var mailUserMu sync.Mutex

// ensureMailUser returns the uid and gid of MailUser, creating the user when
// missing. Other test binaries may do the same at the same moment, so a
// failed useradd is followed by another look-up before giving up.
func ensureMailUser() (uid, gid int, err error) {
	mailUserMu.Lock()
	defer mailUserMu.Unlock()
	lookup := func() (int, int, error) {
		u, err := user.Lookup(MailUser)
		if err != nil {
			return 0, 0, err
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("user %s has uid %q gid %q", MailUser, u.Uid, u.Gid)
		}
		return uid, gid, nil
	}
	if uid, gid, err := lookup(); err == nil {
		return uid, gid, nil
	}
	var out []byte
	for attempt := 0; attempt < 20; attempt++ {
		args := []string{"--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", "--user-group", MailUser}
		if _, gerr := user.LookupGroup(MailUser); gerr == nil {
			// A group left behind (or made by a concurrent useradd).
			args = []string{"--system", "--no-create-home", "--home-dir", "/nonexistent",
				"--shell", "/usr/sbin/nologin", "--gid", MailUser, MailUser}
		}
		out, err = exec.Command("useradd", args...).CombinedOutput()
		if uid, gid, lerr := lookup(); lerr == nil {
			return uid, gid, nil
		}
		// Lock held by a concurrent useradd: wait and look again.
		time.Sleep(100 * time.Millisecond)
	}
	return 0, 0, fmt.Errorf("cannot create user %s: %v: %s", MailUser, err, bytes.TrimSpace(out))
}

// start starts one instance; tlsNames non-nil turns TLS on with a server
// certificate for those names.
// quotaOpts are the quota plugin's limits; zero values leave it off.
type quotaOpts struct{ maxMail, storage int64 }

// extraOpts are Options.NamespacePrefix, OAuth2IntrospectionURL,
// SpecialUseFolders, Sharing and PublicFolders.
type extraOpts struct {
	nsPrefix, oauth2URL string
	specialUse          map[string]string // Options.SpecialUseFolders
	sharing             bool
	public              []string
	capability          string // Options.IMAPCapability
	mailLocation        string // Options.MailLocation
	maxUserIP           int    // Options.MaxUserIPConnections
}

func start(bin string, sep rune, users map[string]string, specialUse bool, sentName string, uid, gid int, tlsNames []string, quota quotaOpts, extra extraOpts) (s *Server, err error) {
	dir, err := os.MkdirTemp(testproc.TempParent(), dirPrefix)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && s == nil {
			os.RemoveAll(dir)
		}
	}()
	// The login (dovenull), auth and mail (MailUser) processes must be able
	// to traverse the path; os.MkdirTemp makes it 0700.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	for _, d := range []string{"run", "state", "mail", "home"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"mail", "home"} {
		if err := os.Chown(filepath.Join(dir, d), uid, gid); err != nil {
			return nil, err
		}
	}
	if extra.sharing {
		if err := makeSharing(dir, sep, extra.public, uid, gid); err != nil {
			return nil, fmt.Errorf("making the public folders: %w", err)
		}
	}
	passwdPath := filepath.Join(dir, "passwd")
	if err := writePasswd(passwdPath, users); err != nil {
		return nil, err
	}

	nports := 2
	if tlsNames != nil {
		nports = 4 // and imaps, pop3s
	}
	ports, err := testproc.FreePorts(nports)
	if err != nil {
		return nil, err
	}
	s = &Server{
		Dir:       dir,
		Host:      "127.0.0.1",
		IMAPPort:  ports[0],
		POP3Port:  ports[1],
		Separator: sep,
		Users:     users,
		logPath:   filepath.Join(dir, "dovecot.log"),
	}
	if tlsNames != nil {
		s.IMAPSPort, s.POP3SPort = ports[2], ports[3]
		if err := s.setupTLS(tlsNames); err != nil {
			return nil, fmt.Errorf("making the TLS certificates: %w", err)
		}
	}
	s.quota = quota
	s.extra = extra
	if extra.oauth2URL != "" {
		conf := "introspection_mode = post\n" +
			"introspection_url = " + extra.oauth2URL + "\n" +
			"username_attribute = username\n" +
			"active_attribute = active\n" +
			"active_value = true\n"
		if err := os.WriteFile(filepath.Join(dir, "dovecot-oauth2.conf.ext"), []byte(conf), 0o644); err != nil {
			return nil, err
		}
	}
	conf := s.config(passwdPath, specialUse, sentName, uid, gid)
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}

	s.bin = bin
	began := time.Now()
	if err := s.launch(); err != nil {
		log := tailFile(s.logPath, 30) + tailFile(filepath.Join(dir, "dovecot.out"), 30)
		s.Stop()
		if strings.Contains(log, "Address already in use") {
			return nil, fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return nil, fmt.Errorf("dovecot did not start (%v) after %v; log tail:\n%s\nconfig:\n%s",
			err, time.Since(began).Round(time.Millisecond), log, numbered(conf))
	}
	return s, nil
}

// config renders the instance's dovecot.conf.
func (s *Server) config(passwdPath string, specialUse bool, sentName string, uid, gid int) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# generated by mailferry's dovecottest")
	p("instance_name = %s", filepath.Base(s.Dir))
	p("base_dir = %s", filepath.Join(s.Dir, "run"))
	p("state_dir = %s", filepath.Join(s.Dir, "state"))
	p("log_path = %s", s.logPath)
	p("protocols = imap pop3")
	p("listen = 127.0.0.1")
	if s.IMAPSPort != 0 {
		s.tlsConfig(p)
	} else {
		p("ssl = no")
	}
	p("disable_plaintext_auth = no")
	if s.extra.oauth2URL != "" {
		p("auth_mechanisms = plain login xoauth2 oauthbearer")
		p("auth_failure_delay = 0")
		p("auth_verbose = yes") // why a token was refused, in LogTail
		// No auth penalty (up to 15 s per login after failures from the
		// same IP): the tests refuse tokens on purpose.
		p("service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}")
		p("passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = %s\n}", filepath.Join(s.Dir, "dovecot-oauth2.conf.ext"))
	} else {
		p("auth_mechanisms = plain login")
	}
	p("default_login_user = dovenull")
	p("default_internal_user = dovecot")
	// MailUser is a system user (uid below 1000, Dovecot's default floor).
	p("first_valid_uid = 1")
	p("first_valid_gid = 1")
	p("mail_fsync = never")
	if s.extra.maxUserIP > 0 {
		p("mail_max_userip_connections = %d", s.extra.maxUserIP)
	} else {
		p("mail_max_userip_connections = 200")
	}
	// Dovecot's 256 MB per process is too little for a Maildir folder of
	// 300,000 messages: a FETCH 1:* of it ends in "Out of memory (service
	// imap { vsz_limit=256 MB }, you may need to increase it)", and the
	// million-message benchmark's INBOX is that size.
	p("default_vsz_limit = 1G")
	// LAYOUT=fs: folders are plain subdirectories, so with '/' as separator
	// a name may contain '.' (the default Maildir++ layout forbids it).
	if s.extra.mailLocation != "" {
		p("mail_location = %s", s.extra.mailLocation)
	} else {
		p("mail_location = maildir:%s/%%u:LAYOUT=fs", filepath.Join(s.Dir, "mail"))
	}
	if s.extra.oauth2URL != "" {
		// Tokens are checked by the oauth2 passdb alone.
		p("passdb {\n  driver = passwd-file\n  mechanisms = plain login\n  args = scheme=PLAIN username_format=%%u %s\n}", passwdPath)
	} else {
		p("passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%%u %s\n}", passwdPath)
	}
	p("userdb {\n  driver = static\n  args = uid=%d gid=%d home=%s/%%u\n}", uid, gid, filepath.Join(s.Dir, "home"))
	if s.IMAPSPort != 0 {
		p("service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }\n  inet_listener imaps {\n    address = 127.0.0.1\n    port = %d\n    ssl = yes\n  }\n}", s.IMAPPort, s.IMAPSPort)
		p("service pop3-login {\n  inet_listener pop3 {\n    address = 127.0.0.1\n    port = %d\n  }\n  inet_listener pop3s {\n    address = 127.0.0.1\n    port = %d\n    ssl = yes\n  }\n}", s.POP3Port, s.POP3SPort)
	} else {
		p("service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }\n  inet_listener imaps {\n    port = 0\n  }\n}", s.IMAPPort)
		p("service pop3-login {\n  inet_listener pop3 {\n    address = 127.0.0.1\n    port = %d\n  }\n  inet_listener pop3s {\n    port = 0\n  }\n}", s.POP3Port)
	}
	// One mail_plugins line and one protocol imap block for every plugin.
	var plugins, imapPlugins []string
	if s.quota.maxMail > 0 || s.quota.storage > 0 {
		plugins, imapPlugins = append(plugins, "quota"), append(imapPlugins, "imap_quota")
	}
	if s.extra.sharing {
		plugins, imapPlugins = append(plugins, "acl"), append(imapPlugins, "imap_acl")
	}
	if len(plugins) > 0 {
		p("mail_plugins = $mail_plugins %s", strings.Join(plugins, " "))
		p("protocol imap {\n  mail_plugins = $mail_plugins %s\n}", strings.Join(imapPlugins, " "))
	}
	if s.extra.sharing {
		s.sharingConfig(p)
	}
	if s.extra.capability != "" {
		p("imap_capability = %s", s.extra.capability)
	}
	if s.quota.maxMail > 0 || s.quota.storage > 0 {
		p("plugin {\n  quota = count:User quota\n  quota_vsizes = yes")
		if s.quota.storage > 0 {
			p("  quota_rule = *:storage=%dB", s.quota.storage)
		}
		if s.quota.maxMail > 0 {
			p("  quota_max_mail_size = %dB", s.quota.maxMail)
		}
		p("}")
	}
	p("namespace inbox {\n  inbox = yes\n  separator = %c\n  prefix = %s", s.Separator, s.extra.nsPrefix)
	if specialUse {
		for _, m := range []struct{ name, use string }{
			{sentName, `\Sent`}, {"Drafts", `\Drafts`}, {"Trash", `\Trash`},
			{"Junk", `\Junk`}, {"Archive", `\Archive`},
		} {
			p("  mailbox %s {\n    special_use = %s\n    auto = subscribe\n  }", confQuote(m.name), m.use)
		}
	}
	extraNames := make([]string, 0, len(s.extra.specialUse))
	for name := range s.extra.specialUse {
		extraNames = append(extraNames, name)
	}
	sort.Strings(extraNames)
	for _, name := range extraNames {
		p("  mailbox %s {\n    special_use = %s\n    auto = subscribe\n  }", confQuote(name), s.extra.specialUse[name])
	}
	p("}")
	return b.String()
}

// numbered prefixes each line with its number, as doveconf's errors cite them.
func numbered(conf string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimRight(conf, "\n"), "\n") {
		fmt.Fprintf(&b, "%3d %s\n", i+1, l)
	}
	return b.String()
}

func confQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// waitReady waits until every listener greets (the TLS ones over TLS), or
// the master exits.
func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	type probeT struct {
		port   int
		prefix string
		tls    bool
	}
	probes := []probeT{{s.IMAPPort, "* OK", false}, {s.POP3Port, "+OK", false}}
	if s.IMAPSPort != 0 {
		probes = append(probes, probeT{s.IMAPSPort, "* OK", true}, probeT{s.POP3SPort, "+OK", true})
	}
	for _, probe := range probes {
		for {
			select {
			case <-s.done:
				return fmt.Errorf("master exited: %v", s.waitErr)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no greeting on port %d within %v", probe.port, timeout)
			}
			addr := net.JoinHostPort(s.Host, strconv.Itoa(probe.port))
			if probe.tls && greetsTLS(addr, probe.prefix, s.probeConfig()) ||
				!probe.tls && testproc.Greets(addr, probe.prefix) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Stop kills the instance at once (its data is thrown away anyway) and
// waits until the master and all its processes are gone; then it removes the
// instance directory. Connected clients see the connection drop. Stop is
// called by t.Cleanup; calling it earlier, or twice, is fine.
func (s *Server) Stop() { s.stopOnce.Do(s.stop) }

// stop does not ask the master to shut down with SIGTERM: Dovecot 2.3 then
// takes 1 s, and 6 s with a client logged in. Instead the master is frozen
// (so it cannot fork more), its children are listed, and all are killed.
func (s *Server) stop() {
	s.kill()
	os.RemoveAll(s.Dir)
}

// Restart kills the instance as Stop does but keeps its directory, then
// starts it again with the same configuration, on the same ports, with the
// same mail: a server restart as its clients see it (their connections
// drop, and for a while nothing answers). It fails the test if the
// instance does not come back.
func (s *Server) Restart(t testing.TB, down time.Duration) {
	t.Helper()
	s.kill()
	time.Sleep(down)
	if err := s.launch(); err != nil {
		t.Fatalf("dovecottest: restart: %v", err)
	}
}

// launch starts the master on the instance's configuration and waits for
// its greetings.
func (s *Server) launch() error {
	out, err := os.OpenFile(filepath.Join(s.Dir, "dovecot.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	// -F keeps the master in the foreground as our child, so stopping it is
	// a signal and a Wait. Files, not pipes, for its output: a pipe would
	// make the harness wait for every process that inherited it.
	cmd := exec.Command(s.bin, "-F", "-c", filepath.Join(s.Dir, "dovecot.conf"))
	cmd.Dir = s.Dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, out, out
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	s.cmd, s.done, s.waitErr = cmd, make(chan struct{}), nil
	done := s.done
	go func() {
		s.waitErr = cmd.Wait()
		close(done)
	}()
	return s.waitReady(15 * time.Second)
}

// kill kills the master and its processes and waits until they are gone.
func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pid := s.cmd.Process.Pid
	select {
	case <-s.done:
	default:
		testproc.Freeze(pid) // stopped before its children are listed
		children := testproc.Children(pid)
		s.cmd.Process.Kill()
		for _, c := range children {
			syscall.Kill(c, syscall.SIGKILL)
		}
		<-s.done
		waitGone(children, 10*time.Second)
	}
}

func waitGone(pids []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, p := range pids {
		for testproc.Alive(p) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// isInstance reports whether pid is the master of the instance in dir: its
// command line names the instance's config file.
func isInstance(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte(filepath.Join(dir, "dovecot.conf")))
}

var reapOnce sync.Once

// reapStale runs reapStaleNow once per test binary.
func reapStale() { reapOnce.Do(reapStaleNow) }

// reapStaleNow kills instances whose test binary died before its cleanups
// ran (e.g. killed by go test -timeout) and removes their directories. Only
// directories made by this package whose owner process is gone are touched,
// and only a process whose command line names that directory's config is
// killed, with the processes it forked.
func reapStaleNow() {
	dirs, _ := filepath.Glob(filepath.Join(testproc.TempParent(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || owner == os.Getpid() || testproc.Alive(owner) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(d, "run", "master.pid")); err == nil {
			m, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err == nil && testproc.Alive(m) && isInstance(m, d) {
				testproc.Freeze(m)
				kids := testproc.Children(m)
				for _, p := range append([]int{m}, kids...) {
					syscall.Kill(p, syscall.SIGKILL)
				}
				waitGone(append([]int{m}, kids...), 5*time.Second)
			}
		}
		os.RemoveAll(d)
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// Client returns a logged-in plaintext IMAP client for user, logged out and
// closed by t.Cleanup.
func (s *Server) Client(t testing.TB, user string) *imapclient.Client {
	t.Helper()
	c, err := s.dial(user)
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	t.Cleanup(func() {
		c.Logout().Wait()
		c.Close()
	})
	return c
}

func (s *Server) dial(user string) (*imapclient.Client, error) {
	pw, ok := s.Users[user]
	if !ok {
		return nil, fmt.Errorf("no user %q on this server", user)
	}
	if s.Settle != nil {
		if err := s.Settle(); err != nil {
			return nil, err
		}
	}
	c, err := imapclient.DialInsecure(s.IMAPAddr(), &imapclient.Options{
		Dialer: &net.Dialer{Timeout: 10 * time.Second},
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", s.IMAPAddr(), err)
	}
	if err := c.Login(user, pw).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("login %s at %s: %w\nlog tail:\n%s", user, s.IMAPAddr(), err, s.LogTail(10))
	}
	return c, nil
}

// withClient runs fn on a fresh connection that is closed afterwards.
func (s *Server) withClient(t testing.TB, user string, fn func(c *imapclient.Client) error) {
	t.Helper()
	c, err := s.dial(user)
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	defer c.Close()
	if err := fn(c); err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	c.Logout().Wait()
}

// SeedMessage is one message for Seed.
type SeedMessage struct {
	Folder string    // in the server's own spelling; "" means INBOX
	Body   []byte    // the exact bytes to APPEND
	Flags  []string  // system flags (`\Seen`) and keywords; \Recent is dropped
	Date   time.Time // INTERNALDATE; the zero time lets the server choose
}

// Seed appends msgs for user in order, creating each folder and its parents
// when missing.
func (s *Server) Seed(t testing.TB, user string, msgs []SeedMessage) {
	t.Helper()
	s.withClient(t, user, func(c *imapclient.Client) error {
		made := map[string]bool{"INBOX": true}
		for _, f := range s.extra.public { // made by Start, not creatable by users
			made[s.PublicPrefix()+f] = true
		}
		for i, m := range msgs {
			folder := m.Folder
			if folder == "" || strings.EqualFold(folder, "INBOX") {
				folder = "INBOX"
			}
			if !made[folder] {
				if err := s.createAll(c, folder, made); err != nil {
					return err
				}
			}
			var flags []imap.Flag
			for _, f := range m.Flags {
				if !strings.EqualFold(f, flagRecent) {
					flags = append(flags, imap.Flag(f))
				}
			}
			cmd := c.Append(folder, int64(len(m.Body)), &imap.AppendOptions{Flags: flags, Time: m.Date})
			_, werr := cmd.Write(m.Body)
			cerr := cmd.Close()
			_, err := cmd.Wait()
			if err = errors.Join(werr, cerr, err); err != nil {
				return fmt.Errorf("seed message %d (%d bytes) into %q: %w", i, len(m.Body), folder, err)
			}
		}
		return nil
	})
}

// createAll creates folder and every missing parent.
func (s *Server) createAll(c *imapclient.Client, folder string, made map[string]bool) error {
	parts := strings.Split(folder, string(s.Separator))
	for i := range parts {
		name := strings.Join(parts[:i+1], string(s.Separator))
		if made[name] || strings.EqualFold(name, "INBOX") || s.extra.sharing && name+string(s.Separator) == s.PublicPrefix() {
			continue // (the public namespace's root cannot be created)
		}
		if err := c.Create(name, nil).Wait(); err != nil {
			var ierr *imap.Error
			if !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeAlreadyExists {
				return fmt.Errorf("create %q: %w", name, err)
			}
		}
		made[name] = true
	}
	return nil
}

// Snapshot maps a folder name (the server's spelling) to its messages in UID
// order.
type Snapshot map[string][]MessageState

// MessageState is what Snapshot records of one message.
type MessageState struct {
	UID    uint32
	SHA256 string   // hex SHA-256 of BODY[] as served
	Size   int64    // bytes of BODY[] as served
	Flags  []string // sorted, without \Recent
	Date   time.Time
}

// Folders returns LIST "" "*" as the server answers it. It sends the plain
// command (no LIST-EXTENDED); Dovecot includes special-use attributes such as
// \Sent in that answer.
func (s *Server) Folders(t testing.TB, user string) []imap.ListData {
	t.Helper()
	var out []imap.ListData
	s.withClient(t, user, func(c *imapclient.Client) error {
		l, err := c.List("", "*", nil).Collect()
		if err != nil {
			return fmt.Errorf("LIST: %w", err)
		}
		for _, d := range l {
			out = append(out, *d)
		}
		return nil
	})
	return out
}

// Snapshot reads every selectable folder of user (read-only; bodies are
// streamed into the hash, never held in memory).
func (s *Server) Snapshot(t testing.TB, user string) Snapshot {
	t.Helper()
	snap := Snapshot{}
	s.withClient(t, user, func(c *imapclient.Client) error {
		l, err := c.List("", "*", nil).Collect()
		if err != nil {
			return fmt.Errorf("LIST: %w", err)
		}
		for _, d := range l {
			if hasAttr(d.Attrs, imap.MailboxAttrNoSelect) || hasAttr(d.Attrs, imap.MailboxAttrNonExistent) {
				continue
			}
			msgs, err := snapshotFolder(c, d.Mailbox)
			if err != nil {
				return fmt.Errorf("snapshot %q: %w", d.Mailbox, err)
			}
			snap[d.Mailbox] = msgs
		}
		return nil
	})
	return snap
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

func snapshotFolder(c *imapclient.Client, mailbox string) ([]MessageState, error) {
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, err
	}
	msgs := []MessageState{}
	if sel.NumMessages == 0 {
		// Never send an empty or out-of-range sequence set.
		return msgs, nil
	}
	// By sequence number, not UID: go-imap routes a UID FETCH response by
	// the UID item, and drops it if the UID comes after the literal.
	var all imap.SeqSet
	all.AddRange(1, sel.NumMessages)
	body := &imap.FetchItemBodySection{Peek: true}
	fetch := c.Fetch(all, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{body},
	})
	seen := map[uint32]bool{}
	for {
		msg := fetch.Next()
		if msg == nil {
			break
		}
		var st MessageState
		gotBody := false
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				st.UID = uint32(item.UID)
			case imapclient.FetchItemDataFlags:
				st.Flags = []string{}
				for _, f := range item.Flags {
					if !strings.EqualFold(string(f), flagRecent) {
						st.Flags = append(st.Flags, string(f))
					}
				}
				sort.Strings(st.Flags)
			case imapclient.FetchItemDataInternalDate:
				st.Date = item.Time
			case imapclient.FetchItemDataBodySection:
				if item.Literal == nil {
					fetch.Close()
					return nil, fmt.Errorf("message %d: BODY[] is NIL", msg.SeqNum)
				}
				h := sha256.New()
				n, err := io.Copy(h, item.Literal)
				if err != nil {
					fetch.Close()
					return nil, fmt.Errorf("message %d: reading BODY[]: %w", msg.SeqNum, err)
				}
				if n != item.Literal.Size() {
					fetch.Close()
					return nil, fmt.Errorf("message %d: BODY[] gave %d of %d bytes", msg.SeqNum, n, item.Literal.Size())
				}
				st.Size = n
				st.SHA256 = hex.EncodeToString(h.Sum(nil))
				gotBody = true
			}
		}
		if st.UID == 0 || !gotBody || st.Flags == nil || st.Date.IsZero() {
			fetch.Close()
			return nil, fmt.Errorf("message %d: incomplete FETCH response (uid %d, body %v, flags %v, date %v)",
				msg.SeqNum, st.UID, gotBody, st.Flags != nil, !st.Date.IsZero())
		}
		if seen[st.UID] {
			continue
		}
		seen[st.UID] = true
		msgs = append(msgs, st)
	}
	if err := fetch.Close(); err != nil {
		return nil, err
	}
	if len(msgs) != int(sel.NumMessages) {
		return nil, fmt.Errorf("FETCH 1:%d returned %d messages", sel.NumMessages, len(msgs))
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].UID < msgs[j].UID })
	return msgs, nil
}
