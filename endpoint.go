package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/term"

	"github.com/mailferry/mailferry/archive"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/mailconn"
	"github.com/mailferry/mailferry/migrate/pop3"
)

// endpoint is a parsed SOURCE or DEST argument.
type endpoint struct {
	raw    string // as the user typed it (never holds a password: see parseEndpoint)
	scheme string // imap, imaps, pop3, pop3s, maildir, mbox
	server mailconn.ServerConfig
	path   string // maildir: and mbox:
	local  *archive.Stores
}

// String names the endpoint without secrets.
func (e *endpoint) String() string {
	if e.path != "" {
		return e.scheme + ":" + e.path
	}
	return e.scheme + "://" + e.server.String()
}

func (e *endpoint) isServer() bool { return e.path == "" }

// isSingleMbox says whether e is one mbox file (mbox:FILE.mbox that is not a
// directory), which holds INBOX alone.
func (e *endpoint) isSingleMbox() bool {
	if e.scheme != "mbox" || !strings.HasSuffix(e.path, ".mbox") {
		return false
	}
	st, err := os.Stat(e.path)
	return err != nil || !st.IsDir()
}

var defaultPorts = map[string]string{"imap": "143", "imaps": "993", "pop3": "110", "pop3s": "995"}

// parseEndpoint reads imap://user@host:port, imaps://, pop3://, pop3s://,
// maildir:PATH and mbox:PATH. A password in the URL is refused: it would
// show in the process list.
func parseEndpoint(s string) (*endpoint, error) {
	for _, local := range []string{"maildir", "mbox"} {
		if rest, ok := strings.CutPrefix(s, local+":"); ok && !strings.HasPrefix(rest, "//") {
			if rest == "" {
				return nil, &usageError{fmt.Errorf("%s: no path given", s)}
			}
			return &endpoint{raw: s, scheme: local, path: expandHome(rest)}, nil
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, &usageError{fmt.Errorf("%q is not an endpoint (imap://user@host, imaps://, pop3://, pop3s://, maildir:PATH, mbox:PATH)", redactURL(s))}
	}
	port, ok := defaultPorts[u.Scheme]
	if !ok {
		return nil, &usageError{fmt.Errorf("unknown scheme %q (imap, imaps, pop3, pop3s, maildir, mbox)", u.Scheme)}
	}
	if _, has := u.User.Password(); has {
		return nil, &usageError{fmt.Errorf("%s: a password in the URL would show in the process list; use --src-password-file, --src-password-cmd or MAILFERRY_SRC_PASSWORD", redactURL(s))}
	}
	if u.User.Username() == "" {
		return nil, &usageError{fmt.Errorf("%s: no user name (imap://user@host)", s)}
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, &usageError{fmt.Errorf("%s: a folder or anything else after the host is not part of an endpoint; select folders with --include (--include %q)", s, strings.Trim(u.Path, "/"))}
	}
	host := u.Hostname()
	if u.Port() != "" {
		port = u.Port()
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, &usageError{fmt.Errorf("%s: port %s is not a port number (1 to 65535)", s, port)}
		}
	}
	mode := mailconn.TLSStartTLS
	if strings.HasSuffix(u.Scheme, "s") {
		mode = mailconn.TLSImplicit
	}
	return &endpoint{raw: s, scheme: u.Scheme, server: mailconn.ServerConfig{
		Addr: net.JoinHostPort(host, port), User: u.User.Username(), TLS: mode,
	}}, nil
}

// archiveDir reads archive's DIR argument: a plain path, or maildir:PATH or
// mbox:PATH (which say the format, and must agree with --format when it is
// given). Anything else that looks like an endpoint (imap://…) is refused,
// never made into a directory of that name.
func archiveDir(arg, format string, formatGiven bool) (*endpoint, error) {
	if strings.Contains(arg, "://") {
		return nil, &usageError{fmt.Errorf("%s: archive writes into a local directory, not a server (to copy into a server: mailferry migrate SOURCE %s)", redactURL(arg), redactURL(arg))}
	}
	path := arg
	for _, local := range []string{"maildir", "mbox"} {
		if rest, ok := strings.CutPrefix(arg, local+":"); ok {
			if formatGiven && format != local {
				return nil, &usageError{fmt.Errorf("%s: says %s, but --format says %s", arg, local, format)}
			}
			if rest == "" {
				return nil, &usageError{fmt.Errorf("%s: no path given", arg)}
			}
			if local == "mbox" && strings.HasSuffix(rest, ".mbox") {
				return nil, &usageError{fmt.Errorf("%s: archive writes a directory of mbox files; give a directory (mbox:DIR or DIR --format mbox)", arg)}
			}
			format, path = local, rest
		}
	}
	return &endpoint{raw: arg, scheme: format, path: expandHome(path)}, nil
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return s
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return home + "/" + rest
		}
	}
	return p
}

// secretFlags are one side's ways to give a password.
type secretFlags struct {
	side     string // "src" or "dst"
	file     string
	cmd      string
	tokenCmd string // OAuth2 access token command
	tlsMode  string
	resolved string
	rowGiven bool // a batch row gave the file: the environment is its documented fallback, no note
}

