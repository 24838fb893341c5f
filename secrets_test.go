package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// No password appears in stdout, stderr (at debug level), the report, the
// state or the archive; state, reports and archives are the owner's only.
func TestSecretsStayOutAndFilesArePrivate(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.src.Seed(t, "alice", testMessages(t, 30))
	secrets := [][]byte{[]byte(p.src.Users["alice"]), []byte(p.dst.Users["alice"])}
	work := t.TempDir()
	report := filepath.Join(work, "report.json")
	code, out, errOut := mailferry(t, p.args("--log-level", "debug", "--report", report)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	archiveDir := filepath.Join(work, "archive")
	code, out2, errOut2 := mailferry(t, "archive", "imap://alice@"+p.src.IMAPAddr(), archiveDir,
		"--src-tls", "none", "--state-dir", p.state, "--progress", "never", "--log-level", "debug")
	if code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out2, errOut2)
	}
	// A failing login at debug level, too.
	setenv(t, "MAILFERRY_DST_PASSWORD", "wrong-"+p.dst.Users["alice"])
	_, out3, errOut3 := mailferry(t, p.args("--log-level", "debug")...)
	for _, s := range secrets {
		for name, text := range map[string]string{"stdout": out + out2 + out3, "stderr": errOut + errOut2 + errOut3} {
			if bytes.Contains([]byte(text), s) {
				t.Errorf("a password appears in %s", name)
			}
		}
	}
	for _, root := range []string{p.state, archiveDir, report} {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, _ := d.Info()
			mode := info.Mode().Perm()
			if d.IsDir() && mode&0o077 != 0 && path != p.state { // p.state was made by the test
				t.Errorf("%s: directory mode %o, want no access for group and others", path, mode)
			}
			if !d.IsDir() {
				if mode&0o077 != 0 {
					t.Errorf("%s: file mode %o, want 0600", path, mode)
				}
				b, _ := os.ReadFile(path)
				for _, s := range secrets {
					if bytes.Contains(b, s) {
						t.Errorf("a password is stored in %s", path)
					}
				}
			}
			return nil
		})
	}
	// There is no flag that takes a password.
	if code, _, _ := mailferry(t, p.args("--src-password", "x")...); code != 2 {
		t.Errorf("--src-password: exit %d, want 2 (no such flag)", code)
	}
}
