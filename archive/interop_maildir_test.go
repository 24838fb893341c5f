package archive

// Interop, the Maildir half of issue 12: our Maildir archive opened by
// Dovecot (default Maildir++ settings, no :UTF-8), Python's mailbox.Maildir
// and mutt (interop_mutt_maildir_test.go); and Maildirs written by Dovecot
// (Maildir++ and LAYOUT=fs), mbsync (SubFolders Verbatim and Maildir++) and
// Python read back by our store with every message's bytes, flags,
// keywords and date.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/formats/corpus"
	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// imFolders spread a corpus sample over non-ASCII, nested, '&' and '.'
// names; imDovecotName is each one's name as Dovecot (separator '/') lists
// it: a '.' has no lossless spelling in default Maildir++ (formats/fsname.go).
var imFolders = [][]string{{"INBOX"}, {"Privé", "Größe"}, {"A&B"}, {"日本語"}, {"Lists", "go.nuts"}}

func imDovecotName(p []string) string {
	if slices.Equal(p, []string{"Lists", "go.nuts"}) {
		return "Lists/go%2Enuts"
	}
	return strings.Join(p, "/")
}

// imMsg is what every reader must agree on about one message.
type imMsg struct {
	sha   string
	flags string // sorted, space-separated
	date  int64  // Unix seconds; 0 where the reader does not keep it
}

func (m imMsg) String() string { return fmt.Sprintf("%s… [%s] %d", m.sha[:12], m.flags, m.date) }

// imMinus is a without b, as multisets.
func imMinus(a, b []imMsg) []imMsg {
	b = slices.Clone(b)
	var out []imMsg
	for _, m := range a {
		if i := slices.Index(b, m); i >= 0 {
			b = slices.Delete(b, i, i+1)
		} else {
			out = append(out, m)
		}
	}
	return out
}

func imKey(body []byte, flags []string, date time.Time) imMsg {
	sum := sha256.Sum256(body)
	var fs []string
	for _, f := range flags {
		if !strings.EqualFold(f, formats.FlagRecent) {
			fs = append(fs, f)
		}
	}
	slices.Sort(fs)
	var d int64
	if !date.IsZero() {
		d = date.Unix()
	}
	return imMsg{sha: hex.EncodeToString(sum[:]), flags: strings.Join(fs, " "), date: d}
}

// imSample is every 12th message of the dev corpus, with flags and a date.
func imSample(t *testing.T) (bodies [][]byte, flags [][]string, dates []time.Time) {
	_, all := corpus.Files(t, "dev")
	for i := 0; i < len(all); i += 12 {
		n := len(bodies)
		bodies = append(bodies, all[i])
		flags = append(flags, ioFlags(n))
		dates = append(dates, time.Date(2021, 3, 4, 5, 6, n, 0, time.UTC))
	}
	return
}

