package servertest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// CyrusStored returns the bytes Cyrus keeps for every message of folder
// (a path such as "Work/Sub"; "INBOX" for the Inbox), read from its spool
// files in UID order: what it stored, whatever FETCH makes of it.
func (s *Server) CyrusStored(t testing.TB, login, folder string) [][]byte {
	t.Helper()
	if s.Kind != Cyrus && s.Kind != CyrusAlt {
		t.Fatalf("servertest: CyrusStored on %s", s.Kind)
	}
	dir := filepath.Join(s.Dir, "spool", "user", login)
	if folder != "" && !strings.EqualFold(folder, "INBOX") {
		dir = filepath.Join(append([]string{dir}, strings.Split(folder, "/")...)...)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		out, _ := exec.Command("find", s.Dir+"/spool").CombinedOutput()
		t.Fatalf("servertest: cyrus spool of %s %q: %v\n%s", login, folder, err, out)
	}
	type file struct {
		uid  int
		path string
	}
	var files []file
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".")
		uid, err := strconv.Atoi(n)
		if !ok || err != nil || e.IsDir() {
			continue
		}
		files = append(files, file{uid, filepath.Join(dir, e.Name())})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].uid < files[j].uid })
	out := make([][]byte, len(files))
	for i, f := range files {
		if out[i], err = os.ReadFile(f.path); err != nil {
			t.Fatalf("servertest: %v", err)
		}
	}
	return out
}

// WriteMaildir puts msgs straight into login's Courier Maildir INBOX
// (new/), bypassing IMAP. Courier keeps LF line ends on disk and serves
// CRLF: msgs are given with CRLF and written with LF, so that what Courier
// serves is exactly msgs.
func (s *Server) WriteMaildir(t testing.TB, login string, msgs [][]byte) {
	t.Helper()
	if s.Kind != Courier {
		t.Fatalf("servertest: WriteMaildir on %s", s.Kind)
	}
	dir := filepath.Join(s.Dir, "mail", login, "Maildir", "new")
	uid, gid := mailUser(t)
	for i, b := range msgs {
		p := filepath.Join(dir, fmt.Sprintf("%d.M%dP%d.servertest", 1600000000+i, i, os.Getpid()))
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), 0o600); err != nil {
			t.Fatalf("servertest: %v", err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatalf("servertest: %v", err)
		}
	}
}
