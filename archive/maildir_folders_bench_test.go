package archive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
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

// BenchmarkMaildirFetch reads back every message of a Maildir folder of
// MAILFERRY_BENCH_FILES 1 KB messages (default 20,000), as an import or a
// rerun's dedup reads a Maildir source: Fetch, each body read whole.
//
//	TMPDIR=/dev/shm go test -run X -bench MaildirFetch -benchtime 5x ./archive/
func BenchmarkMaildirFetch(b *testing.B) {
	total := benchFiles(b, 20_000, 1)
	ctx := context.Background()
	st, err := OpenMaildir(b.TempDir(), MaildirOptions{Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	inbox, err := st.Ensure(ctx, []string{"INBOX"})
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 1024)
	benchStore(b, st, inbox, total, func(int) []byte { return body })
	_, list, err := st.List(ctx, inbox)
	if err != nil || len(list) != total {
		b.Fatalf("List: %d messages, want %d, %v", len(list), total, err)
	}
	buf := make([]byte, 64<<10)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var n int64
		err := st.Fetch(ctx, inbox, list, func(m formats.Message, r io.Reader) error {
			k, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
			n += k
			return err
		})
		if err != nil || n != int64(total*len(body)) {
			b.Fatalf("Fetch: %d bytes, want %d, %v", n, total*len(body), err)
		}
	}
	b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "msgs/s")
}

// benchStore stores n messages, the i-th of them body(i), into folder of
// st, with a Flush after every 500 and one at the end.
func benchStore(b *testing.B, st Store, folder formats.Folder, n int, body func(i int) []byte) {
	ctx := context.Background()
	for i := 0; i < n; i++ {
		m := body(i)
		if _, err := st.Store(ctx, folder, formats.Message{Date: time.Now()}, int64(len(m)), bytes.NewReader(m)); err != nil {
			b.Fatal(err)
		}
		if (i+1)%500 == 0 {
			if err := st.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := st.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
