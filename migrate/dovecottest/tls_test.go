package dovecottest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// readCA parses the single PEM certificate in path.
func readCA(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("%s: want exactly one PEM CERTIFICATE", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// poolFromFile is what a client given --ca-file FILE trusts (and nothing else).
func poolFromFile(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(readCA(t, path))
	return pool
}

func imapOpts(cfg *tls.Config) *imapclient.Options {
	return &imapclient.Options{TLSConfig: cfg, Dialer: &net.Dialer{Timeout: 5 * time.Second}}
}

// loginAndList logs alice in on c and checks that she sees her INBOX.
func loginAndList(t *testing.T, s *Server, c *imapclient.Client) {
	t.Helper()
	defer c.Close()
	if err := c.Login("alice", s.Users["alice"]).Wait(); err != nil {
		t.Fatalf("login: %v\nlog tail:\n%s", err, s.LogTail(10))
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	if sel.NumMessages != 1 {
		t.Errorf("INBOX holds %d messages, want the 1 seeded", sel.NumMessages)
	}
	c.Logout().Wait()
}

// TestTLSInstance checks the fields, files and certificate of a TLS
// instance, then logs in over imaps with a client that trusts only CAFile,
// with STARTTLS on the plaintext port, and in plaintext on it (ssl = yes,
// not required), and reads the pop3s greeting and an STLS upgrade.
func TestTLSInstance(t *testing.T) {
	s := Start(t, Options{TLS: true})
	if s.IMAPSPort == 0 || s.POP3SPort == 0 || s.CAFile == "" {
		t.Fatalf("TLS fields not set: IMAPSPort %d POP3SPort %d CAFile %q", s.IMAPSPort, s.POP3SPort, s.CAFile)
	}
	ports := map[int]bool{}
	for _, p := range []int{s.IMAPPort, s.POP3Port, s.IMAPSPort, s.POP3SPort} {
		ports[p] = true
	}
	if len(ports) != 4 {
		t.Errorf("ports not distinct: %d %d %d %d", s.IMAPPort, s.POP3Port, s.IMAPSPort, s.POP3SPort)
	}
	if got, want := s.IMAPSAddr(), "127.0.0.1:"+strconv.Itoa(s.IMAPSPort); got != want {
		t.Errorf("IMAPSAddr() = %q, want %q", got, want)
	}
	if got, want := s.POP3SAddr(), "127.0.0.1:"+strconv.Itoa(s.POP3SPort); got != want {
		t.Errorf("POP3SAddr() = %q, want %q", got, want)
	}
	if filepath.Dir(s.CAFile) != s.Dir {
		t.Errorf("CAFile %s is not in the instance dir %s", s.CAFile, s.Dir)
	}
	if st, err := os.Stat(s.keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file %s: %v, mode %v; want 0600", s.keyFile, err, st.Mode().Perm())
	}
	if got := s.TLSNames(); !reflect.DeepEqual(got, []string{"localhost", "127.0.0.1"}) {
		t.Errorf("TLSNames() = %q", got)
	}
	s.Seed(t, "alice", []SeedMessage{{Body: crlfMessage("over tls", 1)}})

	// The CA and the certificate Dovecot serves.
	ca := readCA(t, s.CAFile)
	if !ca.IsCA || ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("CA: IsCA %v, key %v; want an ECDSA CA", ca.IsCA, ca.PublicKeyAlgorithm)
	}
	pool := poolFromFile(t, s.CAFile)
	conn, err := tls.Dial("tcp", s.IMAPSAddr(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("tls.Dial %s with CAFile: %v", s.IMAPSAddr(), err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	now := time.Now()
	if leaf.NotBefore.After(now.Add(-50*time.Minute)) || leaf.NotAfter.Before(now.Add(23*time.Hour)) ||
		leaf.NotAfter.After(now.Add(25*time.Hour)) {
		t.Errorf("server certificate valid %v .. %v, want about now-1h .. now+24h", leaf.NotBefore, leaf.NotAfter)
	}
	if !reflect.DeepEqual(leaf.DNSNames, []string{"localhost"}) || len(leaf.IPAddresses) != 1 ||
		!leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("server certificate names: DNS %q IP %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if err := leaf.CheckSignatureFrom(ca); err != nil {
		t.Errorf("server certificate not signed by CAFile: %v", err)
	}

	t.Run("imaps by IP", func(t *testing.T) {
		c, err := imapclient.DialTLS(s.IMAPSAddr(), imapOpts(&tls.Config{RootCAs: pool}))
		if err != nil {
			t.Fatalf("DialTLS: %v", err)
		}
		loginAndList(t, s, c)
	})
	t.Run("imaps by localhost", func(t *testing.T) {
		c, err := imapclient.DialTLS(net.JoinHostPort("localhost", strconv.Itoa(s.IMAPSPort)), imapOpts(&tls.Config{RootCAs: s.RootCAs()}))
		if err != nil {
			t.Fatalf("DialTLS: %v", err)
		}
		loginAndList(t, s, c)
	})
	t.Run("STARTTLS on the plaintext port", func(t *testing.T) {
		plain, err := imapclient.DialInsecure(s.IMAPAddr(), imapOpts(nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := plain.WaitGreeting(); err != nil {
			t.Fatal(err)
		}
		if caps := plain.Caps(); !caps.Has(imap.CapStartTLS) {
			t.Errorf("plaintext port does not offer STARTTLS: %v", caps)
		}
		plain.Close()
		c, err := imapclient.DialStartTLS(s.IMAPAddr(), imapOpts(&tls.Config{RootCAs: pool}))
		if err != nil {
			t.Fatalf("DialStartTLS: %v", err)
		}
		loginAndList(t, s, c)
	})
	t.Run("plaintext login still works", func(t *testing.T) {
		c, err := imapclient.DialInsecure(s.IMAPAddr(), imapOpts(nil))
		if err != nil {
			t.Fatal(err)
		}
		loginAndList(t, s, c)
	})
	t.Run("pop3s and STLS", func(t *testing.T) {
		c, err := tls.Dial("tcp", s.POP3SAddr(), &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatalf("pop3s: %v", err)
		}
		pop3Login(t, s, c, true)

		raw, err := net.DialTimeout("tcp", s.POP3Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(raw)
		for _, cmd := range []string{"", "STLS"} {
			if cmd != "" {
				fmt.Fprintf(raw, "%s\r\n", cmd)
			}
			if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
				t.Fatalf("POP3 %q: %q %v", cmd, line, err)
			}
		}
		tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("STLS handshake: %v", err)
		}
		pop3Login(t, s, tc, false)
	})
}

// pop3Login logs alice in on c, reading the greeting first when greeting is
// set (pop3s; after STLS there is none), checks STAT and closes c.
func pop3Login(t *testing.T, s *Server, c net.Conn, greeting bool) {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	cmds := []string{"USER alice", "PASS " + s.Users["alice"], "STAT", "QUIT"}
	if greeting {
		cmds = append([]string{""}, cmds...)
	}
	for _, cmd := range cmds {
		if cmd != "" {
			fmt.Fprintf(c, "%s\r\n", cmd)
		}
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "+OK") {
			what, _, _ := strings.Cut(cmd, " ") // no password in the message
			t.Fatalf("POP3 %q: %q %v", what, line, err)
		}
		if cmd == "STAT" && !strings.HasPrefix(line, "+OK 1 ") {
			t.Errorf("STAT over TLS: %q, want 1 message", strings.TrimSpace(line))
		}
	}
}

// TestTLSUnknownCA checks that a client trusting only WriteOtherCA's CA
// refuses the instance's certificate as signed by an unknown authority.
func TestTLSUnknownCA(t *testing.T) {
	s := Start(t, Options{TLS: true})
	other := WriteOtherCA(t)
	if readCA(t, other).Equal(readCA(t, s.CAFile)) {
		t.Fatal("WriteOtherCA wrote the instance's own CA")
	}
	if again := WriteOtherCA(t); readCA(t, again).Equal(readCA(t, other)) {
		t.Error("two WriteOtherCA calls wrote the same CA")
	}
	_, err := imapclient.DialTLS(s.IMAPSAddr(), imapOpts(&tls.Config{RootCAs: poolFromFile(t, other)}))
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("DialTLS trusting another CA: %v, want x509.UnknownAuthorityError", err)
	}
	t.Logf("as expected: %v", err)
}

// TestTLSHost checks Options.TLSHost: the certificate names that host only,
// so a client connecting to 127.0.0.1 or localhost refuses it, and one
// asking for that name (ServerName) accepts it.
func TestTLSHost(t *testing.T) {
	const host = "mail.example.invalid"
	s := Start(t, Options{TLS: true, TLSHost: host})
	if got := s.TLSNames(); !reflect.DeepEqual(got, []string{host}) {
		t.Errorf("TLSNames() = %q", got)
	}
	for _, addr := range []string{s.IMAPSAddr(), net.JoinHostPort("localhost", strconv.Itoa(s.IMAPSPort))} {
		_, err := imapclient.DialTLS(addr, imapOpts(&tls.Config{RootCAs: s.RootCAs()}))
		var he x509.HostnameError
		if !errors.As(err, &he) {
			t.Errorf("DialTLS %s: %v, want x509.HostnameError", addr, err)
		} else {
			t.Logf("as expected: %v", err)
		}
	}
	c, err := imapclient.DialTLS(s.IMAPSAddr(), imapOpts(&tls.Config{RootCAs: s.RootCAs(), ServerName: host}))
	if err != nil {
		t.Fatalf("DialTLS with ServerName %s: %v", host, err)
	}
	s.Seed(t, "alice", []SeedMessage{{Body: crlfMessage("named", 1)}})
	loginAndList(t, s, c)
}

// TestTLSOffByDefault checks that an instance without Options.TLS is what it
// always was: no TLS fields, no TLS files, ssl = no, no STARTTLS offered.
func TestTLSOffByDefault(t *testing.T) {
	s := Start(t, Options{})
	if s.IMAPSPort != 0 || s.POP3SPort != 0 || s.CAFile != "" || s.IMAPSAddr() != "" || s.POP3SAddr() != "" ||
		s.RootCAs() != nil || s.TLSNames() != nil {
		t.Errorf("TLS fields set without Options.TLS: %+v", s)
	}
	conf, err := os.ReadFile(filepath.Join(s.Dir, "dovecot.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(conf), "\nssl = no\n") || strings.Contains(string(conf), "ssl_cert") {
		t.Errorf("config without TLS:\n%s", conf)
	}
	for _, f := range []string{caFileName, certFileName, keyFileName} {
		if _, err := os.Stat(filepath.Join(s.Dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists without Options.TLS (%v)", f, err)
		}
	}
	c, err := imapclient.DialInsecure(s.IMAPAddr(), imapOpts(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitGreeting(); err != nil {
		t.Fatal(err)
	}
	if c.Caps().Has(imap.CapStartTLS) {
		t.Errorf("STARTTLS offered without Options.TLS: %v", c.Caps())
	}
}