// imCompare checks that got and want hold the same folders and, in each,
// the same messages (as multisets).
func imCompare(t *testing.T, who string, got, want map[string][]imMsg) {
	t.Helper()
	for name, w := range want {
		g := slices.Clone(got[name])
		w = slices.Clone(w)
		sortMsgs := func(s []imMsg) {
			sort.Slice(s, func(i, j int) bool { return s[i].String() < s[j].String() })
		}
		sortMsgs(g)
		sortMsgs(w)
		if !slices.Equal(g, w) {
			t.Errorf("%s: folder %q holds %d messages, want %d; missing %v, unexpected %v",
				who, name, len(g), len(w), imMinus(w, g), imMinus(g, w))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok && len(got[name]) > 0 {
			t.Errorf("%s: unexpected folder %q with %d messages", who, name, len(got[name]))
		}
	}
}

// imAsIMAPServes is what Dovecot's IMAP documents it does to a stored
// message: every bare LF served as CRLF, a NUL as 0x80 (LIBRARIES.md).
func imAsIMAPServes(b []byte) []byte {
	var out []byte
	for i, c := range b {
		switch {
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			out = append(out, '\r', '\n')
		case c == 0:
			out = append(out, 0x80)
		default:
			out = append(out, c)
		}
	}
	return out
}

// imStripTUID removes the X-TUID header line mbsync adds to the messages
// it stores.
func imStripTUID(b []byte) []byte {
	h := formats.HeaderBlock(b)
	i := bytes.Index(h, []byte("X-TUID: "))
	if i < 0 || i > 0 && h[i-1] != '\n' {
		return b
	}
	end := bytes.IndexByte(h[i:], '\n')
	if end < 0 {
		return b
	}
	return append(slices.Clone(b[:i]), b[i+end+1:]...)
}

// imBuildArchive writes the sample into a Maildir archive (through the
// manifest Writer, as mailferry archive does) and returns what each
// folder holds, by Dovecot's name, as Dovecot's IMAP serves it.
func imBuildArchive(t *testing.T, dir string) map[string][]imMsg {
	ctx := context.Background()
	w := rpOpen(t, "maildir", dir)
	folders := make([]formats.Folder, len(imFolders))
	for i, p := range imFolders {
		var err error
		if folders[i], err = w.Ensure(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	bodies, flags, dates := imSample(t)
	want := map[string][]imMsg{}
	for i, b := range bodies {
		fi := i % len(folders)
		m := formats.Message{ID: fmt.Sprint(i), Size: int64(len(b)), Flags: flags[i], Date: dates[i]}
		if _, err := w.Store(ctx, folders[fi], m, m.Size, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		name := imDovecotName(imFolders[fi])
		want[name] = append(want[name], imKey(imAsIMAPServes(b), flags[i], dates[i]))
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// Issue 12 items 1-3: Dovecot with default Maildir++ settings, pointed at
// our archive, lists every folder under the source's name and nothing
// else, and serves every message with its bytes, flags (keywords included)
// and date.
func TestInteropDovecotOpensMaildirArchive(t *testing.T) {
	t.Parallel()
	s := dovecottest.Start(t, dovecottest.Options{MailLocation: "maildir:~/Maildir"})
	home := s.Home("alice")
	want := imBuildArchive(t, filepath.Join(home, "Maildir"))
	s.GiveToMailUser(t, home)

	wantList := map[string]bool{"Privé": true, "Lists": true} // parents, not selectable
	for name := range want {
		wantList[name] = true
	}
	var listed []string
	for _, d := range s.Folders(t, "alice") {
		listed = append(listed, d.Mailbox)
		if !wantList[d.Mailbox] {
			t.Errorf("Dovecot lists %q, which is no folder of the archive", d.Mailbox)
		}
	}
	for name := range wantList {
		if !slices.Contains(listed, name) {
			t.Errorf("Dovecot does not list %q (it lists %q)", name, listed)
		}
	}
	got := map[string][]imMsg{}
	for name, msgs := range s.Snapshot(t, "alice") {
		for _, m := range msgs {
			got[name] = append(got[name], imMsg{sha: m.SHA256, flags: strings.Join(m.Flags, " "), date: m.Date.Unix()})
		}
	}
	imCompare(t, "Dovecot", got, want)
}

const imPythonRead = `
import hashlib, json, mailbox, os, sys
root = sys.argv[1]
out = {}
def read(name, md):
    msgs = []
    for key in md.iterkeys():
        m = md.get_message(key)
        msgs.append({"sha": hashlib.sha256(md.get_bytes(key)).hexdigest(), "flags": m.get_flags(), "date": int(m.get_date())})
    out[name] = msgs
md = mailbox.Maildir(root, factory=None, create=False)
read("", md)
for f in md.list_folders():
    read(f, md.get_folder(f))
json.dump(out, sys.stdout)
`

func imPython(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import mailbox").Run()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 with mailbox is not available (CI=true: not skipping): %v", err)
		}
		t.Skipf("skipping: python3 with mailbox is not available: %v", err)
	}
	return py
}

// Python's mailbox.Maildir sees every message of our archive in the folder
// it belongs to (Python shows the on-disk names, modified UTF-7), with its
// bytes, date and flag letters: the system flags' and Dovecot's keyword
// letters.
func TestInteropPythonReadsMaildirArchive(t *testing.T) {
	t.Parallel()
	py := imPython(t)
	dir := filepath.Join(t.TempDir(), "archive")
	imBuildArchive(t, dir)
	// What each message's flag letters must be, from our own names.
	bodies, flags, dates := imSample(t)
	want := map[string][]imMsg{}
	for i, b := range bodies {
		p := imFolders[i%len(imFolders)]
		name := ""
		if !formats.IsInbox(p) {
			enc := make([]string, len(p))
			for j, c := range p {
				enc[j] = formats.EncodeMaildirComponent(c)
			}
			name = strings.Join(enc, ".")
		}
		k := imKey(b, nil, dates[i])
		k.flags = imLetters(flags[i])
		want[name] = append(want[name], k)
	}
	res := imPythonView(t, py, dir)
	got := map[string][]imMsg{}
	for name, msgs := range res {
		for _, m := range msgs {
			got[name] = append(got[name], imMsg{sha: m.SHA, flags: imSortLetters(m.Flags), date: m.Date})
		}
	}
	imCompare(t, "Python", got, want)
}

// imLetters is what our file names hold for flags: the system letters and,
// per folder, one keyword letter per keyword. Which letter a keyword gets
// depends on the order met, so only their count is compared: "kk" for two.
func imLetters(flags []string) string {
	sys := formats.FormatMaildirName("", flags)[3:]
	n := 0
	for _, f := range flags {
		if isKeyword(f) {
			n++
		}
	}
	return imSortLetters(sys + strings.Repeat("k", n))
}

func imSortLetters(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = 'k'
		}
	}
	slices.Sort(b)
	return string(b)
}

// imReadStore reads every selectable folder of a Maildir tree through our
// store, by display name, each message's bytes as view shows them, and
// the store's warnings.
func imReadStore(t *testing.T, root string, keepDates bool, view func([]byte) []byte) (map[string][]imMsg, []string) {
	t.Helper()
	got := map[string][]imMsg{}
	_, _, warnings := eachStored(t, root, func(folder string, m formats.Message, b []byte) {
		if !keepDates {
			m.Date = time.Time{}
		}
		got[folder] = append(got[folder], imKey(view(b), m.Flags, m.Date))
	})
	return got, warnings
}

// imSeed puts the sample into a Dovecot account over IMAP (so Dovecot
// writes the files) and returns what its own IMAP then serves, by folder:
// the reference a reader of its Maildir must agree with. Without keywords
// (but $Forwarded) or dates, those are left out of the reference (for a
// writer that keeps neither).
func imSeed(t *testing.T, s *dovecottest.Server, keywords, dates bool) map[string][]imMsg {
	bodies, flags, when := imSample(t)
	var seed []dovecottest.SeedMessage
	folders := []string{"INBOX", "Privé/Größe", "A&B", "Archive/2023", "日本語"}
	for i, b := range bodies {
		seed = append(seed, dovecottest.SeedMessage{Folder: folders[i%len(folders)], Body: b, Flags: flags[i], Date: when[i]})
	}
	s.Seed(t, "alice", seed)
	want := map[string][]imMsg{}
	for name, msgs := range s.Snapshot(t, "alice") {
		for _, m := range msgs {
			fl := m.Flags
			if !keywords {
				fl = slices.DeleteFunc(slices.Clone(fl), func(f string) bool { return isKeyword(f) && f != "$Forwarded" })
			}
			d := m.Date
			if !dates {
				d = time.Time{}
			}
			want[name] = append(want[name], imKey(nil, fl, d))
			want[name][len(want[name])-1].sha = m.SHA256
		}
	}
	if n := len(want["Privé/Größe"]); n == 0 {
		t.Fatalf("Dovecot holds no messages in Privé/Größe: %v", want)
	}
	return want
}

// Issue 12 items 7-9: Maildirs Dovecot wrote, in its default Maildir++
// layout (modified UTF-7 names) and with LAYOUT=fs (nested), are read with
// every folder's name decoded and every message's bytes, flags, keywords
// (dovecot-keywords) and date, and no warning.
func TestInteropImportDovecotMaildir(t *testing.T) {
	t.Parallel()
	for _, layout := range []string{"", ":LAYOUT=fs"} {
		t.Run("maildir"+layout, func(t *testing.T) {
			s := dovecottest.Start(t, dovecottest.Options{MailLocation: "maildir:~/Maildir" + layout})
			want := imSeed(t, s, true, true)
			got, warned := imReadStore(t, filepath.Join(s.Home("alice"), "Maildir"), true, imAsIMAPServes)
			imCompare(t, "our store", got, want)
			if len(warned) > 0 {
				t.Errorf("warnings: %q", warned)
			}
		})
	}
}

// Issue 12 items 7 and 9: Maildirs mbsync wrote from a Dovecot account, with
// SubFolders Verbatim (nested, INBOX in ROOT/INBOX) and SubFolders Maildir++
// (modified UTF-7 names), are read with every folder and message. mbsync
// 1.4 stores LF line endings, adds an X-TUID header line to each message,
// syncs no keywords but $Forwarded (as 'P') and keeps no internal date (the
// file's mtime is when it was synced): the bytes are compared without the
// X-TUID line, and keywords and dates are not compared.
func TestInteropImportMbsyncMaildir(t *testing.T) {
	t.Parallel()
	mbsync, err := exec.LookPath("mbsync")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mbsync (Debian's isync) is not installed (CI=true: not skipping)")
		}
		t.Skip("skipping: mbsync (Debian's isync) is not installed")
	}
	s := dovecottest.Start(t, dovecottest.Options{})
	want := imSeed(t, s, false, false)
	for _, style := range []string{"Verbatim", "Maildir++"} {
		t.Run(style, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "Mail")
			if err := os.Mkdir(root, 0o700); err != nil {
				t.Fatal(err)
			}
			where := fmt.Sprintf("Path %s/\nInbox %s/INBOX", root, root)
			if style == "Maildir++" {
				where = "Inbox " + root // Path is refused with Maildir++
			}
			conf := fmt.Sprintf(`IMAPAccount src
Host 127.0.0.1
Port %d
User alice
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore far
Account src

MaildirStore near
%s
SubFolders %s

Channel all
Far :far:
Near :near:
Patterns *
Create Near
Sync Pull
SyncState *
`, s.IMAPPort, s.Users["alice"], where, style)
			cfg := filepath.Join(t.TempDir(), "mbsyncrc")
			if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(mbsync, "-c", cfg, "-a").CombinedOutput(); err != nil {
				t.Fatalf("mbsync: %v\n%s", err, out)
			}
			got, warned := imReadStore(t, root, false, func(b []byte) []byte { return imAsIMAPServes(imStripTUID(b)) })
			imCompare(t, "our store", got, want)
			if len(warned) > 0 {
				t.Errorf("warnings: %q", warned)
			}
		})
	}
}

