// Package servertest starts throwaway instances of the IMAP servers Debian
// ships beside Dovecot — Cyrus IMAP 3.6, Courier IMAP/POP3 and GNU mailutils
// imap4d — on 127.0.0.1, for tests that need each server's own dialect.
//
// It follows migrate/dovecottest: every instance has its own temporary
// directory (configuration written by the test, state, mail, log) and its own
// ports; the daemons run in the foreground as children of the test binary
// and are killed, with every process they forked, by t.Cleanup. A Server
// embeds a *dovecottest.Server holding only the address, users and
// separator, so dovecottest's IMAP-client helpers (Client, Seed, Snapshot,
// Folders) work on every server here.
//
// Installation: scripts/install-servers (run by scripts/test as root).
// Cyrus's and Courier's packages conflict with Dovecot's, so they are
// unpacked (dpkg-deb -x) into $MAILFERRY_SERVERS_DIR/root (default
// /var/cache/mailferry-servers/root) and run from there; mailutils-imap4d is
// installed normally (/usr/sbin/imap4d). When a server is not installed, or
// the test does not run as root, its tests skip and say why — also under
// CI=true, since these packages are optional. A server that is installed but
// does not start fails the test with its log tail.
//
// What each server does, as configured here (found with this harness):
//
//   - Cyrus 3.6 (StartCyrus): Debian's shipped imapd.conf sets
//     altnamespace: no and unixhierarchysep: no, so NAMESPACE is
//     (("INBOX." ".")): every folder is "INBOX.Name". munge8bit: yes (the
//     default) turns every 8-bit byte in a header into 'X' on APPEND. Users
//     log in through SASL's sasldb (written with saslpasswd2). The INBOX is
//     created at first login (autocreate_quota). Cyrus logs to syslog
//     only, so LogTail shows little.
//   - Cyrus with altnamespace: yes and unixhierarchysep: yes
//     (StartCyrusAlt): NAMESPACE (("" "/")), folders beside INBOX.
//   - Courier (StartCourier): Maildir++, NAMESPACE (("INBOX." ".")), no
//     LITERAL+, MULTIAPPEND or SPECIAL-USE. Courier's libraries have their
//     paths compiled in (/etc/courier, /run/courier/authdaemon/socket,
//     /usr/lib/courier-authlib), so the daemons (authdaemond with
//     authmodulelist="authuserdb", couriertcpd for IMAP and for POP3) run in
//     a private mount namespace (unshare -m) where the instance's own
//     directories are bind-mounted there. A message whose last line has no
//     CRLF is served with one added.
//   - GNU mailutils imap4d (StartMailutils): mbox files, separator '/',
//     NAMESPACE (("" "/")), no UIDPLUS, no MULTIAPPEND; users come from a
//     virtdomain passwd file, so a login name is user@domain
//     ("alice@example.test"). No POP3 listener. mailutils keeps its IMAP
//     state in headers it adds to every stored message and serves in BODY[]
//     (StripMailutilsHeaders): X-IMAPbase on a folder's first message,
//     X-UID on each, Status on each with a flag ("Status: O" on one
//     without a flag, once a session had the folder selected read-write:
//     no longer \Recent); a message without a final
//     CRLF gets one. A folder holding messages is an mbox file, so it
//     cannot get subfolders (CREATE "Work/Sub" then answers NO Cannot
//     create mailbox). PERMANENTFLAGS has no \*: keywords are refused.
package servertest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/internal/testproc"
)

// Kind names a server configuration.
type Kind string

const (
	Cyrus     Kind = "cyrus"     // Cyrus IMAP, Debian's default imapd.conf ("INBOX." and '.')
	CyrusAlt  Kind = "cyrus-alt" // Cyrus IMAP with altnamespace and unixhierarchysep
	Courier   Kind = "courier"   // Courier IMAP and POP3
	Mailutils Kind = "mailutils" // GNU mailutils imap4d
)

// Options configures an instance. The zero value gives the default users
// and no quota.
type Options struct {
	// Users maps login names to passwords; nil means the server's defaults
	// (DefaultUsers). Mailutils login names must be user@domain.
	Users map[string]string
	// QuotaKB, when positive, is each user's storage quota in KiB (Cyrus:
	// autocreate_quota; Courier: the userdb quota field). Not for mailutils.
	QuotaKB int64
}

// DefaultUsers returns the users an instance of kind gets when Options.Users
// is nil; DefaultUser is the first one's login name.
func DefaultUsers(kind Kind) map[string]string {
	if kind == Mailutils {
		return map[string]string{"alice@example.test": "alice-secret-pw", "bob@example.test": "bob-secret-pw"}
	}
	return map[string]string{"alice": "alice-secret-pw", "bob": "bob-secret-pw"}
}