// password finds the password: file, command, environment, terminal prompt.
// A file and a command both given is a usage error; a flag wins over the
// environment variable, and a note says so. Errors never include the secret.
func (s *secretFlags) password(env *environment, who string) (string, error) {
	envName := "MAILFERRY_" + strings.ToUpper(s.side) + "_PASSWORD"
	if s.file != "" && s.cmd != "" {
		return "", &usageError{fmt.Errorf("--%s-password-file and --%s-password-cmd: give one of them", s.side, s.side)}
	}
	switch {
	case s.file != "":
		b, err := os.ReadFile(s.file)
		if err != nil {
			return "", fmt.Errorf("--%s-password-file: %w", s.side, err)
		}
		if firstLine(string(b)) == "" {
			return "", &usageError{fmt.Errorf("--%s-password-file %s: no password on its first line", s.side, s.file)}
		}
		if st, err := os.Stat(s.file); err == nil && st.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(env.stderr, "mailferry: warning: --%s-password-file %s can be read by others (mode %04o): chmod 600 %s\n",
				s.side, s.file, st.Mode().Perm(), s.file)
		}
		s.noteEnvIgnored(env, "file", envName)
		return firstLine(string(b)), nil
	case s.cmd != "":
		out, err := exec.Command("sh", "-c", s.cmd).Output()
		if err != nil {
			// The command's own last words say why (gpg: decryption
			// failed); its standard output, the password, is never shown.
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if why := lastLine(string(ee.Stderr)); why != "" {
					return "", fmt.Errorf("--%s-password-cmd failed (%v): %s", s.side, err, why)
				}
			}
			return "", fmt.Errorf("--%s-password-cmd failed: %v", s.side, err)
		}
		if firstLine(string(out)) == "" {
			return "", fmt.Errorf("--%s-password-cmd printed no password on its first line", s.side)
		}
		s.noteEnvIgnored(env, "cmd", envName)
		return firstLine(string(out)), nil
	}
	if v := env.getenv(envName); v != "" {
		return v, nil
	}
	f, ok := env.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", &usageError{fmt.Errorf("no password for %s: give --%s-password-file, --%s-password-cmd or %s", who, s.side, s.side, envName)}
	}
	fmt.Fprintf(env.stderr, "Password for %s: ", who)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(env.stderr)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// noteEnvIgnored says that the password of --SIDE-password-WHAT is used
// while the environment variable is set too (not for a batch row's file:
// there the variable is the documented fallback of other rows).
func (s *secretFlags) noteEnvIgnored(env *environment, what, envName string) {
	if env.getenv(envName) != "" && !s.rowGiven {
		fmt.Fprintf(env.stderr, "mailferry: note: --%s-password-%s is used; %s is set too and ignored\n", s.side, what, envName)
	}
}

// tokenCommand returns the token source of --SIDE-oauth2-token-cmd: every
// call runs `sh -c CMD` and takes the first line of its standard output
// (its standard error is not shown: it may hold secrets). Runs are one at a
// time, so that a helper that refreshes tokens never races itself. Errors
// name the flag and the exit status, never the output.
func tokenCommand(side, cmdline string) mailconn.TokenFunc {
	var mu sync.Mutex
	flag := "--" + side + "-oauth2-token-cmd"
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		out, err := exec.CommandContext(ctx, "sh", "-c", cmdline).Output()
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", fmt.Errorf("%s failed: %v", flag, err)
		}
		tok := strings.TrimSpace(firstLine(string(out)))
		if tok == "" {
			return "", fmt.Errorf("%s printed no token", flag)
		}
		return tok, nil
	}
}

// lastLine is the last line of s that is not blank, trimmed.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, " \t\r\n"), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSuffix(line, "\r")
}

// tlsFlags are shared by both sides.
type tlsFlags struct {
	caFile       string
	insecureSkip bool
	warned       bool // the --insecure-skip-verify warning is said once a run
}

func (t *tlsFlags) config(env *environment) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.caFile != "" {
		pem, err := os.ReadFile(t.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &usageError{fmt.Errorf("--ca-file %s: no PEM certificate in it", t.caFile)}
		}
		cfg.RootCAs = pool
	}
	if t.insecureSkip && !t.warned {
		t.warned = true
		fmt.Fprintln(env.stderr, "mailferry: WARNING: --insecure-skip-verify: server certificates are NOT checked; anyone on the network path can read and change this session")
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}

