package archive

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tampering table: each kind of damage done to a fresh archive, in the
// formats where it applies, and what Verify must name. The same table is
// docs-verify-table.md ("What verify detects").

// tpArchive writes a fresh archive of n varied messages in the given format
// and returns its directory and manifest entries.
func tpArchive(t *testing.T, format string, n int) (string, []ManifestEntry) {
	t.Helper()
	dir := t.TempDir()
	w := rpOpen(t, format, dir)
	mdStoreAll(t, w, mdVariedMessages(n), 4)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, entries := mfLines(t, dir)
	return dir, entries
}

// tpMboxSpan returns the byte range [start, end) that the message of entry
// e takes in its mbox file (From_ line to the next From_ line or EOF).
func tpMboxSpan(t *testing.T, dir string, entries []ManifestEntry, e ManifestEntry) (int64, int64) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, e.File))
	if err != nil {
		t.Fatal(err)
	}
	end := fi.Size()
	for _, o := range entries {
		if o.File == e.File && *o.Offset > *e.Offset && *o.Offset < end {
			end = *o.Offset
		}
	}
	return *e.Offset, end
}

// tpSameFile returns two entries in one file (mbox) or folder (Maildir),
// the first not the file's first message.
func tpSameFile(entries []ManifestEntry) (ManifestEntry, ManifestEntry) {
	for i, a := range entries {
		for _, b := range entries[i+1:] {
			if filepath.Dir(a.File) == filepath.Dir(b.File) && (a.Offset == nil) == (b.Offset == nil) &&
				(a.Offset == nil || (a.File == b.File && *a.Offset > 0)) && a.Size > 20 && b.Size > 20 {
				return a, b
			}
		}
	}
	panic("no two entries in one file")
}

func tpLine(entries []ManifestEntry, e ManifestEntry) string {
	return fmt.Sprintf("line %d", e.Seq)
}

func tpEditLine(t *testing.T, dir string, n int, old, new string) {
	t.Helper()
	vfRewriteManifest(t, dir, func(l [][]byte) [][]byte {
		if !bytes.Contains(l[n], []byte(old)) {
			t.Fatalf("line %d lacks %q", n+1, old)
		}
		l[n] = bytes.Replace(l[n], []byte(old), []byte(new), 1)
		return l
	})
}

type tamperCase struct {
	name    string
	formats string // "maildir", "mbox" or "both"
	// damage damages the archive and returns what Verify must name: a
	// file relative to the archive, or "line N" of the manifest.
	damage func(t *testing.T, format, dir string, e []ManifestEntry) []string
}

