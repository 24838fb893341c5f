package servertest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartCyrus starts Cyrus IMAP 3.6 with Debian's default namespace
// (altnamespace: no, unixhierarchysep: no: "INBOX." and '.'), IMAP and
// POP3.
func StartCyrus(t testing.TB, opts Options) *Server { return startCyrus(t, opts, false) }

// StartCyrusAlt starts Cyrus IMAP 3.6 with altnamespace: yes and
// unixhierarchysep: yes (folders beside INBOX, '/'), IMAP and POP3.
func StartCyrusAlt(t testing.TB, opts Options) *Server { return startCyrus(t, opts, true) }

func startCyrus(t testing.TB, opts Options, alt bool) *Server {
	t.Helper()
	root := InstallDir()
	bin := filepath.Join(root, "usr/lib/cyrus/bin")
	need(t, Cyrus)
	saslpasswd, err := exec.LookPath("saslpasswd2")
	if err != nil {
		saslpasswd = "/usr/sbin/saslpasswd2"
		if _, err := os.Stat(saslpasswd); err != nil {
			skipf(t, "Cyrus needs saslpasswd2 (sasl2-bin)")
		}
	}
	cy, err := user.Lookup("cyrus")
	if err != nil {
		skipf(t, "Cyrus needs the system user cyrus")
	}
	uid, _ := strconv.Atoi(cy.Uid)
	gid, _ := strconv.Atoi(cy.Gid)

	kind, sep, prefix := Cyrus, '.', "INBOX."
	if alt {
		kind, sep, prefix = CyrusAlt, '/', ""
	}
	s, ports := newInstance(t, kind, opts, sep, prefix, 2)
	d := s.Dir
	// conf's subdirectories are what Cyrus's mkimap makes. Without conf/db
	// the START entry's ctl_cyrusdb -r could not write its recovery stamp
	// ("DBERROR: backend init failed"), and every process after it logged
	// "read failed, assuming the worst".
	for _, sub := range []string{"conf", "conf/db", "conf/socket", "conf/proc", "conf/lock", "conf/log", "conf/msg", "conf/quota", "conf/user", "conf/ptclient", "spool", "run"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o750); err != nil {
			t.Fatalf("servertest: %v", err)
		}
	}
	yesno := map[bool]string{true: "yes", false: "no"}
	conf := fmt.Sprintf(`configdirectory: %[1]s/conf
partition-default: %[1]s/spool
servername: localhost
altnamespace: %[2]s
unixhierarchysep: %[2]s
munge8bit: yes
mailbox_legacy_dirs: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: %[1]s/sasldb2
sasl_mech_list: PLAIN LOGIN
allowplaintext: yes
autocreate_quota: %[3]d
idlesocket: %[1]s/run/idle
notifysocket: %[1]s/run/notify
lmtpsocket: %[1]s/run/lmtp
syslog_prefix: mailferry-cyrus
`, d, yesno[alt], max(opts.QuotaKB, 0))
	imapdConf := filepath.Join(d, "imapd.conf")
	cyrusConf := fmt.Sprintf(`START {
  recover cmd="%[1]s/ctl_cyrusdb -C %[2]s -r"
}
SERVICES {
  imap cmd="%[1]s/imapd -C %[2]s" listen="127.0.0.1:%[3]d" prefork=0
  pop3 cmd="%[1]s/pop3d -C %[2]s" listen="127.0.0.1:%[4]d" prefork=0
}
EVENTS {
}
DAEMON {
}
`, bin, imapdConf, ports[0], ports[1])
	write(t, imapdConf, conf, 0o644)
	write(t, filepath.Join(d, "cyrus.conf"), cyrusConf, 0o644)
	names := sortedKeys(s.Users)
	for _, u := range names {
		cmd := exec.Command(saslpasswd, "-p", "-c", "-f", filepath.Join(d, "sasldb2"), "-u", "localhost", u)
		cmd.Stdin = strings.NewReader(s.Users[u])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("servertest: saslpasswd2 %s: %v: %s", u, err, out)
		}
	}
	chownAll(t, d, uid, gid)
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "master"), "-C", imapdConf, "-M", filepath.Join(d, "cyrus.conf"),
		"-p", filepath.Join(d, "run", "master.pid"))
	cmd.Dir = d
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(root, "usr/lib/x86_64-linux-gnu"))
	s.run(t, cmd)
	// Cyrus creates a user's INBOX at the first login. Several sessions
	// logging in at once for the first time, as a run's workers do, can
	// race it: an APPEND to INBOX was answered "NO System I/O error" under
	// load. A real account has its INBOX already, so log each user in once.
	for _, login := range sortedKeys(s.Users) {
		s.Client(t, login)
	}
	return s
}

