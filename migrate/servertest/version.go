package servertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// installed names each kind and the files it needs to start.
func installed(kind Kind) (what string, paths []string) {
	root := InstallDir()
	switch kind {
	case Cyrus, CyrusAlt:
		bin := filepath.Join(root, "usr/lib/cyrus/bin")
		return "Cyrus IMAP", []string{filepath.Join(bin, "master"), filepath.Join(bin, "imapd"), filepath.Join(bin, "pop3d")}
	case Courier:
		return "Courier", []string{filepath.Join(root, "usr/bin/imapd"), filepath.Join(root, "usr/sbin/couriertcpd"),
			filepath.Join(root, "usr/lib/courier/courier-authlib/authdaemond"),
			filepath.Join(root, "usr/lib/courier-authlib/libauthuserdb.so"),
			"/etc/courier", "/run/courier", "/usr/lib/courier", "/usr/lib/courier-authlib"}
	case Mailutils:
		return "GNU mailutils imap4d", []string{"/usr/sbin/imap4d"}
	}
	return string(kind), nil
}

// Available says why an instance of kind cannot start here (not root, not
// installed), or nil when it can.
func Available(kind Kind) error {
	what, paths := installed(kind)
	if paths == nil {
		return fmt.Errorf("unknown server %q", kind)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s test instances need root; uid is %d", what, os.Geteuid())
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s is not installed (%s is missing)", what, p)
		}
	}
	return nil
}

// Version returns the upstream version of the package kind runs from
// ("3.6.1" for cyrus-imapd 3.6.1-4+deb12u5): Cyrus and Courier from the
// .deb files scripts/install-servers unpacked, mailutils from dpkg.
func Version(kind Kind) (string, error) {
	switch kind {
	case Cyrus, CyrusAlt:
		return debVersion("cyrus-imapd")
	case Courier:
		return debVersion("courier-imap")
	case Mailutils:
		out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "mailutils-imap4d").Output()
		if err != nil {
			return "", fmt.Errorf("dpkg-query mailutils-imap4d: %v", err)
		}
		return UpstreamVersion(string(out)), nil
	}
	return "", fmt.Errorf("unknown server %q", kind)
}

// debVersion reads the version of package pkg from the name of its .deb
// beside InstallDir (NAME_VERSION_ARCH.deb, ':' of an epoch escaped).
func debVersion(pkg string) (string, error) {
	debs, _ := filepath.Glob(filepath.Join(filepath.Dir(InstallDir()), "debs", pkg+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("want one %s .deb beside %s, found %d", pkg, InstallDir(), len(debs))
	}
	parts := strings.Split(filepath.Base(debs[0]), "_")
	if len(parts) != 3 {
		return "", fmt.Errorf("cannot read a version from %s", debs[0])
	}
	return UpstreamVersion(strings.ReplaceAll(parts[1], "%3a", ":")), nil
}

// UpstreamVersion strips a Debian version's epoch, revision and repack
// suffix: "1:2.3.19.1+dfsg1-2.1+deb12u7" is "2.3.19.1".
func UpstreamVersion(v string) string {
	v = strings.TrimSpace(v)
	if _, rest, ok := strings.Cut(v, ":"); ok {
		v = rest
	}
	if i := strings.LastIndex(v, "-"); i > 0 {
		v = v[:i]
	}
	if i := strings.Index(v, "+dfsg"); i > 0 {
		v = v[:i]
	}
	return v
}
