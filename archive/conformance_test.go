package archive_test

// The Source/Sink conformance suite (migrate/conformance) against the
// Maildir and mbox stores: bare, as mailferry reads a foreign tree (seeded
// by writing its files directly), and under the manifest Writer, as
// mailferry writes an archive (seeded through it), the way the main
// package's local.go opens them.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailferry/mailferry/archive"
	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/conformance"
)

// storeKind opens one kind of store at root.
type storeKind struct {
	name string
	open func(root string, create bool) (archive.Store, error)
	// seedFiles writes folders as a foreign program would.
	seedFiles func(t *testing.T, root string, folders []conformance.Folder)
	// bare is what the store alone keeps; the manifest keeps all.
	bare conformance.Keeps
	// vanish removes a message file; nil where a message is no file.
	vanish bool
}

var storeKinds = []storeKind{
	{
		name: "maildir",
		open: func(root string, create bool) (archive.Store, error) {
			return archive.OpenMaildir(root, archive.MaildirOptions{Create: create})
		},
		seedFiles: seedMaildirFiles,
		bare:      conformance.Keeps{SystemFlags: true, Date: true}, // name letters, mtime
		vanish:    true,
	},
	{
		name: "mbox",
		open: func(root string, create bool) (archive.Store, error) {
			return archive.OpenMbox(root, archive.MboxOptions{Create: create})
		},
		seedFiles: seedMboxFiles,
		bare:      conformance.Keeps{Date: true}, // the From_ line, to the second
	},
}

var allKept = conformance.Keeps{SystemFlags: true, Keywords: true, Date: true}

func TestConformanceArchive(t *testing.T) {
	for _, k := range storeKinds {
		t.Run(k.name, func(t *testing.T) {
			t.Run("Source", func(t *testing.T) {
				conformance.TestSource(t, conformance.SourceHarness{
					Open: func(t *testing.T, folders []conformance.Folder) conformance.SourceInstance {
						root := t.TempDir()
						k.seedFiles(t, root, folders)
						return k.sourceInstance(t, root, false)
					},
					Keeps: k.bare,
				})
			})
			t.Run("Sink", func(t *testing.T) {
				conformance.TestSink(t, conformance.SinkHarness{
					Open: func(t *testing.T) conformance.SinkInstance {
						return k.sinkInstance(t, filepath.Join(t.TempDir(), "dst"), false)
					},
					Keeps: k.bare,
				})
			})
			t.Run("ManifestSource", func(t *testing.T) {
				conformance.TestSource(t, conformance.SourceHarness{
					Open: func(t *testing.T, folders []conformance.Folder) conformance.SourceInstance {
						root := filepath.Join(t.TempDir(), "archive")
						k.seedWriter(t, root, folders)
						return k.sourceInstance(t, root, true)
					},
					Keeps: allKept,
				})
			})
			t.Run("ManifestSink", func(t *testing.T) {
				conformance.TestSink(t, conformance.SinkHarness{
					Open: func(t *testing.T) conformance.SinkInstance {
						return k.sinkInstance(t, filepath.Join(t.TempDir(), "archive"), true)
					},
					Keeps: allKept,
				})
			})
		})
	}
}

// openAt opens the store at root, under a manifest Writer when manifest.
func (k storeKind) openAt(t *testing.T, root string, create, manifest bool) conformance.Endpoint {
	t.Helper()
	st, err := k.open(root, create)
	if err != nil {
		t.Fatalf("open %s: %v", k.name, err)
	}
	if !manifest {
		return st
	}
	w, err := archive.NewWriter(root, st)
	if err != nil {
		st.Close()
		t.Fatalf("NewWriter: %v", err)
	}
	return w
}

func (k storeKind) sourceInstance(t *testing.T, root string, manifest bool) conformance.SourceInstance {
	src := k.openAt(t, root, false, manifest)
	inst := conformance.SourceInstance{
		Source: src,
		Reopen: func(t *testing.T) migrate.Source { return k.openAt(t, root, false, manifest) },
	}
	if k.vanish {
		inst.Vanish = func(t *testing.T, f formats.Folder, m formats.Message) {
			rc, file, err := src.(archive.Store).Open(f, m.ID)
			if err != nil {
				t.Fatalf("Open %s: %v", m.ID, err)
			}
			rc.Close()
			if err := os.Remove(filepath.Join(root, filepath.FromSlash(file))); err != nil {
				t.Fatal(err)
			}
		}
	}
	return inst
}

func (k storeKind) sinkInstance(t *testing.T, root string, manifest bool) conformance.SinkInstance {
	return conformance.SinkInstance{
		Sink:   k.openAt(t, root, true, manifest),
		Reopen: func(t *testing.T) conformance.Endpoint { return k.openAt(t, root, false, manifest) },
	}
}

// seedWriter archives folders through the manifest Writer.
func (k storeKind) seedWriter(t *testing.T, root string, folders []conformance.Folder) {
	ctx := context.Background()
	w := k.openAt(t, root, true, true)
	for _, f := range folders {
		df, err := w.Ensure(ctx, f.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range f.Messages {
			msg := formats.Message{ID: m.Name, Size: int64(len(m.Body)), Flags: m.Flags, Date: m.Date}
			if _, err := w.Store(ctx, df, msg, msg.Size, bytes.NewReader(m.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := w.Ensure(ctx, []string{"INBOX"}); err != nil {
		t.Fatal(err)
	}
	if err := w.(migrate.Flusher).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// seedMaildirFiles writes a Maildir++ tree as a delivery agent would:
// cur/UNIQUE:2,FLAGS with the date as mtime; parents are not made.
func seedMaildirFiles(t *testing.T, root string, folders []conformance.Folder) {
	mkdirs := func(dir string) {
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	mkdirs(root)
	for fi, f := range folders {
		dir := root
		if !formats.IsInbox(f.Path) {
			enc := ""
			for _, c := range f.Path {
				enc += "." + formats.EncodeFSComponent(c)
			}
			dir = filepath.Join(root, enc)
			mkdirs(dir)
			if err := os.WriteFile(filepath.Join(dir, "maildirfolder"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for i, m := range f.Messages {
			unique := fmt.Sprintf("1700000000.M%06dP1Q%d.conformance,S=%d", i, fi, len(m.Body))
			p := filepath.Join(dir, "cur", formats.FormatMaildirName(unique, m.Flags))
			if err := os.WriteFile(p, m.Body, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, m.Date, m.Date); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// seedMboxFiles writes NAME.mbox files (mboxrd) as a mail client would,
// without sidecars; parents are directories only.
func seedMboxFiles(t *testing.T, root string, folders []conformance.Folder) {
	if err := os.WriteFile(filepath.Join(root, "INBOX.mbox"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range folders {
		rel := ""
		for i, c := range f.Path {
			if i > 0 {
				rel += "/"
			}
			rel += formats.EncodeFSComponent(c)
		}
		p := filepath.Join(root, filepath.FromSlash(rel)+".mbox")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		for _, m := range f.Messages {
			if _, err := formats.WriteMboxrdMessage(&buf, "", m.Date, bytes.NewReader(m.Body)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
