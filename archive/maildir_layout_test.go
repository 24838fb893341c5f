package archive

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

// lyWrite writes a message file (and its folder's cur/new/tmp) below root.
func lyWrite(t *testing.T, root, dir, name, body string) {
	t.Helper()
	d := filepath.Join(root, filepath.FromSlash(dir))
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if name != "" {
		if err := os.WriteFile(filepath.Join(d, "cur", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// lyRead lists every selectable folder of a Maildir tree with the bodies
// of its messages, and the store's warnings.
func lyRead(t *testing.T, root string) (map[string][]string, []string) {
	t.Helper()
	out := map[string][]string{}
	folders, warned, warnings := eachStored(t, root, func(folder string, _ formats.Message, b []byte) {
		out[folder] = append(out[folder], string(b))
	})
	for _, f := range folders {
		if _, ok := out[f]; !ok {
			out[f] = nil // an empty folder is read too
		}
	}
	if !slices.Equal(warned, warnings) {
		t.Errorf("Warn got %q, Warnings() %q", warned, warnings)
	}
	return out, warned
}

// eachStored opens the Maildir store at root and calls fn with every
// message of every selectable folder (by display name) and its bytes. It
// returns those folders, what the store passed to its Warn callback, and
// its Warnings().
func eachStored(t *testing.T, root string, fn func(folder string, m formats.Message, b []byte)) (names, warned, warnings []string) {
	t.Helper()
	ctx := context.Background()
	st, err := OpenMaildir(root, MaildirOptions{Warn: func(m string) { warned = append(warned, m) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	folders, err := st.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range folders {
		if f.NoSelect {
			continue
		}
		names = append(names, formats.DisplayName(f.Path))
		_, msgs, err := st.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		err = st.Fetch(ctx, f, msgs, func(m formats.Message, r io.Reader) error {
			b, err := io.ReadAll(r)
			fn(formats.DisplayName(f.Path), m, b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names, warned, st.Warnings()
}

// Issue 12 item 1: our archive writes folder names in modified UTF-7 (as
// Dovecot, Courier and mbsync expect), with the fsname escapes for what
// modified UTF-7 leaves unsafe, and reads them back as the same names.
func TestMaildirWritesModifiedUTF7Names(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "a")
	st, err := OpenMaildir(root, MaildirOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		".Priv&AOk-.Gr&APYA3w-e": {"Privé", "Größe"},
		".A&-B":                  {"A&B"},
		".Lists.go%2Enuts":       {"Lists", "go.nuts"},
		".%2Dx.50%25":            {"-x", "50%"},
	}
	for dir, p := range want {
		f, err := st.Ensure(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Store(ctx, f, formats.Message{}, -1, strings.NewReader("Subject: "+dir+"\n\nx\n")); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(filepath.Join(root, dir, "cur")); err != nil || !fi.IsDir() {
			t.Errorf("folder %q: no directory %s: %v", p, dir, err)
		}
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	got, warned := lyRead(t, root)
	for dir, p := range want {
		if b := got[formats.DisplayName(p)]; len(b) != 1 || !strings.Contains(b[0], dir) {
			t.Errorf("folder %q read back as %q", p, b)
		}
	}
	if len(warned) > 0 {
		t.Errorf("warnings reading our own archive: %q", warned)
	}
}

// An archive written before modified UTF-7 (raw UTF-8 names) is still read,
// and appending to it uses the folder that is there: no second folder.
func TestMaildirLegacyUTF8NamesAppended(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	lyWrite(t, root, "", "1.old:2,S", "Subject: inbox\n\n")
	lyWrite(t, root, ".Privé.Größe", "2.old:2,S", "Subject: old\n\n")
	st, err := OpenMaildir(root, MaildirOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.Ensure(ctx, []string{"Privé", "Größe"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Messages != 1 {
		t.Errorf("Ensure found %d messages in the old folder, want 1", f.Messages)
	}
	if _, err := st.Store(ctx, f, formats.Message{}, -1, strings.NewReader("Subject: new\n\n")); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(filepath.Join(root, ".Priv&AOk-.Gr&APYA3w-e")); err == nil {
		t.Error("appending made a second folder directory in modified UTF-7")
	}
	got, _ := lyRead(t, root)
	if b := got["Privé/Größe"]; len(b) != 2 {
		t.Errorf("Privé/Größe holds %q, want the old and the new message", b)
	}
	// Verify finds the messages by path, too.
	rc, _, err := mustOpen(t, root).Open(formats.Folder{Path: []string{"Privé", "Größe"}}, "2.old")
	if err != nil {
		t.Fatalf("Open by path in the legacy folder: %v", err)
	}
	rc.Close()
}

func mustOpen(t *testing.T, root string) *Maildir {
	st, err := OpenMaildir(root, MaildirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Issue 12 items 7 and 9: Maildir++ names in modified UTF-7 (Dovecot,
// mbsync) are decoded, and nested layouts (Dovecot LAYOUT=fs, mbsync
// SubFolders Verbatim with its INBOX in ROOT/INBOX) are read whole.
func TestMaildirReadsForeignLayouts(t *testing.T) {
	t.Run("maildir++ modified UTF-7", func(t *testing.T) {
		root := t.TempDir()
		lyWrite(t, root, "", "1.a:2,S", "inbox")
		lyWrite(t, root, ".Priv&AOk-", "2.a:2,", "privé")
		lyWrite(t, root, ".Priv&AOk-.Gr&APYA3w-e", "3.a:2,", "größe")
		lyWrite(t, root, ".50%", "4.a:2,", "fifty") // Dovecot's "50%": not our escape
		got, warned := lyRead(t, root)
		want := map[string][]string{"INBOX": {"inbox"}, "Privé": {"privé"}, "Privé/Größe": {"größe"}, "50%": {"fifty"}}
		if !mapsEqual(got, want) || len(warned) > 0 {
			t.Errorf("read %q (warnings %q), want %q", got, warned, want)
		}
	})
	t.Run("dovecot LAYOUT=fs", func(t *testing.T) {
		root := t.TempDir()
		lyWrite(t, root, "", "1.a:2,S", "inbox")
		lyWrite(t, root, "Priv&AOk-", "2.a:2,", "privé")
		lyWrite(t, root, "Priv&AOk-/Gr&APYA3w-e", "3.a:2,", "größe")
		lyWrite(t, root, "Archive/2023", "4.a:2,", "2023") // Archive itself no Maildir
		lyWrite(t, root, "Lists/go.nuts", "5.a:2,", "go.nuts")
		got, warned := lyRead(t, root)
		want := map[string][]string{"INBOX": {"inbox"}, "Privé": {"privé"}, "Privé/Größe": {"größe"},
			"Archive/2023": {"2023"}, "Lists/go.nuts": {"go.nuts"}}
		if !mapsEqual(got, want) || len(warned) > 0 {
			t.Errorf("read %q (warnings %q), want %q", got, warned, want)
		}
	})
	t.Run("mbsync verbatim", func(t *testing.T) {
		root := t.TempDir()
		lyWrite(t, root, "INBOX", "1.a,U=1:2,S", "inbox")
		lyWrite(t, root, "Sent", "2.a,U=1:2,S", "sent")
		lyWrite(t, root, "Work/Priv&AOk-", "3.a,U=1:2,", "work")
		got, warned := lyRead(t, root)
		want := map[string][]string{"INBOX": {"inbox"}, "Sent": {"sent"}, "Work/Privé": {"work"}}
		if !mapsEqual(got, want) || len(warned) > 0 {
			t.Errorf("read %q (warnings %q), want %q", got, warned, want)
		}
	})
}

// Issue 12: every ambiguity of a foreign tree is a warning, and the folder
// is still read where it can be.
func TestMaildirWarnsAmbiguities(t *testing.T) {
	root := t.TempDir()
	lyWrite(t, root, "", "1.a:2,S", "inbox")
	lyWrite(t, root, ".Work", "2.a:2,", "plus")
	lyWrite(t, root, "Work", "3.a:2,", "nested") // the same folder twice
	lyWrite(t, root, ".A&B", "4.a:2,", "amp")    // not modified UTF-7
	if err := os.MkdirAll(filepath.Join(root, "junk", "deeper"), 0o700); err != nil {
		t.Fatal(err)
	}
	lyWrite(t, root, ".K", "5.a:2,Sac", "kw")
	os.WriteFile(filepath.Join(root, ".K", dovecotKeywordsFile), []byte("0 Work\nbogus\n"), 0o600)
	got, warned := lyRead(t, root)
	if b := got["A&B"]; len(b) != 1 {
		t.Errorf("A&B read as %q", got)
	}
	if b := got["Work"]; len(b) != 1 || b[0] != "plus" {
		t.Errorf("Work holds %q, want the Maildir++ folder's message", b)
	}
	for _, w := range []string{"mixes Maildir++", "Work is in two directories", `"A&B" is not modified UTF-7`,
		"junk: a directory with no Maildir", `keyword letters "c"`, `line "bogus"`} {
		if !slices.ContainsFunc(warned, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no warning says %q; warnings: %q", w, warned)
		}
	}
	if slices.ContainsFunc(warned, func(s string) bool { return strings.Contains(s, "junk/deeper") }) {
		t.Errorf("junk/deeper named besides junk: %q", warned)
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestMaildirNameHelpers: the listing's quick helpers agree with
// formats.ParseMaildirName and with a split of the name on commas.
func TestMaildirNameHelpers(t *testing.T) {
	for _, name := range []string{"1.M2P3.host,S=120:2,S", "1.M2P3.host,S=120,W=130", "1.M2P3.host,W=1,S=7",
		"1.M2P3.host,S=x,S=9", "1.M2P3.host", ".hidden", ":2,S", "a/b", "1.host,S=-1", "1.host,S=", "n\x00"} {
		u, _, ok := formats.ParseMaildirName(name)
		if gu, gok := maildirUnique(name); gu != u || gok != ok {
			t.Errorf("maildirUnique(%q) = %q, %v; ParseMaildirName: %q, %v", name, gu, gok, u, ok)
		}
		want := int64(-1)
		for _, part := range strings.Split(u, ",")[1:] {
			if v, ok := strings.CutPrefix(part, "S="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
					want = n
					break
				}
			}
		}
		if got := sizeFromName(u); got != want {
			t.Errorf("sizeFromName(%q) = %d, want %d", u, got, want)
		}
	}
}

// TestMaildirFoldersCounted: Folders counts each folder's messages and
// bytes, listing several folders at once (countFolders), in a tree with a
// folder in two directories (the Maildir++ one counted, the nested one
// not), a parent that is first a placeholder and then a folder, and a
// message in both cur/ and new/ (counted once).
func TestMaildirFoldersCounted(t *testing.T) {
	root := t.TempDir()
	want := map[string]struct{ n, bytes int64 }{}
	body := func(folder string, i int) string { return strings.Repeat("x", i+1) + folder }
	for f := 0; f < 14; f++ {
		folder := fmt.Sprintf("F%02d", f)
		var n, bytes int64
		for i := 0; i < f*7; i++ {
			b := body(folder, i)
			lyWrite(t, root, "."+folder, fmt.Sprintf("%d.a:2,S", i), b)
			n, bytes = n+1, bytes+int64(len(b))
		}
		lyWrite(t, root, "."+folder, "", "")
		want[folder] = struct{ n, bytes int64 }{n, bytes}
	}
	lyWrite(t, root, ".Twice", "1.a:2,", "plus")
	lyWrite(t, root, "Twice", "2.a:2,", "nested, not read")
	lyWrite(t, root, "Twice", "3.a:2,", "nested, not read")
	want["Twice"] = struct{ n, bytes int64 }{1, 4}
	lyWrite(t, root, "Top/Child", "1.a:2,", "child")
	lyWrite(t, root, ".Top", "1.a:2,", "top")
	lyWrite(t, root, ".Top", "2.a:2,", "top2")
	want["Top/Child"] = struct{ n, bytes int64 }{1, 5}
	want["Top"] = struct{ n, bytes int64 }{2, 7}
	lyWrite(t, root, "", "1.b:2,S", "inbox")
	if err := os.WriteFile(filepath.Join(root, "new", "1.b"), []byte("inbox"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "new", "2.b"), []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	want["INBOX"] = struct{ n, bytes int64 }{2, 8}

	m, err := OpenMaildir(root, MaildirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	folders, err := m.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]struct{ n, bytes int64 }{}
	for _, f := range folders {
		if !f.NoSelect {
			got[formats.DisplayName(f.Path)] = struct{ n, bytes int64 }{int64(f.Messages), f.Bytes}
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("Folders counted %v, want %v", got, want)
	}
}
