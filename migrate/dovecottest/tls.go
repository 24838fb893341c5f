package dovecottest

// TLS for test instances (Options.TLS): a throwaway CA and a server
// certificate made in Go for every instance, Dovecot's ssl settings, and the
// imaps and pop3s listeners.
//
// What Dovecot 2.3.19 does with this configuration, pinned by tls_test.go:
//
//   - ssl = yes (not required): the plaintext ports still take a plaintext
//     LOGIN (disable_plaintext_auth = no), and their greeting and CAPABILITY
//     offer STARTTLS (IMAP) and STLS (POP3).
//   - The key file may be root-only (0600): Dovecot's config process reads
//     ssl_key = <file as root and hands the key to the login processes.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/internal/testproc"
)

// File names of the TLS material inside the instance directory.
const (
	caFileName   = "tls-ca.pem"     // the test CA (Server.CAFile)
	certFileName = "tls-server.pem" // the server certificate (ssl_cert)
	keyFileName  = "tls-server.key" // its private key (ssl_key)
)

// IMAPSAddr returns "127.0.0.1:port" of the implicit-TLS IMAP listener, or ""
// when the instance was started without Options.TLS.
func (s *Server) IMAPSAddr() string {
	if s.IMAPSPort == 0 {
		return ""
	}
	return net.JoinHostPort(s.Host, strconv.Itoa(s.IMAPSPort))
}

// POP3SAddr returns "127.0.0.1:port" of the implicit-TLS POP3 listener, or ""
// when the instance was started without Options.TLS.
func (s *Server) POP3SAddr() string {
	if s.POP3SPort == 0 {
		return ""
	}
	return net.JoinHostPort(s.Host, strconv.Itoa(s.POP3SPort))
}

// RootCAs returns a pool holding only the instance's test CA (nil without
// Options.TLS), for a client's tls.Config.RootCAs.
func (s *Server) RootCAs() *x509.CertPool {
	if s.caCert == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.caCert)
	return pool
}

// TLSNames returns the names the server certificate is issued for (DNS names
// first, then IP addresses), or nil without Options.TLS.
func (s *Server) TLSNames() []string { return append([]string(nil), s.tlsNames...) }

// WriteOtherCA writes a freshly made CA certificate (PEM) that signed no
// instance's certificate into a directory of t's and returns its path: a
// --ca-file that makes every test instance's certificate an unknown authority.
func WriteOtherCA(t testing.TB) string {
	t.Helper()
	ca, err := newCA("mailferry dovecottest other CA")
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pemBlock("CERTIFICATE", ca.cert.Raw), 0o644); err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	return path
}

// certAuthority is a CA certificate with its key.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// validity is the span of every certificate made here: from an hour ago (a
// little clock skew) to a day from now (longer than any test run).
func validity() (notBefore, notAfter time.Time) {
	now := time.Now()
	return now.Add(-time.Hour), now.Add(24 * time.Hour)
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
}

// newCA makes a self-signed ECDSA P-256 CA.
func newCA(name string) (*certAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	nb, na := validity()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"mailferry tests"}},
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &certAuthority{cert: cert, key: key}, nil
}

// issueServer makes an ECDSA P-256 server certificate for names (DNS names
// or IP addresses) signed by ca; it returns the certificate and key as PEM.
func (ca *certAuthority) issueServer(names []string) (certPEM, keyPEM []byte, err error) {
	if len(names) == 0 {
		return nil, nil, errors.New("a server certificate needs a name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	nb, na := validity()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"mailferry tests"}},
		NotBefore:    nb,
		NotAfter:     na,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), pemBlock("PRIVATE KEY", keyDER), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// tlsCertNames are the names of the server certificate: host alone when
// given (Options.TLSHost), else "localhost" and 127.0.0.1.
func tlsCertNames(host string) []string {
	if host != "" {
		return []string{host}
	}
	return []string{"localhost", "127.0.0.1"}
}

// setupTLS makes the instance's CA and server certificate and writes them
// into s.Dir: the CA world-readable (tests hand it to clients), the
// certificate world-readable and the key root-only (Dovecot's config process
// reads it as root). It fills CAFile and the fields the config uses.
func (s *Server) setupTLS(names []string) error {
	ca, err := newCA("mailferry dovecottest CA " + filepath.Base(s.Dir))
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.issueServer(names)
	if err != nil {
		return err
	}
	caFile := filepath.Join(s.Dir, caFileName)
	certFile := filepath.Join(s.Dir, certFileName)
	keyFile := filepath.Join(s.Dir, keyFileName)
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{caFile, pemBlock("CERTIFICATE", ca.cert.Raw), 0o644},
		{certFile, certPEM, 0o644},
		{keyFile, keyPEM, 0o600},
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	s.CAFile, s.certFile, s.keyFile = caFile, certFile, keyFile
	s.caCert = ca.cert
	s.tlsNames = append([]string(nil), names...)
	return nil
}

// tlsConfig renders the ssl settings (replacing "ssl = no").
func (s *Server) tlsConfig(p func(format string, args ...any)) {
	p("ssl = yes")
	p("ssl_cert = <%s", s.certFile)
	p("ssl_key = <%s", s.keyFile)
}

// probeConfig is the client side of the readiness probe of a TLS listener:
// it trusts the instance's CA and checks the certificate's first name, so a
// listener that serves some other certificate is not taken as ready.
func (s *Server) probeConfig() *tls.Config {
	return &tls.Config{RootCAs: s.RootCAs(), ServerName: s.tlsNames[0], MinVersion: tls.VersionTLS12}
}

// greetsTLS is greets over implicit TLS.
func greetsTLS(addr, prefix string, cfg *tls.Config) bool {
	d := &net.Dialer{Timeout: time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return false
	}
	defer c.Close()
	return testproc.ReadsPrefix(c, prefix)
}
