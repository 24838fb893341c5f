package archive

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

// Folder names on disk are Dovecot's: modified UTF-7, a '.' kept, and
// every name comes back as it went in.
func TestMboxComponentNames(t *testing.T) {
	for c, want := range map[string]string{
		"Privé": "Priv&AOk-", "go.nuts": "go.nuts", "a&b": "a&-b", "50%": "50%25", "a/b": "a%2Fb",
		".hidden": "%2Ehidden", "-rf": "%2Drf", "x.mbox": "x%2Embox", "x.lock": "x%2Elock", "x.len": "x%2Elen", "": "%",
	} {
		if got := encodeMboxComponent(c); got != want {
			t.Errorf("encode %q = %q, want %q", c, got, want)
		}
		if got := decodeMboxComponent(want); got != c {
			t.Errorf("decode %q = %q, want %q", want, got, c)
		}
	}
	// Another program's names, and an earlier version's, as they are.
	for name, want := range map[string]string{"Größe": "Größe", "go%2Enuts": "go.nuts", "a&b": "a&b"} {
		if got := decodeMboxComponent(name); got != want {
			t.Errorf("decode %q = %q, want %q", name, got, want)
		}
	}
}

// An archive an earlier version wrote (INBOX.mbox, Lists/go%2Enuts.mbox
// and their .mbox.len records beside the manifest) is appended to in its
// own files: no second folder, no mail/ directory.
func TestMboxEarlierArchiveAppendedInPlace(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	msg := "From a@b Mon Jan  1 00:00:00 2001\nSubject: old\n\nold\n\n"
	for _, rel := range []string{"INBOX.mbox", "Lists/go%2Enuts.mbox"} {
		p := filepath.Join(root, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte(msg), 0o600)
		os.WriteFile(p+".len", []byte(formatMboxSidecar(mboxSidecar{length: int64(len(msg))})+"\n"), 0o600)
	}
	os.WriteFile(filepath.Join(root, ManifestFile), nil, 0o600)
	s, err := OpenMbox(root, MboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]string{{"INBOX"}, {"Lists", "go.nuts"}} {
		store(t, s, p, "Subject: new\n\nnew\n")
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, _ = OpenMbox(root, MboxOptions{ReadOnly: true})
	defer s.Close()
	folders, _ := s.Folders(ctx)
	var names []string
	for _, f := range folders {
		if !f.NoSelect {
			names = append(names, formats.DisplayName(f.Path)+"="+f.Name)
		}
	}
	if want := []string{"INBOX=INBOX", "Lists/go.nuts=Lists/go%2Enuts.mbox"}; !slices.Equal(names, want) {
		t.Errorf("folders %q, want %q", names, want)
	}
	for _, p := range [][]string{{"INBOX"}, {"Lists", "go.nuts"}} {
		if got := listBodies(t, s, p); !slices.Equal(got, []string{"Subject: old\n\nold\n", "Subject: new\n\nnew\n"}) {
			t.Errorf("%v: %q", p, got)
		}
	}
	if _, err := os.Stat(filepath.Join(root, mboxMailDir)); err == nil {
		t.Error("a mail/ directory was made in an earlier version's archive")
	}
}
