package archive

// Interop, the mbox half of issue 12: our mbox archive opened by Dovecot
// (mail_location = mbox:ARCHIVE/mail, default settings), by mutt in batch
// mode and by formail; and the mboxes Dovecot, Python, formail and getmail6
// write, read back. (Python's mailbox and go-mbox reading our files are in
// interop_test.go.)

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/formats/corpus"
	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// ioDovecotHidden are the headers Dovecot 2.3's mbox storage hides from
// every message it serves (mbox_hide_headers in src/lib-storage/index/
// mbox/mbox-storage.c): its own metadata and the flags it reads from them.
var ioDovecotHidden = []string{"Content-Length", "Status", "X-IMAP", "X-IMAPbase", "X-Keywords", "X-Status", "X-UID"}

// ioDovecotView is a message as Dovecot serves it from our mbox file:
// the source bytes with our mboxrd escaping left in (Dovecot reads mboxo:
// a line "From " shows as ">From ", ">From " as ">>From "), the line
// ending we added to a message without one (mbox cannot end a message
// elsewhere), the header lines named in ioDovecotHidden taken out of its
// header block (with their continuation lines), every LF served as CRLF
// (a CR already before it stays one), and a NUL byte served as 0x80 (as
// from any Dovecot storage, see dovecottest).
func ioDovecotView(src []byte) []byte {
	b := ioEscape(src)
	if !bytes.HasSuffix(b, []byte("\n")) {
		if bytes.Contains(b, []byte("\r\n")) && !bytes.HasSuffix(b, []byte("\r")) {
			b = append(b, '\r')
		}
		b = append(b, '\n')
	}
	h := formats.HeaderBlock(b)
	out := stripHeaders(h, ioDovecotHidden)
	out = append(out, b[len(h):]...)
	return bytes.ReplaceAll(ioCRLF(out), []byte{0}, []byte{0x80})
}

// dovecotFlags are the flags Dovecot shows for a message of our mbox: the
// system flags of our status lines, together with those of the message's
// own Status and X-Status headers (Dovecot reads every such line of the
// header block), and the keywords of the first X-Keywords line of the
// header block (ours, where we wrote one) whose words the file's
// X-IMAPbase line all declares (Dovecot ignores a line with one undeclared
// word, so that a delivered message cannot bring keywords).
func (a *ioArchive) dovecotFlags(e ManifestEntry, src []byte) []string {
	var flags []string
	h := formats.HeaderBlock(src)
	if st := ioStatus(e.Flags, src); len(st) > 0 { // no status lines before a leading blank
		flags = append(flags, e.Flags...)
		h = append(st, h...)
	}
	flags = slices.DeleteFunc(append(flags, mboxFlags(formats.HeaderBlock(src))...), func(f string) bool { return !strings.HasPrefix(f, "\\") })
	declared := strings.Fields(formats.HeaderValue(a.base[e.File], "X-IMAPbase"))
	for _, line := range bytes.Split(h, []byte("\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(string(name), "X-Keywords") {
			continue
		}
		words := strings.Fields(string(value))
		if len(words) > 0 && !slices.ContainsFunc(words, func(w string) bool { return len(declared) < 2 || !slices.Contains(declared[2:], w) }) {
			flags = append(flags, words...)
			break
		}
	}
	flags = formats.CleanFlags(flags)
	sort.Strings(flags)
	return append([]string{}, flags...)
}

// ioEscape puts a '>' before every line matching ^>*From (mboxrd).
func ioEscape(b []byte) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	for i, l := range lines {
		if bytes.HasPrefix(bytes.TrimLeft(l, ">"), []byte("From ")) {
			lines[i] = append([]byte{'>'}, l...)
		}
	}
	return bytes.Join(lines, nil)
}

// ioCRLF turns every LF not preceded by CR into CRLF.
func ioCRLF(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/20)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

func ioSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ioServeWithDovecot copies the mail of an mbox archive and starts a
// Dovecot with mail_location = mbox:COPY and nothing else changed. The
// folder files are read-only for Dovecot's mail user (as an archive served
// by Dovecot should be: Dovecot otherwise writes X-IMAPbase, X-UID and
// padding into them); the directories are its own, for its .imap indexes.
func ioServeWithDovecot(t *testing.T, archive string) (*dovecottest.Server, string) {
	t.Helper()
	parent, err := os.MkdirTemp("", "mailferry-mbox-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	root := filepath.Join(parent, "mail")
	if out, err := exec.Command("cp", "-a", filepath.Join(archive, mboxMailDir), root).CombinedOutput(); err != nil {
		t.Fatalf("copying the archive's mail: %v: %s", err, out)
	}
	s := dovecottest.Start(t, dovecottest.Options{MailLocation: "mbox:" + root})
	u, err := user.Lookup(dovecottest.MailUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	os.Chmod(parent, 0o755)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return os.Chown(p, uid, gid)
		default:
			return os.Chmod(p, 0o444)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

// Issue 12 item 5: Dovecot pointed at our mbox archive (default settings)
// lists exactly the source's folders under their names (no MANIFEST.jsonl,
// no length records, no ".mbox" suffix, no %2E for a '.'), and serves every
// message with the source's bytes (modulo ioDovecotView: the headers Dovecot
// documents it hides, CRLF, the line ending a message without one got),
// its flags from our status lines (dovecotFlags), keywords included: the
// first message of each file declares them in an X-IMAPbase line, and its
// date from the From_ line.
func TestInteropDovecotServesMboxArchive(t *testing.T) {
	a := ioBuildMboxArchive(t)
	s, _ := ioServeWithDovecot(t, a.dir)

	var names []string
	for _, d := range s.Folders(t, "alice") {
		names = append(names, d.Mailbox)
	}
	sort.Strings(names)
	want := []string{"Archive", "Archive/2023", "INBOX", "Lists", "Lists/go.nuts", "Privé"}
	if !slices.Equal(names, want) {
		t.Fatalf("Dovecot lists %q, want %q", names, want)
	}

	snap := s.Snapshot(t, "alice")
	byFolder := map[string][]ManifestEntry{}
	for _, es := range a.byFile() {
		byFolder[formats.DisplayName(es[0].DestFolder)] = es
	}
	total, keywords := 0, map[string]int{}
	for folder, es := range byFolder {
		got := snap[folder]
		for _, m := range got {
			for _, f := range m.Flags {
				if !strings.HasPrefix(f, "\\") {
					keywords[f]++
				}
			}
		}
		if len(got) != len(es) {
			t.Errorf("%s: Dovecot serves %d messages, the archive holds %d", folder, len(got), len(es))
			for i, e := range es {
				if got[i].Size != int64(len(ioDovecotView(a.source[e.SHA256]))) {
					t.Logf("DEBUG first diff at %d: %s got %d want %d", i, e.ID, got[i].Size, len(ioDovecotView(a.source[e.SHA256])))
					break
				}
			}
			continue
		}
		for i, e := range es {
			src := a.source[e.SHA256]
			if g := got[i]; g.SHA256 != ioSHA(ioDovecotView(src)) {
				t.Errorf("%s: message %d (source %s): Dovecot serves %d bytes that are not the source's (%d bytes) modulo its hidden headers and CRLF",
					folder, i, e.ID, g.Size, len(src))
			}
			if wantFlags := a.dovecotFlags(e, src); !slices.Equal(got[i].Flags, wantFlags) {
				t.Errorf("%s: message %d (source %s): flags %q, want %q", folder, i, e.ID, got[i].Flags, wantFlags)
			}
			if d, _ := time.Parse(time.RFC3339, e.Date); !got[i].Date.Equal(d) {
				t.Errorf("%s: message %d: date %v, want %v", folder, i, got[i].Date, d)
			}
		}
		total += len(got)
	}
	if total != len(a.entries) {
		t.Errorf("Dovecot serves %d messages, the archive holds %d", total, len(a.entries))
	}
	for _, k := range ioKeywords {
		if keywords[k] == 0 {
			t.Errorf("Dovecot shows keyword %s on no message (X-IMAPbase lines: %q)", k, a.base)
		}
	}
}

// ioReadFolder lists and fetches one folder of a store: bytes by message,
// and the messages (ID, flags, date).
func ioReadFolder(t *testing.T, s *Mbox, f formats.Folder) ([][]byte, []formats.Message) {
	t.Helper()
	ctx := context.Background()
	_, list, err := s.List(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	err = s.Fetch(ctx, f, list, func(m formats.Message, body io.Reader) error {
		b, err := io.ReadAll(body)
		bodies = append(bodies, b)
		if err == nil && int64(len(b)) != m.Size {
			t.Errorf("message %s: List says %d bytes, Fetch gives %d", m.ID, m.Size, len(b))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return bodies, list
}

// Issue 12 item 12: another program's mbox file is read as that program
// shows it: the state headers Dovecot keeps in an mbox it serves
// (X-IMAPbase, X-UID, Status, X-Status, X-Keywords, Content-Length) are
// taken out of the messages (their flags and keywords kept), an mboxo
// ">From " line keeps its '>', and a last message not followed by a blank
// line keeps its final newline.
func TestMboxForeignFileReadAsItsWriterShowsIt(t *testing.T) {
	dir := t.TempDir()
	file := "From alice@example.com Mon Jan  1 00:00:00 2001\n" +
		"X-IMAPbase: 1700000000 0000000003 Work\n" +
		"Subject: one\nStatus: RO\nX-Status: A\nX-Keywords: Work\nX-UID: 1\nContent-Length: 25\n\n" +
		"quoted:\n>From the start\n\n\n" +
		"From bob@example.com Tue Jan  2 00:00:00 2001\n" +
		"Subject: two\nX-UID: 2\nStatus: O\n\nno blank line after me\n"
	path := filepath.Join(dir, "saved.mbox")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenMbox(path, MboxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bodies, list := ioReadFolder(t, s, formats.Folder{Path: []string{"INBOX"}})
	want := []string{"Subject: one\n\nquoted:\n>From the start\n\n", "Subject: two\n\nno blank line after me\n"}
	if len(bodies) != len(want) {
		t.Fatalf("%d messages, want %d", len(bodies), len(want))
	}
	for i := range want {
		if string(bodies[i]) != want[i] {
			t.Errorf("message %d: %q, want %q", i, bodies[i], want[i])
		}
	}
	if f := list[0].Flags; !slices.Equal(f, []string{formats.FlagSeen, formats.FlagAnswered, "Work"}) {
		t.Errorf("flags %q", f)
	}
}

// ioSample is every step-th message of the shared corpus, with flags and a
// date each, spread over folders.
type ioMessage struct {
	name   string
	body   []byte
	flags  []string
	date   time.Time
	folder string
}

func ioSample(t *testing.T, step int, folders []string) []ioMessage {
	t.Helper()
	names, bodies := corpus.Files(t, "dev")
	var out []ioMessage
	for i := 0; i < len(names); i += step {
		n := len(out)
		out = append(out, ioMessage{name: names[i], body: bodies[i], flags: ioFlags(n),
			date: time.Date(2021, 3, 1+n%28, n%24, n%60, 7, 0, time.UTC), folder: folders[n%len(folders)]})
	}
	return out
}

// Issue 12 items 8, 10 and 12, with the real program: an mbox tree that
// Dovecot's mbox storage wrote (APPEND over IMAP into mail_location =
// mbox:~/mail: inbox, nested folders, names in modified UTF-7, its .imap
// index directories, X-IMAPbase/X-UID/Status/X-Status/X-Keywords headers)
// reads back with every folder, and every message as Dovecot's own IMAP
// serves it (its state headers hidden; modulo CRLF and NUL, which Dovecot
// serves as CRLF and 0x80), its flags, keywords and date.
func TestInteropReadDovecotMbox(t *testing.T) {
	s := dovecottest.Start(t, dovecottest.Options{MailLocation: "mbox:~/mail"})
	folders := []string{"INBOX", "Work", "Lists/go.nuts", "Privé"}
	msgs := ioSample(t, 16, folders)
	c := s.Client(t, "alice")
	for _, f := range folders[1:] {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", f, err)
		}
	}
	for _, m := range msgs {
		var flags []imap.Flag
		for _, f := range m.flags {
			flags = append(flags, imap.Flag(f))
		}
		cmd := c.Append(m.folder, int64(len(m.body)), &imap.AppendOptions{Flags: flags, Time: m.date})
		_, werr := cmd.Write(m.body)
		cerr := cmd.Close()
		if _, err := cmd.Wait(); err != nil || werr != nil || cerr != nil {
			t.Fatalf("APPEND %s: %v %v %v", m.name, err, werr, cerr)
		}
	}
	snap := s.Snapshot(t, "alice") // Dovecot's own view, and its state headers written
	raw, err := os.ReadFile(filepath.Join(s.Home("alice"), "mail", "inbox"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"\nX-IMAPbase: ", "\nX-UID: ", "\nStatus: ", "\nX-Keywords: "} {
		if !bytes.Contains(raw, []byte(h)) {
			t.Fatalf("Dovecot wrote no %q into its inbox: nothing to hide", h[1:])
		}
	}

	st, err := OpenMbox(filepath.Join(s.Home("alice"), "mail"), MboxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range got {
		if !f.NoSelect {
			names = append(names, formats.DisplayName(f.Path))
		}
	}
	if want := []string{"INBOX", "Lists/go.nuts", "Privé", "Work"}; !slices.Equal(names, want) {
		t.Fatalf("folders %q, want %q", names, want)
	}
	total := 0
	defer func() {
		if total != len(msgs) {
			t.Errorf("read %d messages, appended %d", total, len(msgs))
		}
	}()
	for _, f := range got {
		if f.NoSelect {
			continue
		}
		name := formats.DisplayName(f.Path)
		bodies, list := ioReadFolder(t, st, f)
		served := snap[name]
		if len(bodies) != len(served) {
			t.Errorf("%s: read %d messages, Dovecot serves %d", name, len(bodies), len(served))
			continue
		}
		total += len(bodies)
		for i, b := range bodies {
			if ioSHA(bytes.ReplaceAll(ioCRLF(b), []byte{0}, []byte{0x80})) != served[i].SHA256 {
				t.Errorf("%s: message %d: read %d bytes that are not what Dovecot serves (%d bytes)", name, i, len(b), served[i].Size)
			}
			flags := slices.Clone(list[i].Flags)
			sort.Strings(flags)
			if !slices.Equal(flags, served[i].Flags) {
				t.Errorf("%s: message %d: flags %q, Dovecot says %q", name, i, flags, served[i].Flags)
			}
			if !list[i].Date.Equal(served[i].Date) {
				t.Errorf("%s: message %d: date %v, Dovecot says %v", name, i, list[i].Date, served[i].Date)
			}
		}
	}
}

// ioNeed returns the path of a program the test needs, or skips saying
// why (fails under CI=true, where scripts/test installs it).
func ioNeed(t *testing.T, prog, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (Debian's %s) is not installed (CI=true: not skipping)", prog, pkg)
		}
		t.Skipf("skipping: %s (Debian's %s) is not installed", prog, pkg)
	}
	return p
}

// ioWriteSample writes the sample's messages to dir/NAME (for programs
// that take files).
func ioWriteSample(t *testing.T, dir string, msgs []ioMessage) {
	t.Helper()
	for i, m := range msgs {
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), m.body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// ioPythonWrite writes an mbox with Python's mailbox.mbox: for each
// message file N in argv[2:] (with flags and a Unix date in the
// environment), add it with its From_ line and flags; then print, as
// JSON, what Python itself reads back: each message's bytes and flags.
const ioPythonWrite = `
import base64, json, mailbox, os, sys, time
mb = mailbox.mbox(sys.argv[1])
for path in sys.argv[2:]:
    m = mailbox.mboxMessage(open(path, 'rb').read())
    m.set_from('sender@example.com', time.gmtime(int(os.environ['DATE_' + os.path.basename(path)])))
    m.set_flags(os.environ['FLAGS_' + os.path.basename(path)])
    mb.add(m)
mb.flush()
mb.close()
mb = mailbox.mbox(sys.argv[1], create=False)
json.dump([{"flags": mb.get_message(k).get_flags(), "b64": base64.b64encode(mb.get_bytes(k)).decode()} for k in mb.iterkeys()], sys.stdout)
`

// ioMboxLetters are Python's (and mutt's) Status/X-Status letters.
func ioMboxLetters(flags []string) string {
	var b strings.Builder
	for _, m := range []struct {
		flag string
		c    byte
	}{{formats.FlagSeen, 'R'}, {formats.FlagAnswered, 'A'}, {formats.FlagFlagged, 'F'}, {formats.FlagDeleted, 'D'}} {
		if slices.Contains(flags, m.flag) {
			b.WriteByte(m.c)
		}
	}
	return b.String()
}

// The reverse for Python (issue 12 "theirs, read by us"): an mbox that
// Python's mailbox.mbox wrote reads back with every message as Python
// itself reads it (its own Status/X-Status headers are part of the bytes,
// as Python shows them), its flags and its From_ line's date.
func TestInteropReadPythonMbox(t *testing.T) {
	py := ioNeed(t, "python3", "python3")
	msgs := ioSample(t, 32, []string{"INBOX"})
	dir := t.TempDir()
	ioWriteSample(t, dir, msgs)
	path := filepath.Join(dir, "python.mbox")
	args := []string{"-c", ioPythonWrite, path}
	env := os.Environ()
	for i, m := range msgs {
		args = append(args, filepath.Join(dir, strconv.Itoa(i)))
		env = append(env, fmt.Sprintf("DATE_%d=%d", i, m.date.Unix()), fmt.Sprintf("FLAGS_%d=%s", i, ioMboxLetters(m.flags)))
	}
	cmd := exec.Command(py, args...)
	cmd.Env, cmd.Stderr = env, os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var python []struct{ Flags, B64 string }
	if err := json.Unmarshal(out, &python); err != nil {
		t.Fatal(err)
	}
	st, err := OpenMbox(path, MboxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bodies, list := ioReadFolder(t, st, formats.Folder{Path: []string{"INBOX"}})
	if len(bodies) != len(msgs) || len(python) != len(msgs) {
		t.Fatalf("read %d messages, Python reads %d, wrote %d", len(bodies), len(python), len(msgs))
	}
	for i, b := range bodies {
		want, _ := base64.StdEncoding.DecodeString(python[i].B64)
		if !bytes.Equal(b, want) {
			t.Errorf("message %d (%s): %d bytes, Python reads %d", i, msgs[i].name, len(b), len(want))
		}
		if got := ioMboxLetters(list[i].Flags); ioSorted(got) != ioSorted(strings.Trim(python[i].Flags, "O")) {
			t.Errorf("message %d: flags %q, Python says %q", i, list[i].Flags, python[i].Flags)
		}
		if !list[i].Date.Equal(msgs[i].date) {
			t.Errorf("message %d: date %v, want %v", i, list[i].Date, msgs[i].date)
		}
	}
}

// The reverse for formail: an mbox formail made (each message piped
// through formail, which adds a From_ line, escapes "From " lines as
// ">From " and ends the message with a blank line) reads back with every
// message as formail wrote it, framing taken away. (formail -s itself
// merges two of these: it does not split before a message whose first
// line starts with a byte-order mark.)
func TestInteropReadFormailMbox(t *testing.T) {
	formail := ioNeed(t, "formail", "procmail")
	msgs := ioSample(t, 32, []string{"INBOX"})
	path := filepath.Join(t.TempDir(), "formail.mbox")
	var all []byte
	var want [][]byte
	for _, m := range msgs {
		cmd := exec.Command(formail)
		cmd.Stdin = bytes.NewReader(m.body)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("formail: %v", err)
		}
		all = append(all, out...)
		_, msg, _ := bytes.Cut(out, []byte("\n"))
		want = append(want, bytes.TrimSuffix(msg, []byte("\n")))
	}
	if err := os.WriteFile(path, all, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := OpenMbox(path, MboxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bodies, _ := ioReadFolder(t, st, formats.Folder{Path: []string{"INBOX"}})
	if len(bodies) != len(msgs) {
		t.Fatalf("read %d messages, formail wrote %d", len(bodies), len(msgs))
	}
	for i, b := range bodies {
		if !bytes.Equal(b, want[i]) {
			t.Errorf("message %d (%s): %d bytes, formail wrote %d", i, msgs[i].name, len(b), len(want[i]))
		}
	}
}

// ioFormailSplit returns the messages formail -s finds in an mbox file,
// each without its From_ line and without the blank line before the next
// one (what formail -s hands its command, framing taken away).
func ioFormailSplit(t *testing.T, formail, path string) [][]byte {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(formail, "-s", "sh", "-c", `cat > "$0/$FILENO"`, dir)
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("formail -s: %v: %s", err, out)
	}
	ents, _ := os.ReadDir(dir)
	sort.Slice(ents, func(i, j int) bool {
		a, _ := strconv.Atoi(ents[i].Name())
		b, _ := strconv.Atoi(ents[j].Name())
		return a < b
	})
	var out [][]byte
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if i := bytes.IndexByte(b, '\n'); bytes.HasPrefix(b, []byte("From ")) && i >= 0 {
			b = b[i+1:]
		}
		out = append(out, bytes.TrimSuffix(b, []byte("\n")))
	}
	return out
}

// ioFromLines matches lines that mbox writers escape.
var ioFromLines = regexp.MustCompile(`(?m)^>*From `)

// The reverse for getmail6: the mbox getmail6's Mboxrd destination writes
// (retrieving over IMAP from Dovecot) reads back with every message getmail
// retrieved, each exactly the bytes getmail wrote between its From_ line and
// the blank line (getmail re-serialises messages with Python's email
// package: its own Return-Path line on top, LF line endings, headers
// refolded; so the message is checked against the source by its
// Message-ID), the date getmail put on the From_ line and the flags of the
// message's own Status headers. Without a ">>From " line nothing tells the
// file from mboxo, and it is read as mboxo (as mutt and Python read it).
func TestInteropReadGetmailMbox(t *testing.T) {
	getmail := ioNeed(t, "getmail", "getmail6")
	s := dovecottest.Start(t, dovecottest.Options{})
	msgs := ioSample(t, 128, []string{"INBOX"})
	var seed []dovecottest.SeedMessage
	for _, m := range msgs {
		seed = append(seed, dovecottest.SeedMessage{Body: m.body, Flags: m.flags, Date: m.date})
	}
	s.Seed(t, "alice", seed)
	dir, err := os.MkdirTemp("", "mailferry-getmail-") // getmail's mail user must reach it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	mbox := filepath.Join(dir, "mbox")
	if err := os.WriteFile(mbox, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rc := fmt.Sprintf("[retriever]\ntype = SimpleIMAPRetriever\nserver = 127.0.0.1\nport = %d\nusername = alice\npassword = %s\ntimeout = 5\n\n"+
		"[destination]\ntype = Mboxrd\npath = %s\n\n"+
		"[options]\nread_all = true\ndelete = false\ndelivered_to = false\nreceived = false\nverbose = 1\n",
		s.IMAPPort, s.Users["alice"], mbox)
	if err := os.WriteFile(filepath.Join(dir, "getmailrc"), []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	// As the mail user: getmail will not deliver as root. Its delivery
	// child now and then never answers ("waiting child pid timed out", a
	// getmail6 6.18 bug): then it is run again into an empty mbox.
	runuser := ioNeed(t, "runuser", "util-linux")
	s.GiveToMailUser(t, dir)
	began := time.Now().Truncate(time.Second)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, runuser, "-u", dovecottest.MailUser, "--", getmail,
			"--rcfile", filepath.Join(dir, "getmailrc"), "--getmaildir", dir)
		cmd.WaitDelay = time.Second
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil {
			break
		}
		if attempt == 5 || !bytes.Contains(out, []byte("waiting child pid")) {
			t.Fatalf("getmail: %v: %s", err, out)
		}
		t.Logf("getmail's delivery child hung (attempt %d), running it again", attempt)
		if err := os.Truncate(mbox, 0); err != nil {
			t.Fatal(err)
		}
	}
	ended := time.Now()

	st, err := OpenMbox(mbox, MboxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bodies, list := ioReadFolder(t, st, formats.Folder{Path: []string{"INBOX"}})
	if len(bodies) != len(msgs) {
		t.Fatalf("read %d messages, getmail retrieved %d", len(bodies), len(msgs))
	}
	raw, err := os.ReadFile(mbox)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("\n>>From ")) {
		t.Fatal("the sample now holds a >From line: this test's framing check reads mboxo")
	}
	var framed [][]byte // split independently: getmail writes a blank line before each From_ line
	parts := bytes.Split(append([]byte("\n\n"), raw...), []byte("\n\nFrom "))[1:]
	for i, part := range parts {
		_, msg, _ := bytes.Cut(part, []byte("\n"))
		if i == len(parts)-1 {
			framed = append(framed, bytes.TrimSuffix(msg, []byte("\n")))
		} else {
			framed = append(framed, append(msg, '\n'))
		}
	}
	if len(framed) != len(msgs) {
		t.Fatalf("the file holds %d From_ lines after a blank line, getmail retrieved %d", len(framed), len(msgs))
	}
	for i, b := range bodies {
		if !bytes.Equal(b, framed[i]) {
			t.Errorf("message %d (%s): %d bytes, getmail wrote %d", i, msgs[i].name, len(b), len(framed[i]))
		}
		if !bytes.HasPrefix(b, []byte("Return-Path:")) {
			t.Errorf("message %d: no Return-Path line on top", i)
		}
		if id := strings.TrimSpace(formats.HeaderValue(formats.HeaderBlock(msgs[i].body), "Message-ID")); !bytes.Contains(b, []byte(id)) {
			t.Errorf("message %d (%s): not the message retrieved: no %q", i, msgs[i].name, id)
		}
		own := mboxFlags(formats.HeaderBlock(msgs[i].body))
		if d := list[i].Date; d.Before(began) || d.After(ended) || !slices.Equal(list[i].Flags, own) {
			t.Errorf("message %d: date %v (getmail ran %v to %v), flags %q, want %q", i, d, began, ended, list[i].Flags, own)
		}
	}
}

// oursAsMboxo is a message of our archive as a reader that takes no '>'
// away (mutt, formail, Python, Dovecot) shows it, framing taken away: our
// status lines (none before a leading blank), the message with our mboxrd
// escapes left in, and the line ending we added to a message without one.
func (a *ioArchive) oursAsMboxo(e ManifestEntry, src []byte) []byte {
	want := append(a.added(e, src), ioEscape(src)...)
	if !bytes.HasSuffix(src, []byte("\n")) {
		if bytes.Contains(src, []byte("\r\n")) && !bytes.HasSuffix(src, []byte("\r")) {
			want = append(want, '\r')
		}
		want = append(want, '\n')
	}
	return want
}

// formail reads our mbox archive (issue 12 items 3 and 4): formail -s
// splits each file into exactly the messages the manifest lists (it merged
// a message that lacked a final newline with the next one before a blank
// line preceded every From_ line), each our status lines and the source
// bytes with our escapes (formail takes no '>' away), except that formail
// inserts an LF where it takes a header to end without an LF-only blank
// line (a CRLF message, a malformed header line).
func TestInteropFormailReadsMboxArchive(t *testing.T) {
	formail := ioNeed(t, "formail", "procmail")
	a := ioBuildMboxArchiveOf(t, 8)
	for file, es := range a.byFile() {
		got := ioFormailSplit(t, formail, filepath.Join(a.dir, filepath.FromSlash(file)))
		if len(got) != len(es) {
			t.Errorf("%s: formail -s finds %d messages, the manifest lists %d", file, len(got), len(es))
			continue
		}
		for i, e := range es {
			if want := a.oursAsMboxo(e, a.source[e.SHA256]); !bytes.Equal(got[i], want) && !ioOneLFMore(got[i], want) {
				t.Errorf("%s: message %d (source %s): formail gives %d bytes, want %d", file, i, e.ID, len(got[i]), len(want))
			}
		}
	}
}

// ioOneLFMore reports whether got is want with one LF inserted.
func ioOneLFMore(got, want []byte) bool {
	if len(got) != len(want)+1 {
		return false
	}
	i := 0
	for i < len(want) && got[i] == want[i] {
		i++
	}
	return got[i] == '\n' && bytes.Equal(got[i+1:], want[i:])
}

// ioMuttSep separates the messages mutt pipes in one go.
const ioMuttSep = "\n<<mailferry-interop-separator>>\n"

// ioMutt runs mutt in batch mode on an mbox file (or a Maildir), under script(1) for the
// terminal it wants: for each pattern (~A every message, ~R read, ...) the
// messages it matches are piped into OUT/NAME (in mutt's order).
func ioMutt(t *testing.T, mutt, file string, patterns map[string]string) map[string][][]byte {
	t.Helper()
	script := ioNeed(t, "script", "bsdutils")
	dir := t.TempDir()
	rc := "set folder=\"" + dir + "\"\nset pipe_split=no\nset pipe_decode=no\nset wait_key=no\nset read_only=yes\nset quit=yes\n" +
		"set sort=mailbox\nset pipe_sep=\"" + strings.ReplaceAll(ioMuttSep, "\n", "\\n") + "\"\n"
	if err := os.WriteFile(filepath.Join(dir, "muttrc"), []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	// One mutt per pattern: <tag-prefix> pipes the current message when
	// nothing matched, and <tag-prefix-cond> then skips the rest.
	for name, pat := range patterns {
		push := fmt.Sprintf("push \"<tag-pattern>%s<enter><tag-prefix-cond><pipe-message>cat > %s<enter><end-cond><quit>\"", pat, filepath.Join(dir, name))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, script, "-qec", `"$MUTT" -n -F "$MUTTRC" -f "$MBOX" -e "$PUSH"`, "/dev/null")
		cmd.Env = append(os.Environ(), "TERM=dumb", "HOME="+dir, "MUTT="+mutt, "MUTTRC="+filepath.Join(dir, "muttrc"), "MBOX="+file, "PUSH="+push)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("mutt: %v: %q", err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil && pat == "~A" {
			t.Fatalf("mutt piped nothing; its screen: %q", out[max(0, len(out)-2000):])
		}
	}
	got := map[string][][]byte{}
	for name := range patterns {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue // no message matched
		}
		for _, m := range bytes.Split(bytes.TrimSuffix(b, []byte(ioMuttSep)), []byte(ioMuttSep)) {
			if fi, err := os.Stat(file); err == nil && fi.IsDir() {
				got[name] = append(got[name], m) // a Maildir: mutt pipes no From_ line
				continue
			}
			if _, msg, ok := bytes.Cut(m, []byte("\n")); ok && bytes.HasPrefix(m, []byte("From ")) {
				got[name] = append(got[name], msg) // without the From_ line
			} else {
				t.Errorf("mutt piped a message without its From_ line: %q", m[:min(len(m), 80)])
			}
		}
	}
	return got
}

// muttView is a message of our archive as mutt pipes it (the From_ line
// taken away): as oursAsMboxo, with the blank line that ends the header
// block written as LF (mutt writes its own after the header it copied).
func (a *ioArchive) muttView(e ManifestEntry, src []byte) []byte {
	b := a.oursAsMboxo(e, src)
	h := formats.HeaderBlock(b)
	if rest, ok := bytes.CutPrefix(b[len(h):], []byte("\r\n")); ok && len(h) < len(b) {
		return append(append(slices.Clone(h), '\n'), rest...)
	}
	return b
}

// ioPlainHeader reports whether src has a well-formed header block
// (header fields and continuation lines, then a blank line) without Status
// or X-Status lines of its own.
func ioPlainHeader(src []byte) bool {
	h := formats.HeaderBlock(src)
	if len(h) == len(src) || len(mboxFlags(h)) > 0 || formats.HeaderValue(h, "Status") != "" {
		return false
	}
	for i, l := range bytes.SplitAfter(h, []byte("\n")) {
		l = bytes.TrimRight(l, "\r\n")
		if len(l) > 0 && !(i > 0 && (l[0] == ' ' || l[0] == '\t')) && !regexp.MustCompile(`^[!-9;-~]+:`).Match(l) {
			return false
		}
	}
	return true
}

// es2bytes is each entry's message as mutt shows it.
func es2bytes(es []ManifestEntry, a *ioArchive) [][]byte {
	var out [][]byte
	for _, e := range es {
		out = append(out, a.muttView(e, a.source[e.SHA256]))
	}
	return out
}

// mutt 2.2 reads our mbox archive in batch mode (issue 12 items 3 and 4):
// every message the manifest lists, each our status lines and the source
// bytes with our escapes (mutt takes no '>' away; muttView), and read,
// replied, flagged and deleted as our Status/X-Status lines say (mutt has
// no pattern for a draft, and shows X-Keywords only as a header). Checked
// on the messages with a well-formed header of their own without Status
// lines: mutt rewrites a malformed header, and adds the flags of a
// message's own Status lines to ours.
func TestInteropMuttReadsMboxArchive(t *testing.T) {
	mutt := ioNeed(t, "mutt", "mutt")
	a := ioBuildMboxArchiveOf(t, 8)
	letters := map[string]string{"read": formats.FlagSeen, "replied": formats.FlagAnswered, "flagged": formats.FlagFlagged, "deleted": formats.FlagDeleted}
	for file, es := range a.byFile() {
		got := ioMutt(t, mutt, filepath.Join(a.dir, filepath.FromSlash(file)),
			map[string]string{"all": "~A", "read": "~R", "replied": "~Q", "flagged": "~F", "deleted": "~D"})
		if len(got["all"]) != len(es) {
			t.Errorf("%s: mutt reads %d messages, the manifest lists %d", file, len(got["all"]), len(es))
			continue
		}
		count := func(list [][]byte, m []byte) int {
			n := 0
			for _, x := range list {
				if bytes.Equal(x, m) {
					n++
				}
			}
			return n
		}
		checked := 0
		defer func(file string, n int) {
			if checked < n/3 {
				t.Errorf("%s: only %d of %d messages checked", file, checked, n)
			}
		}(file, len(es))
		for i, e := range es {
			src := a.source[e.SHA256]
			want := a.muttView(e, src)
			if !ioPlainHeader(src) {
				continue // mutt rewrites a malformed header, or merges flags with its own Status lines
			}
			checked++
			if count(got["all"], want) != count(es2bytes(es, a), want) {
				t.Errorf("%s: message %d (source %s): mutt does not show it as we wrote it", file, i, e.ID)
				continue
			}
			for name, flag := range letters {
				has := slices.Contains(e.Flags, flag) && len(ioStatus(e.Flags, src)) > 0
				if (count(got[name], want) > 0) != has {
					t.Errorf("%s: message %d (source %s): mutt's %s is %v, want %v", file, i, e.ID, name, !has, has)
				}
			}
		}
	}
}

// Issue 12 item 11, against mutt: a message whose Content-Length covers a
// From_ line in its body is one message for mutt and for us (we read 3
// before, mutt 2), and we say so in a warning.
func TestInteropContentLengthReadAsMutt(t *testing.T) {
	body := "quoted below:\n\nFrom bob@example.com Tue Feb  2 00:00:00 2021\nSubject: inner\n\nhi\n"
	file := "From a@example.com Mon Jan  1 00:00:00 2001\nSubject: one\nMessage-ID: <one@example.com>\nContent-Length: " +
		strconv.Itoa(len(body)) + "\n\n" + body + "\nFrom c@example.com Wed Mar  3 00:00:00 2021\nSubject: two\nMessage-ID: <two@example.com>\n\nbye\n\n"
	path := filepath.Join(t.TempDir(), "saved")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	var warned []string
	st, err := OpenMbox(path, MboxOptions{ReadOnly: true, Warn: func(f string, w formats.MboxWarning) { warned = append(warned, w.Reason) }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bodies, _ := ioReadFolder(t, st, formats.Folder{Path: []string{"INBOX"}})
	if len(bodies) != 2 || !bytes.HasSuffix(bodies[0], []byte(body)) || len(warned) != 1 {
		t.Errorf("read %d messages (want 2, the first ending in its Content-Length body), warnings %q", len(bodies), warned)
	}
	mutt := ioNeed(t, "mutt", "mutt")
	if got := ioMutt(t, mutt, path, map[string]string{"all": "~A"}); len(got["all"]) != 2 {
		t.Errorf("mutt reads %d messages, want 2", len(got["all"]))
	}
}
