package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// rpOpen opens (or creates) an archive and its manifest Writer, as the
// archive command does.
func rpOpen(t *testing.T, format, dir string) *Writer {
	t.Helper()
	var st Store
	var err error
	if format == "mbox" {
		st, err = OpenMbox(dir, MboxOptions{Create: true})
	} else {
		st, err = OpenMaildir(dir, MaildirOptions{Create: true})
	}
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(dir, st)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	return w
}

// rpIndexed returns the IDs Index reports for a folder.
func rpIndexed(t *testing.T, w *Writer, f formats.Folder) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	err := w.Index(context.Background(), f, func(string) bool { return false }, func(id string, _ formats.Key) error {
		ids[id] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// rpRepair damages a fresh archive with damage (which returns the lost
// entry), then does what the engine does on a rerun: Ensure the folder,
// index it, and store again the message whose key the index lacks. The
// rerun must record the repair, and verify must then pass.
func rpRepair(t *testing.T, format string, damage func(dir string, e []ManifestEntry) ManifestEntry, why string) (repair ManifestEntry) {
	ctx := context.Background()
	msgs := mdVariedMessages(12)
	dir, entries := tpArchive(t, format, len(msgs))
	// As Folders reports them: a Maildir folder's count of files (a lost
	// file shows in the count the engine compares; Folders reads no
	// manifest), an mbox folder's validity.
	listed := func() map[string][2]uint32 {
		w := rpOpen(t, format, dir)
		defer w.Close()
		fs, err := w.Folders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v := map[string][2]uint32{}
		for _, f := range fs {
			v[formats.DisplayName(f.Path)] = [2]uint32{f.Validity, f.Messages}
		}
		return v
	}
	whole := listed()
	lost := damage(dir, entries)
	if name := formats.DisplayName(lost.DestFolder); listed()[name] == whole[name] {
		t.Errorf("Folders reports %s as before (validity, count) after it lost a message", name)
	}
	if rep := vfVerify(t, dir, VerifyOptions{}); rep.OK() {
		t.Fatal("verify passes the damaged archive")
	}
	m := msgs[lost.Seq-1]

	w := rpOpen(t, format, dir)
	f, err := w.Ensure(ctx, m.folder)
	if err != nil {
		t.Fatalf("Ensure on the rerun: %v", err)
	}
	if f.Validity == 1 && format == "maildir" {
		t.Errorf("Ensure reports Validity 1 for a folder that lost a message")
	}
	if f.UIDNext != 0 {
		t.Errorf("Ensure reports UIDNext %d", f.UIDNext)
	}
	n := 0
	for _, e := range entries {
		if strings.Join(e.DestFolder, "/") == strings.Join(lost.DestFolder, "/") {
			n++
		}
	}
	if int(f.Messages) != n-1 && format == "maildir" {
		t.Errorf("Ensure reports %d messages, %d are there", f.Messages, n-1)
	}
	if idx := rpIndexed(t, w, f); idx[lost.DestID] {
		t.Errorf("Index reports the lost message %s", lost.DestID)
	}
	if _, err := w.Store(ctx, f, formats.Message{ID: "again", Flags: m.flags, Date: m.date,
		SourceFolder: formats.DisplayName(m.folder)}, m.size, bytes.NewReader(m.body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f2, err := w.Ensure(ctx, m.folder)
	if err != nil {
		t.Fatal(err)
	}
	if f2.Validity == f.Validity {
		t.Errorf("the validity did not change back after the repair")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, after := mfLines(t, dir)
	last := after[len(after)-1]
	if last.Repairs != lost.Seq || !strings.Contains(last.Repair, why) {
		t.Errorf("the new entry records repairs=%d %q, want %d and %q", last.Repairs, last.Repair, lost.Seq, why)
	}
	rep := vfVerify(t, dir, VerifyOptions{})
	if !rep.OK() {
		t.Errorf("verify after the repair:\n%s", tpProblems(rep))
	}
	if len(rep.Notes) == 0 || !strings.Contains(strings.Join(rep.Notes, "\n"), "re-added") {
		t.Errorf("verify does not note the repair: %q", rep.Notes)
	}
	if format == "maildir" {
		sums, _ := os.ReadFile(filepath.Join(dir, SumsFile))
		if bytes.Contains(sums, []byte(lost.File)) {
			t.Errorf("SHA256SUMS still lists the lost %s", lost.File)
		}
	}
	return last
}

func TestArchiveRepairMaildirFileDeleted(t *testing.T) {
	rpRepair(t, "maildir", func(dir string, e []ManifestEntry) ManifestEntry {
		os.Remove(filepath.Join(dir, e[6].File))
		return e[6]
	}, "message missing: ")
}

// A message whose flags changed after it was archived (a flags record
// renames its file) and that was then lost: the repair names the file as
// the flags record left it, not as it was first written.
func TestArchiveRepairMaildirFileDeletedAfterFlags(t *testing.T) {
	ctx := context.Background()
	var renamed string
	repair := rpRepair(t, "maildir", func(dir string, e []ManifestEntry) ManifestEntry {
		m := e[6]
		w := rpOpen(t, "maildir", dir)
		f, err := w.Ensure(ctx, m.DestFolder)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.UpdateFlags(ctx, f, []formats.FlagChange{{Add: []string{`\Flagged`}, IDs: []string{m.DestID}}}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		_, lines := mfLines(t, dir)
		rec := lines[len(lines)-1]
		if rec.Record != RecordFlags || rec.Of != m.Seq || rec.File == m.File {
			t.Fatalf("no flags record renaming %s: %+v", m.File, rec)
		}
		renamed = rec.File
		if err := os.Remove(filepath.Join(dir, renamed)); err != nil {
			t.Fatal(err)
		}
		return m
	}, "message missing: ")
	if want := "message missing: " + renamed; repair.Repair != want {
		t.Errorf("the repair records %q, want %q", repair.Repair, want)
	}
}

func TestArchiveRepairMboxCutShort(t *testing.T) {
	// The last message of its file loses its last 3 bytes.
	rpRepair(t, "mbox", func(dir string, e []ManifestEntry) ManifestEntry {
		m := e[len(e)-1]
		p := filepath.Join(dir, m.File)
		fi, _ := os.Stat(p)
		os.Truncate(p, fi.Size()-3)
		return m
	}, "message changed: ")
}

func TestArchiveRepairMboxMessageCutOff(t *testing.T) {
	// The last message of its file is cut off whole: it is re-added at
	// the same offset.
	rpRepair(t, "mbox", func(dir string, e []ManifestEntry) ManifestEntry {
		m := e[len(e)-1]
		os.Truncate(filepath.Join(dir, m.File), *m.Offset)
		return m
	}, "message missing: ")
}

// A message appended to an archive's mbox file by another program is
// reported by verify, and the next archive run refuses to append to that
// file rather than make those bytes part of its recorded length.
func TestArchiveMboxUnrecordedBytes(t *testing.T) {
	ctx := context.Background()
	dir, _ := tpArchive(t, "mbox", 12)
	p := filepath.Join(dir, "mail", "inbox")
	lenBefore, _ := os.ReadFile(mboxSidecarPath(p))
	fh, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	fh.WriteString("From someone@example.org Thu Jan  1 00:00:00 2015\nSubject: added by hand\n\nhello\n\n")
	fh.Close()
	rep := vfVerify(t, dir, VerifyOptions{})
	if rep.OK() {
		t.Error("verify passes an mbox with a message appended by hand")
	}
	w := rpOpen(t, "mbox", dir)
	_, err := w.Ensure(ctx, []string{"INBOX"})
	if err == nil {
		f, _ := w.Ensure(ctx, []string{"INBOX"})
		w.Store(ctx, f, formats.Message{ID: "x"}, -1, strings.NewReader("Subject: new\n\nnew\n"))
		w.Flush(ctx)
	}
	w.Close()
	if err == nil || !strings.Contains(err.Error(), "mail/inbox") {
		t.Errorf("the rerun's Ensure: %v; want a refusal naming mail/inbox", err)
	}
	if lenAfter, _ := os.ReadFile(mboxSidecarPath(p)); !bytes.Equal(lenBefore, lenAfter) {
		t.Errorf("the rerun moved the recorded end over the unrecorded bytes: %q -> %q", lenBefore, lenAfter)
	}
	if rep := vfVerify(t, dir, VerifyOptions{}); rep.OK() {
		t.Error("verify passes after the rerun")
	}
}

// A killed run's complete files in tmp/ are named by verify and removed
// by the next run; a file in tmp/ that is not a mailferry delivery, or is
// this process's own, stays.
func TestArchiveDeadTmpFiles(t *testing.T) {
	ctx := context.Background()
	dir, _ := tpArchive(t, "maildir", 8)
	host, _ := os.Hostname()
	dead := formats.NewUniqueName(time.Now(), 999999, 0xabcdef, host, -1)
	mine := formats.NewUniqueName(time.Now(), os.Getpid(), 0x1234, host, -1)
	tmp := filepath.Join(dir, ".Archive.2023", "tmp")
	for _, n := range []string{dead, mine, "foreign"} {
		os.WriteFile(filepath.Join(tmp, n), []byte("Subject: complete\n\nbody\n"), 0o600)
	}
	rep := vfVerify(t, dir, VerifyOptions{})
	for _, n := range []string{dead, mine, "foreign"} {
		found := false
		for _, p := range rep.Problems {
			found = found || p.File == ".Archive.2023/tmp/"+n
		}
		if !found {
			t.Errorf("verify does not name tmp/%s:\n%s", n, tpProblems(rep))
		}
	}
	w := rpOpen(t, "maildir", dir)
	if _, err := w.Ensure(ctx, []string{"Archive", "2023"}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := os.Stat(filepath.Join(tmp, dead)); err == nil {
		t.Error("the rerun left a dead run's file in tmp/")
	}
	for _, n := range []string{mine, "foreign"} {
		if _, err := os.Stat(filepath.Join(tmp, n)); err != nil {
			t.Errorf("the rerun removed tmp/%s: %v", n, err)
		}
	}
}

// A manifest whose end is not the one MANIFEST.head records is refused by
// the next run (unless a journal explains it), and accepted once the user
// removes MANIFEST.head.
func TestArchiveCutManifestRefused(t *testing.T) {
	dir, _ := tpArchive(t, "maildir", 8)
	vfRewriteManifest(t, dir, func(l [][]byte) [][]byte { return l[:len(l)-1] })
	st, _ := OpenMaildir(dir, MaildirOptions{})
	if w, err := NewWriter(dir, st); err == nil || !strings.Contains(err.Error(), HeadFile) {
		if err == nil {
			w.Close()
		}
		t.Fatalf("NewWriter on a cut manifest: %v", err)
	}
	os.Remove(filepath.Join(dir, HeadFile))
	w := rpOpen(t, "maildir", dir)
	w.Close()
	seq, hash, ok, err := readHead(dir)
	_, entries := mfLines(t, dir)
	if !ok || err != nil || seq != uint64(len(entries)) || hash != mfCheckChain(t, dir) {
		t.Errorf("head after accepting: %d %s %v %v", seq, hash, ok, err)
	}
}

func TestHeadFormat(t *testing.T) {
	h := formatHead(42, strings.Repeat("ab", 32))
	seq, hash, ok, err := parseHead([]byte(h))
	if !ok || err != nil || seq != 42 || hash != strings.Repeat("ab", 32) {
		t.Fatalf("%q -> %d %q %v %v", h, seq, hash, ok, err)
	}
	for _, bad := range []string{"", h[:len(h)-1], strings.Replace(h, "42", "x", 1), h + "x", strings.ToUpper(h)} {
		if _, _, ok, err := parseHead([]byte(bad)); ok || err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// A folder whose name is not UTF-8 (an mbox file named in Latin-1, archived
// into a Maildir) is looked at like any other: the manifest writes its
// name with U+FFFD, and a rerun still finds the folder's entries, so a lost
// file is noticed (before, its entries were keyed apart and none was lost).
func TestArchiveLostFileInAFolderNamedInLatin1(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := []string{"Reisen", "Z\xfcrich"}
	w := rpOpen(t, "maildir", dir)
	f, err := w.Ensure(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		body := fmt.Sprintf("Message-ID: <%d@latin1>\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i, i)
		if _, err := w.Store(ctx, f, formats.Message{ID: fmt.Sprint(i + 1)}, int64(len(body)), strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, entries := mfLines(t, dir)
	if len(entries) != 3 {
		t.Fatalf("%d manifest entries, want 3", len(entries))
	}
	if err := os.Remove(filepath.Join(dir, entries[1].File)); err != nil {
		t.Fatal(err)
	}

	w = rpOpen(t, "maildir", dir)
	defer w.Close()
	f, err = w.Ensure(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Messages != 2 || f.Validity == 1 || f.UIDNext != 0 {
		t.Errorf("the folder with one file lost: %d messages, validity %d, UIDNext %d; want 2, a validity of its own (not 1) and 0",
			f.Messages, f.Validity, f.UIDNext)
	}
	if idx := rpIndexed(t, w, f); idx[entries[1].DestID] || len(idx) != 2 {
		t.Errorf("Index reports %v; want the two files left", idx)
	}
}
