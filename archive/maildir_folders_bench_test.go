package archive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkMaildirFolders lists a Maildir of twelve folders holding
// MAILFERRY_BENCH_FILES message files in all (default 200,000; INBOX 30%
// of them, as in the peer benchmark's sets), counting each folder's files
// as a rerun's listing does. The files are empty: only their names are
// read. Run with -benchtime 5x; the tree is made once, in TMPDIR (a tmpfs
// keeps the disk out of it).
func BenchmarkMaildirFolders(b *testing.B) {
	total := benchFiles(b, 200_000, 12)
	root := b.TempDir()
	inbox := total * 3 / 10
	for f := 0; f < 12; f++ {
		dir, n := root, inbox
		if f > 0 {
			dir, n = filepath.Join(root, fmt.Sprintf(".F%02d", f)), (total-inbox)/11
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("1700000000.M%dP1Q%d.bench,S=1024:2,S", i, f)
			if err := os.WriteFile(filepath.Join(dir, "cur", name), nil, 0o600); err != nil {
				b.Fatal(err)
			}
		}
	}
	m, err := OpenMaildir(root, MaildirOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		folders, err := m.Folders(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		var n uint32
		for _, f := range folders {
			n += f.Messages
		}
		if int(n) < total-11 {
			b.Fatalf("counted %d messages, want %d", n, total)
		}
	}
}

// benchFiles is MAILFERRY_BENCH_FILES, the number of messages an archive
// benchmark makes (def when unset), at least least.
func benchFiles(b *testing.B, def, least int) int {
	s := os.Getenv("MAILFERRY_BENCH_FILES")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < least {
		b.Fatalf("MAILFERRY_BENCH_FILES=%q: want a number of at least %d", s, least)
	}
	return n
}