// Server is a running instance. The embedded dovecottest.Server carries
// Host, IMAPPort, POP3Port (0 without POP3), Separator and Users, and gives
// Client, Seed, Snapshot, Folders, IMAPAddr and POP3Addr.
type Server struct {
	*dovecottest.Server
	Kind   Kind
	Dir    string // instance directory (removed on cleanup)
	Prefix string // the personal namespace's prefix: "INBOX." or ""
	User   string // the login name of the default user "alice"

	logPath   string
	readyFile string // with waitReady, also wait for this file (a socket)
	cmd       *exec.Cmd
	done      chan struct{}
	waitErr   error
	stopOnce  sync.Once
}

// LogTail returns the last n lines of the daemons' output.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// Name returns a folder's name as the server spells it: the personal prefix
// and the server's separator in place of '/' (Name("Archive/2024") is
// "INBOX.Archive.2024" on Cyrus).
func (s *Server) Name(folder string) string {
	if folder == "" || strings.EqualFold(folder, "INBOX") {
		return "INBOX"
	}
	return s.Prefix + strings.ReplaceAll(folder, "/", string(s.Separator))
}

// InstallDir is where scripts/install-servers unpacked Cyrus and Courier.
func InstallDir() string {
	if d := os.Getenv("MAILFERRY_SERVERS_DIR"); d != "" {
		return filepath.Join(d, "root")
	}
	return "/var/cache/mailferry-servers/root"
}

const dirPrefix = "mailferry-srv-"

func skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Skipf("servertest: skipping: "+format+" (install with scripts/install-servers as root)", args...)
}

// need skips the test unless kind can start here (Available).
func need(t testing.TB, kind Kind) {
	t.Helper()
	if err := Available(kind); err != nil {
		skipf(t, "%v", err)
	}
}

// newInstance makes the instance directory and the Server around it.
func newInstance(t testing.TB, kind Kind, opts Options, sep rune, prefix string, nports int) (*Server, []int) {
	t.Helper()
	reapStale()
	users := opts.Users
	if users == nil {
		users = DefaultUsers(kind)
	}
	users = maps.Clone(users)
	names := make([]string, 0, len(users))
	for u, p := range users {
		if u == "" || strings.ContainsAny(u, ":/\n\r\t %|\"\\\x00") || strings.ContainsAny(p, ":|\n\r\x00") {
			t.Fatalf("servertest: user %q or its password cannot go into a passwd file", u)
		}
		if kind == Mailutils && !strings.Contains(u, "@") {
			t.Fatalf("servertest: mailutils login %q must be user@domain", u)
		}
		names = append(names, u)
	}
	sort.Strings(names)
	dir, err := os.MkdirTemp(testproc.TempParent(), dirPrefix+string(kind)+"-")
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // the daemons' users must reach their mail
		t.Fatalf("servertest: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatalf("servertest: %v", err)
	}
	ports, err := testproc.FreePorts(nports)
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	alice := names[0]
	for _, n := range names {
		if strings.HasPrefix(n, "alice") {
			alice = n
			break
		}
	}
	s := &Server{
		Server: &dovecottest.Server{Dir: dir, Host: "127.0.0.1", IMAPPort: ports[0], Separator: sep, Users: users},
		Kind:   kind, Dir: dir, Prefix: prefix, User: alice,
		logPath: filepath.Join(dir, "log"),
	}
	if nports > 1 {
		s.POP3Port = ports[1]
	}
	return s, ports
}

// run starts cmd with its output in the log, waits for the greetings and
// registers Stop. A daemon that does not come up fails the test.
func (s *Server) run(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(s.Dir)
		t.Fatalf("servertest: start %s: %v", s.Kind, err)
	}
	logf.Close()
	// For reapStale, should this test binary die without its cleanups.
	os.WriteFile(filepath.Join(s.Dir, "daemon.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(s.Stop)
	if err := s.waitReady(20 * time.Second); err != nil {
		tail := s.LogTail(30)
		t.Fatalf("servertest: %s did not start: %v\nlog tail:\n%s", s.Kind, err, tail)
	}
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	probes := []struct {
		port   int
		prefix string
	}{{s.IMAPPort, "* OK"}}
	if s.POP3Port != 0 {
		probes = append(probes, struct {
			port   int
			prefix string
		}{s.POP3Port, "+OK"})
	}
	for s.readyFile != "" {
		if _, err := os.Stat(s.readyFile); err == nil {
			break
		}
		select {
		case <-s.done:
			return fmt.Errorf("exited: %v", s.waitErr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s within %v", s.readyFile, timeout)
		}
		time.Sleep(30 * time.Millisecond)
	}
	for _, p := range probes {
		for !testproc.Greets(net.JoinHostPort(s.Host, strconv.Itoa(p.port)), p.prefix) {
			select {
			case <-s.done:
				return fmt.Errorf("exited: %v", s.waitErr)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no greeting on port %d within %v", p.port, timeout)
			}
			time.Sleep(30 * time.Millisecond)
		}
	}
	return nil
}

// Stop kills the daemons and every process they forked, then removes the
// instance directory. Called by t.Cleanup; calling it earlier is fine.
func (s *Server) Stop() { s.stopOnce.Do(s.stop) }

func (s *Server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.done:
			killTree(s.cmd.Process.Pid, false)
		default:
			killTree(s.cmd.Process.Pid, true)
			<-s.done
		}
	}
	if os.Getenv("MAILFERRY_SERVERTEST_KEEP") != "" {
		fmt.Fprintf(os.Stderr, "servertest: kept %s\n", s.Dir)
		return
	}
	os.RemoveAll(s.Dir)
}