// StartCourier starts Courier IMAP and POP3 with authdaemond
// (authmodulelist="authuserdb") and a userdb, Maildir++ mail.
func StartCourier(t testing.TB, opts Options) *Server {
	t.Helper()
	root := InstallDir()
	need(t, Courier)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		skipf(t, "Courier needs unshare (util-linux) for its private mount namespace")
	}
	if _, err := exec.LookPath("perl"); err != nil {
		skipf(t, "Courier's makeuserdb needs perl")
	}
	uid, gid := mailUser(t)
	s, ports := newInstance(t, Courier, opts, '.', "INBOX.", 2)
	d := s.Dir
	for _, sub := range []string{"etc", "run/authdaemon", "mail"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			t.Fatalf("servertest: %v", err)
		}
	}
	write(t, filepath.Join(d, "etc/authdaemonrc"), `authmodulelist="authuserdb"
daemons=3
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=0
DEFAULTOPTIONS=""
LOGGEROPTS=""
`, 0o644)
	var userdb strings.Builder
	for _, u := range sortedKeys(s.Users) {
		home := filepath.Join(d, "mail", u)
		md := filepath.Join(home, "Maildir")
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
				t.Fatalf("servertest: %v", err)
			}
		}
		quota := ""
		if opts.QuotaKB > 0 {
			// Maildir++ quota: the userdb field and the maildirsize file
			// (what maildirmake -q writes).
			quota = fmt.Sprintf("|quota=%dS", opts.QuotaKB*1024)
			write(t, filepath.Join(md, "maildirsize"), fmt.Sprintf("%dS\n", opts.QuotaKB*1024), 0o600)
		}
		fmt.Fprintf(&userdb, "%s\tuid=%d|gid=%d|home=%s|mail=%s%s|systempw=%s\n", u, uid, gid, home, md, quota, cryptSHA512(t, s.Users[u]))
	}
	write(t, filepath.Join(d, "etc/userdb"), userdb.String(), 0o600)
	chownAll(t, filepath.Join(d, "mail"), uid, gid)
	lib := filepath.Join(root, "usr/lib")
	script := fmt.Sprintf(`set -e
mount --bind %[1]s/etc /etc/courier
mount --bind %[1]s/run /run/courier
mount --bind %[2]s/usr/lib/courier-authlib /usr/lib/courier-authlib
mount --bind %[2]s/usr/lib/courier /usr/lib/courier
export LD_LIBRARY_PATH=%[3]s
perl %[2]s/usr/sbin/makeuserdb -f /etc/courier/userdb
/usr/lib/courier/courier-authlib/authdaemond &
export IMAP_CAPABILITY="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
export IMAP_KEYWORDS=1 IMAP_ACL=1 IMAP_MAILBOX_SANITY_CHECK=0 IMAP_USELOCKS=1 IMAP_TRASHFOLDERNAME=Trash IMAP_EMPTYTRASH=
export IMAP_UMASK=022 IMAP_SHAREDINDEXFILE=/etc/courier/shared/index IMAP_ENHANCEDIDLE=0 IMAP_IDLE_TIMEOUT=60
export TCPDOPTS= MAILDIRPATH=Maildir
%[2]s/usr/sbin/couriertcpd -address=127.0.0.1 -nodnslookup -noidentlookup -maxprocs=40 -maxperip=40 %[4]d \
  /usr/lib/courier/courier/imaplogin %[2]s/usr/bin/imapd Maildir &
%[2]s/usr/sbin/couriertcpd -address=127.0.0.1 -nodnslookup -noidentlookup -maxprocs=40 -maxperip=40 %[5]d \
  /usr/lib/courier/courier/courierpop3login /usr/lib/courier/courier/courierpop3d Maildir &
wait # (the shell stays, its command line naming the instance: see reapStale)
`, d, root, lib, ports[0], ports[1])
	write(t, filepath.Join(d, "start.sh"), script, 0o755)
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "/bin/sh", filepath.Join(d, "start.sh"))
	cmd.Dir = d
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
	s.readyFile = filepath.Join(d, "run/authdaemon/socket")
	s.run(t, cmd)
	return s
}