// resolveServer applies the TLS mode and finds the password for one side,
// or with --src-oauth2-token-cmd / --dst-oauth2-token-cmd sets the token
// command up instead (then no password is asked for).
func resolveServer(env *environment, ep *endpoint, sf *secretFlags, tf *tlsFlags) error {
	if !ep.isServer() {
		if sf.tokenCmd != "" {
			return &usageError{fmt.Errorf("--%s-oauth2-token-cmd: %s is not a server", sf.side, ep)}
		}
		return nil
	}
	if sf.tlsMode != "" {
		switch m := mailconn.TLSMode(sf.tlsMode); m {
		case mailconn.TLSImplicit, mailconn.TLSStartTLS, mailconn.TLSNone:
			ep.server.TLS = m
		default:
			return &usageError{fmt.Errorf("--%s-tls must be tls, starttls or none, not %q", sf.side, sf.tlsMode)}
		}
	}
	cfg, err := tf.config(env)
	if err != nil {
		return err
	}
	ep.server.TLSConfig = cfg
	if sf.tokenCmd != "" {
		if sf.file != "" || sf.cmd != "" {
			return &usageError{fmt.Errorf("--%s-oauth2-token-cmd logs in with a token: give no --%s-password-file or --%s-password-cmd with it", sf.side, sf.side, sf.side)}
		}
		ep.server.Token = tokenCommand(sf.side, sf.tokenCmd)
		return nil
	}
	pw, err := sf.password(env, ep.String())
	if err != nil {
		return err
	}
	ep.server.Password = pw
	return nil
}

// openSource and openSink build the engine's endpoints; each call opens one
// more connection or store, for one engine worker.
func openSource(ep *endpoint) func(context.Context) (migrate.Source, error) {
	return func(ctx context.Context) (migrate.Source, error) {
		switch ep.scheme {
		case "imap", "imaps":
			return imap.DialIMAP(ctx, ep.server)
		case "pop3", "pop3s":
			return pop3.DialPOP3(ctx, ep.server)
		}
		return ep.stores(false).Open(ctx)
	}
}

func openSink(ep *endpoint, dryRun bool) func(context.Context) (migrate.Sink, error) {
	return func(ctx context.Context) (migrate.Sink, error) {
		switch ep.scheme {
		case "imap", "imaps":
			return imap.DialIMAP(ctx, ep.server)
		case "pop3", "pop3s":
			return nil, &usageError{fmt.Errorf("%s cannot be a destination (imap, imaps, maildir and mbox can)", ep)}
		}
		if _, err := os.Stat(ep.path); dryRun && errors.Is(err, fs.ErrNotExist) {
			return migrate.AbsentSink{}, nil // a dry run creates nothing
		}
		return ep.stores(true).Open(ctx)
	}
}

// stores returns the endpoint's local store opener, made once.
func (e *endpoint) stores(create bool) *archive.Stores {
	if e.local == nil {
		e.local = &archive.Stores{Format: e.scheme, Path: e.path, Create: create}
	}
	return e.local
}

// sameMailbox checks, before anything is opened, that src and dst are two
// mailboxes. Two local stores are one when they are the same directory or
// file (through any spelling or symbolic link) or one lies inside the
// other. Two servers are one when they name the same user (case aside) on
// the same host and port; the same user on the same host through another
// port (STARTTLS and implicit TLS, say) may still be one account, so maybe
// is set and the engine probes it once connected.
func sameMailbox(src, dst *endpoint) (maybe bool, err error) {
	same := func(what string) error {
		return &usageError{fmt.Errorf("%s and %s are the same mailbox%s: refusing to copy it onto itself", src, dst, what)}
	}
	if !src.isServer() && !dst.isServer() {
		a, b := realPath(src.path), realPath(dst.path)
		switch {
		case a == b:
			return false, same("")
		case strings.HasPrefix(b, a+string(filepath.Separator)):
			return false, same(" (" + dst.path + " is inside " + src.path + ")")
		case strings.HasPrefix(a, b+string(filepath.Separator)):
			return false, same(" (" + src.path + " is inside " + dst.path + ")")
		}
		return false, nil
	}
	if !src.isServer() || !dst.isServer() || !strings.EqualFold(src.server.User, dst.server.User) {
		return false, nil
	}
	sh, sp, _ := net.SplitHostPort(src.server.Addr)
	dh, dp, _ := net.SplitHostPort(dst.server.Addr)
	if !sameHost(sh, dh) {
		return false, nil
	}
	if sp == dp {
		return false, same("")
	}
	return true, nil
}

// sameHost says whether two host names are one machine: equal names, or
// names whose addresses meet.
func sameHost(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	addrs := func(h string) []string {
		if ip := net.ParseIP(h); ip != nil {
			return []string{ip.String()}
		}
		l, err := net.LookupHost(h)
		if err != nil {
			return nil
		}
		for i, s := range l {
			if ip := net.ParseIP(s); ip != nil {
				l[i] = ip.String()
			}
		}
		return l
	}
	as := addrs(a)
	for _, x := range addrs(b) {
		for _, y := range as {
			if x == y {
				return true
			}
		}
	}
	return false
}

// realPath is path made absolute with every symbolic link of its longest
// existing prefix resolved.
func realPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	rest := ""
	for dir := abs; ; dir = filepath.Dir(dir) {
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(r, rest)
		}
		if dir == filepath.Dir(dir) {
			return abs
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// The archive stores are the engine's Source and Sink as they are.
var (
	_ migrate.Source  = archive.Store(nil)
	_ migrate.Sink    = archive.Store(nil)
	_ migrate.Flusher = archive.Store(nil)
)
