package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate/memserver"
)

// A hostile server's folder names never create anything outside the
// archive directory, in either format, and every message still arrives.
func TestHostileFolderNamesStayInsideTheArchive(t *testing.T) {
	t.Parallel()
	names := []string{"..", "../x", "../../etc", "a/../../b", "-rf", ".hidden", "x\x01y", "/abs", "a//b", "Tab\there", "..%2F", "NUL\x7f"}
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			srv, err := memserver.Start("eve", "hostile-pw")
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			created := 0
			for i, n := range names {
				body := fmt.Sprintf("Message-ID: <%d@hostile>\r\nSubject: %q\r\n\r\nbody\r\n", i, n)
				if err := srv.AddHostile(n, []byte(body)); err != nil {
					t.Logf("the in-memory server refused %q: %v", n, err)
					continue
				}
				created++
			}
			if created < len(names)/2 {
				t.Fatalf("only %d hostile folders could be made", created)
			}
			parent := t.TempDir()
			dir := filepath.Join(parent, "inner", "archive")
			setenv(t, "MAILFERRY_SRC_PASSWORD", "hostile-pw")
			report := filepath.Join(t.TempDir(), "r.json")
			code, out, errOut := mailferry(t, "archive", "imap://eve@"+srv.Addr, dir, "--format", format,
				"--src-tls", "none", "--state-dir", t.TempDir(), "--progress", "never", "--report", report)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			if r := readReport(t, report); r.Totals.Copied != created {
				t.Errorf("copied %d of %d messages", r.Totals.Copied, created)
			}
			// Nothing but the archive itself under parent.
			filepath.Walk(parent, func(p string, info os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(parent, p)
				if rel != "." && rel != "inner" && !strings.HasPrefix(rel, filepath.Join("inner", "archive")) {
					t.Errorf("created outside the archive: %s", p)
				}
				if info.Mode()&os.ModeSymlink != 0 {
					t.Errorf("a symlink in the archive: %s", p)
				}
				return nil
			})
			if code, out, errOut := mailferry(t, "verify", dir); code != 0 {
				t.Errorf("verify: exit %d\n%s\n%s", code, out, errOut)
			}
		})
	}
}
