package archive

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

// Issue 12 item 2: keywords are written as Dovecot's letters with a
// dovecot-keywords file per folder; $Forwarded gets 'P' and a letter.
func TestMaildirWritesDovecotKeywords(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "a")
	st, err := OpenMaildir(root, MaildirOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.Ensure(ctx, []string{"Work"})
	if err != nil {
		t.Fatal(err)
	}
	for _, flags := range [][]string{
		{formats.FlagSeen, "Work"},
		{"$Label1", formats.FlagAnswered, "$Forwarded"},
		{"work", "$label1"}, // IMAP keywords ignore case
	} {
		if _, err := st.Store(ctx, f, formats.Message{Flags: flags}, -1, strings.NewReader("Subject: x\n\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	kw, err := os.ReadFile(filepath.Join(root, ".Work", dovecotKeywordsFile))
	if err != nil || string(kw) != "0 Work\n1 $Label1\n2 $Forwarded\n" {
		t.Errorf("dovecot-keywords = %q, %v", kw, err)
	}
	var infos []string
	ents, _ := os.ReadDir(filepath.Join(root, ".Work", "cur"))
	for _, e := range ents {
		_, info, _ := strings.Cut(e.Name(), ":2,")
		infos = append(infos, info)
	}
	slices.Sort(infos)
	if want := []string{"PRbc", "Sa", "ab"}; !slices.Equal(infos, want) {
		t.Errorf("infos %q, want %q", infos, want)
	}
	// And back (item 8): the letters become the keywords again.
	_, msgs, err := mustOpen(t, root).List(ctx, formats.Folder{Path: []string{"Work"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, strings.Join(ioSortedFlags(m.Flags), " "))
	}
	slices.Sort(got)
	want := []string{"$Forwarded $Label1 \\Answered", "$Label1 Work", "Work \\Seen"}
	if !slices.Equal(got, want) {
		t.Errorf("read back %q, want %q", got, want)
	}
}

// More than 26 keywords in a folder: the rest stay out of the file names,
// with a warning.
func TestMaildirKeywordOverflow(t *testing.T) {
	ctx := context.Background()
	var warned []string
	st, err := OpenMaildir(t.TempDir(), MaildirOptions{Create: true, Warn: func(m string) { warned = append(warned, m) }})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := st.Ensure(ctx, []string{"INBOX"})
	var flags []string
	for i := 0; i < 28; i++ {
		flags = append(flags, "k"+string(rune('A'+i)))
	}
	if _, err := st.Store(ctx, f, formats.Message{Flags: flags}, -1, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, msgs, _ := st.List(ctx, f)
	if len(msgs) != 1 || len(msgs[0].Flags) != 26 {
		t.Errorf("listed %v", msgs)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], `k[ k\ kept only in the manifest`) {
		t.Errorf("warnings %q", warned)
	}
}