// StartMailutils starts GNU mailutils imap4d with mbox storage and users
// from a virtdomain passwd file.
func StartMailutils(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := "/usr/sbin/imap4d"
	need(t, Mailutils)
	if opts.QuotaKB > 0 {
		t.Fatalf("servertest: mailutils has no quota here")
	}
	uid, gid := mailUser(t)
	s, ports := newInstance(t, Mailutils, opts, '/', "", 1)
	d := s.Dir
	pwDir := filepath.Join(d, "passwd")
	if err := os.MkdirAll(pwDir, 0o755); err != nil {
		t.Fatalf("servertest: %v", err)
	}
	byDomain := map[string][]string{}
	for _, login := range sortedKeys(s.Users) {
		name, domain, _ := strings.Cut(login, "@")
		home := filepath.Join(d, "mail", domain, name)
		if err := os.MkdirAll(home, 0o755); err != nil {
			t.Fatalf("servertest: %v", err)
		}
		// The INBOX a mail spool would have (APPEND to a missing INBOX is TRYCREATE).
		write(t, filepath.Join(home, "INBOX"), "", 0o600)
		byDomain[domain] = append(byDomain[domain],
			fmt.Sprintf("%s:%s:%d:%d::%s:/bin/false\n", name, cryptSHA512(t, s.Users[login]), uid, gid, home))
	}
	for domain, lines := range byDomain {
		write(t, filepath.Join(pwDir, domain), strings.Join(lines, ""), 0o644)
	}
	chownAll(t, filepath.Join(d, "mail"), uid, gid)
	conf := fmt.Sprintf(`logging { syslog false; };
auth { authentication generic; authorization virtdomain; };
virtdomain { passwd-dir %q; };
namespace personal { prefix "" { directory "${home}"; }; };
mailbox { mailbox-pattern "mbox://${home}/INBOX"; };
locking { type kernel; };
server 127.0.0.1:%d { };
`, pwDir, ports[0])
	confPath := filepath.Join(d, "imap4d.conf")
	write(t, confPath, conf, 0o644)
	cmd := exec.Command(bin, "--config-file="+confPath, "--no-site-config", "--foreground", "--daemon")
	cmd.Dir = d
	s.run(t, cmd)
	// Kernel locks, not the default dotlock: a dotlock is taken by
	// writing a file "INBOX.<pid>.<time>.<host>" beside the mbox and
	// linking it to INBOX.lock, and LIST shows that file as a folder while
	// it exists. TestCompatibilityMatrix reads one source user from several
	// legs at once, and twice a leg listed another leg's lock file
	// ("INBOX.20660.1796527564.vm" on a host named vm): copied as a folder,
	// or gone by its EXAMINE. A mailutils server with dotlocks and clients
	// side by side shows the same to any client; mailferry copies what
	// LIST shows.
	// imap4d writes a session's flags and expunges into the mbox when the
	// session ends, also when its client has hung up without waiting for
	// LOGOUT's answer (as mailferry does); during that write LIST shows the
	// temporary file ("muXXXXXX") as a folder. Helpers wait for it.
	port := ports[0]
	s.Server.Settle = func() error { return waitHungUp(port, 30*time.Second) }
	return s
}

// waitHungUp waits until no local TCP socket on port is in CLOSE_WAIT:
// every session whose client has gone has been finished by the server.
func waitHungUp(port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := closeWaits(port)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("servertest: %d sessions on port %d still unfinished %v after their clients hung up", n, port, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closeWaits counts the IPv4 sockets with local port port in CLOSE_WAIT
// (state 08 in /proc/net/tcp).
func closeWaits(port int) (int, error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, fmt.Errorf("servertest: %w", err)
	}
	suffix := fmt.Sprintf(":%04X", port)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], suffix) && f[3] == "08" {
			n++
		}
	}
	return n, nil
}

// Start starts a server of kind.
func Start(t testing.TB, kind Kind, opts Options) *Server {
	t.Helper()
	switch kind {
	case Cyrus:
		return StartCyrus(t, opts)
	case CyrusAlt:
		return StartCyrusAlt(t, opts)
	case Courier:
		return StartCourier(t, opts)
	case Mailutils:
		return StartMailutils(t, opts)
	}
	t.Fatalf("servertest: unknown server %q", kind)
	return nil
}

// Kinds lists every server this package starts.
func Kinds() []Kind { return []Kind{Cyrus, CyrusAlt, Courier, Mailutils} }

func write(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatalf("servertest: %v", err)
	}
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