var tamperTable = []tamperCase{
	{"a bit flipped in a message", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		m := e[7]
		p := filepath.Join(dir, m.File)
		data, _ := os.ReadFile(p)
		at := int64(len(data) - 2)
		if m.Offset != nil {
			_, end := tpMboxSpan(t, dir, e, m)
			at = end - 3
		}
		data[at] ^= 0x01
		os.WriteFile(p, data, 0o600)
		return []string{m.File, tpLine(e, m)}
	}},
	{"a message deleted", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		a, _ := tpSameFile(e)
		p := filepath.Join(dir, a.File)
		if format == "maildir" {
			os.Remove(p)
		} else {
			start, end := tpMboxSpan(t, dir, e, a)
			data, _ := os.ReadFile(p)
			os.WriteFile(p, append(data[:start:start], data[end:]...), 0o600)
		}
		return []string{a.File, tpLine(e, a)}
	}},
	{"a message truncated", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		m := e[len(e)-1]
		p := filepath.Join(dir, m.File)
		fi, _ := os.Stat(p)
		os.Truncate(p, fi.Size()-3)
		return []string{m.File, tpLine(e, m)}
	}},
	{"a message added by hand", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		if format == "maildir" {
			os.WriteFile(filepath.Join(dir, "cur", "1700000000.added.host:2,S"), []byte("Subject: added\n\nx\n"), 0o600)
			return []string{"cur/1700000000.added.host:2,S"}
		}
		f, _ := os.OpenFile(filepath.Join(dir, "mail", "inbox"), os.O_WRONLY|os.O_APPEND, 0)
		f.WriteString("From someone@example.org Thu Jan  1 00:00:00 2015\nSubject: added by hand\n\nhello\n\n")
		f.Close()
		return []string{"mail/inbox"}
	}},
	{"two messages swapped", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		a, b := tpSameFile(e)
		if format == "maildir" {
			pa, pb := filepath.Join(dir, a.File), filepath.Join(dir, b.File)
			da, _ := os.ReadFile(pa)
			db, _ := os.ReadFile(pb)
			os.WriteFile(pa, db, 0o600)
			os.WriteFile(pb, da, 0o600)
			return []string{a.File, b.File}
		}
		// The message at a's offset and the one after it change places.
		p := filepath.Join(dir, a.File)
		data, _ := os.ReadFile(p)
		s1, e1 := tpMboxSpan(t, dir, e, a)
		var next ManifestEntry
		for _, o := range e {
			if o.File == a.File && *o.Offset == e1 {
				next = o
			}
		}
		if next.File == "" {
			t.Skip("no message after the chosen one")
		}
		_, e2 := tpMboxSpan(t, dir, e, next)
		out := append([]byte{}, data[:s1]...)
		out = append(out, data[e1:e2]...)
		out = append(out, data[s1:e1]...)
		out = append(out, data[e2:]...)
		os.WriteFile(p, out, 0o600)
		return []string{a.File, tpLine(e, a), tpLine(e, next)}
	}},
	{"a whole folder deleted", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		var m ManifestEntry
		for _, o := range e {
			if strings.Join(o.DestFolder, "/") == "Archive/2023" {
				m = o
				break
			}
		}
		if format == "maildir" {
			os.RemoveAll(filepath.Join(dir, ".Archive.2023"))
		} else {
			os.Remove(filepath.Join(dir, m.File))
			os.Remove(filepath.Join(dir, m.File+".len"))
		}
		return []string{m.File, tpLine(e, m)}
	}},
	{"a manifest line edited", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		tpEditLine(t, dir, 4, `"flags":[`, `"flags":["\\Seen",`)
		return []string{"line 5"}
	}},
	{"the last manifest line edited", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		n := len(e) - 1
		tpEditLine(t, dir, n, `"folder":"`, `"folder":"X`)
		return []string{fmt.Sprintf("line %d", n+1)}
	}},
	{"the last manifest lines cut together with their messages", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		cut := e[len(e)-2:]
		vfRewriteManifest(t, dir, func(l [][]byte) [][]byte { return l[:len(l)-2] })
		want := []string{HeadFile}
		for _, m := range cut {
			p := filepath.Join(dir, m.File)
			if m.Offset == nil {
				os.Remove(p)
				want = append(want, SumsFile)
				continue
			}
			if fi, err := os.Stat(p); err == nil && fi.Size() > *m.Offset {
				os.Truncate(p, *m.Offset)
			}
			want = append(want, m.File)
		}
		return want
	}},
	{"manifest lines reordered", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		vfRewriteManifest(t, dir, func(l [][]byte) [][]byte { l[2], l[3] = l[3], l[2]; return l })
		return []string{"line 3", "line 4"}
	}},
	{"a manifest line removed", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		vfRewriteManifest(t, dir, func(l [][]byte) [][]byte { return append(l[:5], l[6:]...) })
		return []string{"line 6", e[5].File}
	}},
	{"MANIFEST.head deleted", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		os.Remove(filepath.Join(dir, HeadFile))
		return []string{HeadFile}
	}},
	{"a killed run's message left in tmp/", "maildir", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		name := "1700000000.M1P999999R1f2e3d.host"
		os.WriteFile(filepath.Join(dir, ".Archive.2023", "tmp", name), []byte("Subject: complete\n\nbody\n"), 0o600)
		return []string{".Archive.2023/tmp/" + name}
	}},
	{"a stray file beside the messages", "both", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		if format == "maildir" {
			os.MkdirAll(filepath.Join(dir, "cur", "sub"), 0o700)
			os.WriteFile(filepath.Join(dir, "cur", "sub", "x"), []byte("x"), 0o600)
			return []string{"cur/sub"}
		}
		os.WriteFile(filepath.Join(dir, "mail", "Archive", "notes.txt"), []byte("x"), 0o600)
		return []string{"mail/Archive/notes.txt"}
	}},
	{"a SHA256SUMS line edited", "maildir", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		p := filepath.Join(dir, SumsFile)
		data, _ := os.ReadFile(p)
		data[3] ^= 0x01
		os.WriteFile(p, data, 0o600)
		return []string{SumsFile}
	}},
	{"an mbox .len record changed", "mbox", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		p := filepath.Join(dir, "mail", ".inbox.len.lock")
		fi, _ := os.Stat(filepath.Join(dir, "mail", "inbox"))
		os.WriteFile(p, []byte(fmt.Sprintf("%s length=%d pending=0\n", mboxSidecarMagic, fi.Size()+100)), 0o600)
		return []string{"mail/inbox"}
	}},
	{"an mbox .len record deleted", "mbox", func(t *testing.T, format, dir string, e []ManifestEntry) []string {
		os.Remove(filepath.Join(dir, "mail", ".inbox.len.lock"))
		return []string{"mail/.inbox.len.lock"}
	}},
}

// TestVerifyTamperTable damages fresh archives in every way of the table
// and checks that Verify fails naming the file or manifest line.
func TestVerifyTamperTable(t *testing.T) {
	for _, tc := range tamperTable {
		for _, format := range []string{"maildir", "mbox"} {
			if tc.formats != "both" && tc.formats != format {
				continue
			}
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				dir, entries := tpArchive(t, format, 12)
				if rep := vfVerify(t, dir, VerifyOptions{}); !rep.OK() {
					t.Fatalf("fresh archive: %v", rep.Problems)
				}
				want := tc.damage(t, format, dir, entries)
				rep := vfVerify(t, dir, VerifyOptions{})
				if rep.OK() {
					t.Fatalf("verify says OK after the damage (wants %q)", want)
				}
				t.Logf("verify says:\n%s", tpProblems(rep))
				for _, w := range want {
					found := false
					for _, p := range rep.Problems {
						if ln, ok := strings.CutPrefix(w, "line "); ok {
							found = found || fmt.Sprint(p.Line) == ln
						} else {
							found = found || p.File == w
						}
					}
					if !found {
						t.Errorf("no problem names %q:\n%s", w, tpProblems(rep))
					}
				}
			})
		}
	}
}

func tpProblems(rep *VerifyReport) string {
	var b strings.Builder
	for _, p := range rep.Problems {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}