// killTree freezes root (when alive) and all its descendants, then kills
// them all. Daemons here fork and some (couriertcpd) make their own process
// groups, so a process-group kill would miss them.
func killTree(root int, alive bool) {
	var pids []int
	if alive {
		testproc.Freeze(root)
		pids = append(pids, root)
	}
	seen := map[int]bool{root: true}
	for frontier := []int{root}; len(frontier) > 0; {
		kids := testproc.Children(frontier...)
		frontier = nil
		for _, k := range kids {
			if !seen[k] {
				seen[k] = true
				testproc.Freeze(k)
				pids = append(pids, k)
				frontier = append(frontier, k)
			}
		}
	}
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range pids {
		for testproc.Alive(p) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

var reapOnce sync.Once

// reapStale kills the daemons of instances whose test binary died without
// running its cleanups (e.g. killed by go test -timeout), and removes their
// directories. Only a process whose command line names the directory is
// killed, with the processes it forked.
func reapStale() {
	reapOnce.Do(func() {
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
			if b, err := os.ReadFile(filepath.Join(d, "daemon.pid")); err == nil {
				pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				if err == nil && testproc.Alive(pid) && bytes.Contains(cmdline, []byte(d)) {
					killTree(pid, true)
				}
			}
			os.RemoveAll(d)
		}
	})
}

// mailUser returns the uid and gid of dovecottest.MailUser, which owns the
// Courier and mailutils mail (dovecottest.Start creates it; so does this).
func mailUser(t testing.TB) (int, int) {
	t.Helper()
	u, err := user.Lookup(dovecottest.MailUser)
	if err != nil {
		out, uerr := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", "--user-group", dovecottest.MailUser).CombinedOutput()
		if u, err = user.Lookup(dovecottest.MailUser); err != nil {
			t.Fatalf("servertest: cannot create user %s: %v: %s", dovecottest.MailUser, uerr, bytes.TrimSpace(out))
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// cryptSHA512 hashes pw for a passwd-style file ($6$, what crypt(3) checks).
func cryptSHA512(t testing.TB, pw string) string {
	t.Helper()
	salt := make([]byte, 8)
	rand.Read(salt)
	cmd := exec.Command("openssl", "passwd", "-6", "-salt", hex.EncodeToString(salt), "-stdin")
	cmd.Stdin = strings.NewReader(pw + "\n")
	out, err := cmd.Output()
	if err != nil {
		skipf(t, "openssl passwd failed: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func chownAll(t testing.TB, dir string, uid, gid int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
}

// Bodies returns BODY[] of every message in folder (the server's spelling),
// in UID order, as the server serves them.
func (s *Server) Bodies(t testing.TB, login, folder string) [][]byte {
	t.Helper()
	c := s.Client(t, login)
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("servertest: select %q: %v", folder, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	var all imap.SeqSet
	all.AddRange(1, sel.NumMessages)
	body := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil {
		t.Fatalf("servertest: fetch %q: %v", folder, err)
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].UID < msgs[j].UID })
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.FindBodySection(body)
	}
	return out
}

// MailutilsHeaders are the headers GNU mailutils keeps its IMAP state in
// (mbox): it adds them to every stored message and serves them in BODY[]:
// X-IMAPbase (the first message of a folder only), X-UID and Status.
var MailutilsHeaders = []string{"X-IMAPbase", "X-UID", "Status"}

// StripMailutilsHeaders removes from msg's header the lines mailutils adds
// (MailutilsHeaders, at the end of the header, in that order) and returns
// the message without them and the names of those it found.
func StripMailutilsHeaders(msg []byte) ([]byte, []string) {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		return msg, nil
	}
	lines := strings.SplitAfter(string(msg[:end+2]), "\r\n")
	var kept []string
	var found []string
	for _, l := range lines {
		name, _, ok := strings.Cut(l, ":")
		isOurs := false
		for _, h := range MailutilsHeaders {
			if ok && strings.EqualFold(name, h) {
				isOurs = true
				found = append(found, h)
			}
		}
		if !isOurs {
			kept = append(kept, l)
		}
	}
	return append([]byte(strings.Join(kept, "")), msg[end+2:]...), found
}
