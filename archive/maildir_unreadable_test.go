package archive

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

// A message file that cannot be opened (here a symlink to itself, which
// open refuses with ELOOP even as root; a file of another user's mode 600
// does the same) is passed to Fetch's function as a formats.Unreadable,
// and the others as they are; Headers leaves it out. Before, Fetch returned
// the error and the engine ended the run at that message, at every rerun
// again.
func TestMaildirFetchPassesAnUnreadableFile(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "mail")
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"1700000001.M1P1.host:2,S", "1700000002.M2P1.host:2,S", "1700000003.M3P1.host:2,S"}
	for i, n := range names {
		body := "Subject: " + string(rune('a'+i)) + "\n\nbody\n"
		if err := os.WriteFile(filepath.Join(root, "cur", n), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src, err := OpenMaildir(root, MaildirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	inbox := formats.Folder{Name: "INBOX", Path: []string{"INBOX"}}
	_, msgs, err := src.List(ctx, inbox)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("List: %d messages, %v", len(msgs), err)
	}
	// Listed as a file; unreadable by the time it is fetched.
	bad := filepath.Join(root, "cur", names[1])
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(names[1], bad); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	err = src.Fetch(ctx, inbox, msgs, func(m formats.Message, body io.Reader) error {
		if err := formats.UnreadableErr(body); err != nil {
			if !errors.Is(err, syscall.ELOOP) {
				t.Errorf("%s: unreadable for %v, want ELOOP", m.ID, err)
			}
			got[m.ID] = "unreadable"
			return nil
		}
		b, err := io.ReadAll(body)
		got[m.ID] = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(got) != 3 || got[msgs[1].ID] != "unreadable" || !strings.HasPrefix(got[msgs[0].ID], "Subject: a") || !strings.HasPrefix(got[msgs[2].ID], "Subject: c") {
		t.Errorf("Fetch gave %q", got)
	}
	var headers []string
	err = src.Headers(ctx, inbox, msgs, func(m formats.Message, h []byte) error {
		headers = append(headers, m.ID)
		return nil
	})
	if err != nil || len(headers) != 2 || headers[0] != msgs[0].ID || headers[1] != msgs[2].ID {
		t.Errorf("Headers gave %v, %v; want the two readable ones", headers, err)
	}
}

// A message file that is a symbolic link is not read (a link planted in a
// user's Maildir would have a migration run as root copy any file of the
// machine into a mailbox), and a warning says so: a mairix or notmuch
// search folder, all links, was copied empty without a word.
func TestMaildirWarnsOfSymlinkedMessages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	root := filepath.Join(dir, "mail")
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "cur", "1700000001.M1P1.host:2,S"), []byte("Subject: a\n\nbody a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(elsewhere, []byte("Subject: b\n\nbody b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(root, "cur", "1700000002.M2P1.host:2,S")); err != nil {
		t.Fatal(err)
	}
	var warned []string
	src, err := OpenMaildir(root, MaildirOptions{Warn: func(msg string) { warned = append(warned, msg) }})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, msgs, err := src.List(ctx, formats.Folder{Name: "INBOX", Path: []string{"INBOX"}})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("List: %d messages, %v; want the file only", len(msgs), err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "cur: 1 message files are symbolic links, not read") {
		t.Errorf("warnings %q, want one naming cur/'s link", warned)
	}
}
