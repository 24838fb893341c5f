package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// countSyncs counts Flush's fsyncs of single files and its syncfs calls
// (failing syncfs with fail, where set) until the test ends.
func countSyncs(t *testing.T, fail error) (files, whole *atomic.Int32) {
	files, whole = &atomic.Int32{}, &atomic.Int32{}
	oldFile, oldFS := fsyncFile, syncfs
	fsyncFile = func(path string) error { files.Add(1); return oldFile(path) }
	syncfs = func(fd int) error {
		whole.Add(1)
		if fail != nil {
			return fail
		}
		return oldFS(fd)
	}
	t.Cleanup(func() { fsyncFile, syncfs = oldFile, oldFS })
	return files, whole
}

// storeSome stores n messages over two folders and returns the SHA-256 of
// each body, by folder directory.
func storeSome(t *testing.T, m *Maildir, n int) map[string][][32]byte {
	t.Helper()
	ctx := context.Background()
	want := map[string][][32]byte{}
	for i := range n {
		path := []string{"INBOX"}
		if i%2 == 1 {
			path = []string{"Archive", "2024"}
		}
		f, err := m.Ensure(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(fmt.Sprintf("Message-ID: <sf%d@example.org>\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i, i))
		if _, err := m.Store(ctx, f, formats.Message{Flags: []string{formats.FlagSeen}, Date: time.Unix(1600000000+int64(i), 0)}, int64(len(body)), bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		dir, err := m.dirOf(f)
		if err != nil {
			t.Fatal(err)
		}
		want[dir] = append(want[dir], sha256.Sum256(body))
	}
	return want
}

// curSums is the SHA-256 of each file in the folder directories' cur/.
func curSums(t *testing.T, m *Maildir, dirs map[string][][32]byte) map[string]map[[32]byte]int {
	t.Helper()
	out := map[string]map[[32]byte]int{}
	for dir := range dirs {
		out[dir] = map[[32]byte]int{}
		ents, err := os.ReadDir(filepath.Join(m.root, dir, "cur"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(m.root, dir, "cur", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[dir][sha256.Sum256(b)]++
		}
	}
	return out
}

// TestFlushSyncsTheFileSystemOnce: on a local file system (ext4 or tmpfs
// here), Flush makes a batch of 40 messages in two folders durable with one
// syncfs and no fsync of a single file, and they arrive whole in cur/
// (SHA-256). Where a folder's files are on another file system than the
// root's, each file is fsynced as before; where syncfs fails, Flush fails
// and nothing is moved to cur/ (the batch's files are removed, so nothing
// is recorded as stored).
func TestFlushSyncsTheFileSystemOnce(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	probe, err := OpenMaildir(root, MaildirOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if probe.syncer == nil {
		var sfs syscall.Statfs_t
		syscall.Statfs(root, &sfs)
		t.Skipf("the test directory's file system (statfs type %#x) or this kernel gets an fsync per file: nothing to test here", sfs.Type)
	}
	probe.Close()
	for _, tc := range []struct {
		name     string
		otherFS  bool  // the folders taken as being on another file system
		fail     error // what syncfs returns
		files    int32 // fsyncs of single files
		whole    int32 // syncfs calls
		flushErr bool
	}{
		{name: "one syncfs", files: 0, whole: 1},
		{name: "another file system", otherFS: true, files: 40, whole: 0},
		{name: "syncfs fails", fail: syscall.EIO, files: 0, whole: 1, flushErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := OpenMaildir(filepath.Join(t.TempDir(), "Maildir"), MaildirOptions{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if tc.otherFS {
				m.syncer.dev = ^uint64(0)
			}
			want := storeSome(t, m, 40)
			files, whole := countSyncs(t, tc.fail)
			err = m.Flush(context.Background())
			if tc.flushErr != (err != nil) || tc.flushErr && !errors.Is(err, tc.fail) {
				t.Fatalf("Flush: %v, want an error: %v", err, tc.flushErr)
			}
			if f, w := files.Load(), whole.Load(); f != tc.files || w != tc.whole {
				t.Errorf("%d fsyncs of single files and %d syncfs, want %d and %d", f, w, tc.files, tc.whole)
			}
			got := curSums(t, m, want)
			for dir, sums := range want {
				wantDir := map[[32]byte]int{}
				if !tc.flushErr {
					for _, s := range sums {
						wantDir[s]++
					}
				}
				if fmt.Sprint(got[dir]) != fmt.Sprint(wantDir) {
					t.Errorf("folder %q: cur/ holds %d files (by SHA-256 %v), want %d", dir, len(got[dir]), got[dir], len(wantDir))
				}
				if tc.flushErr {
					if ents, _ := os.ReadDir(filepath.Join(m.root, dir, "tmp")); len(ents) != 0 {
						t.Errorf("folder %q: %d files left in tmp/ after a failed Flush", dir, len(ents))
					}
				}
			}
		})
	}
}

// TestReleaseAtLeast reads kernel releases as kernels spell them: syncfs
// reports writeback errors from 5.8 on.
func TestReleaseAtLeast(t *testing.T) {
	for rel, want := range map[string]bool{
		"5.8-rc1": true, "5.8.0": true, "5.7.19": false, "6.1.0-18-amd64": true, "6.18.44-fc-v1272": true,
		"4.19.0-21-amd64": false, "10.0": true, "5": false, "": false, "x.y": false,
	} {
		if got := releaseAtLeast(rel, 5, 8); got != want {
			t.Errorf("releaseAtLeast(%q, 5, 8) = %v, want %v", rel, got, want)
		}
	}
}