const imPythonWrite = `
import mailbox, sys, json
spec = json.load(sys.stdin)
md = mailbox.Maildir(sys.argv[1], factory=None, create=True)
for m in spec:
    box = md if m["folder"] == "" else (md.get_folder(m["folder"]) if m["folder"] in md.list_folders() else md.add_folder(m["folder"]))
    msg = mailbox.MaildirMessage(bytes.fromhex(m["hex"]))
    if m["flags"]:
        msg.set_subdir("cur")
        msg.set_flags(m["flags"])
    msg.set_date(m["date"])
    box.add(msg)
`

// Python's mailbox.Maildir writes raw UTF-8 folder names and no keywords,
// and writes a message through its email generator (which may refold
// headers and change line endings): every message comes back as Python
// itself reads it back, bytes, flags and date, and in the folder it put
// it in.
func TestInteropImportPythonMaildir(t *testing.T) {
	t.Parallel()
	py := imPython(t)
	bodies, flags, dates := imSample(t)
	folders := []string{"", "Privé", "Privé.Größe", "Work"}
	type spec struct {
		Folder string `json:"folder"`
		Hex    string `json:"hex"`
		Flags  string `json:"flags"`
		Date   int64  `json:"date"`
	}
	var specs []spec
	count := map[string]int{}
	for i, b := range bodies {
		f := folders[i%len(folders)]
		sys := slices.DeleteFunc(slices.Clone(flags[i]), isKeyword)
		specs = append(specs, spec{Folder: f, Hex: hex.EncodeToString(b), Flags: formats.FormatMaildirName("", sys)[3:], Date: dates[i].Unix()})
		count[f]++
	}
	in, _ := json.Marshal(specs)
	root := filepath.Join(t.TempDir(), "py")
	cmd := exec.Command(py, "-c", imPythonWrite, root)
	cmd.Stdin = bytes.NewReader(in)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := map[string][]imMsg{}
	for f, msgs := range imPythonView(t, py, root) {
		if len(msgs) != count[f] {
			t.Errorf("Python reads %d messages in %q, wrote %d", len(msgs), f, count[f])
		}
		name := strings.ReplaceAll(f, ".", "/")
		if f == "" {
			name = "INBOX"
		}
		for _, m := range msgs {
			_, fl, _ := formats.ParseMaildirName("x:2," + m.Flags)
			k := imKey(nil, fl, time.Unix(m.Date, 0))
			k.sha = m.SHA
			want[name] = append(want[name], k)
		}
	}
	got, warned := imReadStore(t, root, true, func(b []byte) []byte { return b })
	imCompare(t, "our store", got, want)
	if len(warned) > 0 {
		t.Errorf("warnings: %q", warned)
	}
}

// imPythonMsg is one message as Python's mailbox.Maildir reads it.
type imPythonMsg struct {
	SHA   string `json:"sha"`
	Flags string `json:"flags"`
	Date  int64  `json:"date"`
}

// imPythonView reads a Maildir with Python's mailbox.Maildir: by folder as
// Python names it ("" for the root), each message's SHA-256, flag letters
// and date.
func imPythonView(t *testing.T, py, root string) map[string][]imPythonMsg {
	t.Helper()
	cmd := exec.Command(py, "-c", imPythonRead, root)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var res map[string][]imPythonMsg
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return res
}
