package archive

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// BenchmarkVerifyMaildir verifies (reads back and hashes every message
// of) a Maildir archive of MAILFERRY_BENCH_FILES 1 KB messages (default
// 20,000) in four folders, made once through the manifest Writer in TMPDIR
// (a tmpfs keeps the disk out of it):
//
//	TMPDIR=/dev/shm go test -run X -bench VerifyMaildir -benchtime 5x ./archive/
func BenchmarkVerifyMaildir(b *testing.B) {
	total := benchFiles(b, 20_000, 4)
	ctx := context.Background()
	dir := b.TempDir()
	w := mfOpen(b, dir)
	body := bytes.Repeat([]byte("x"), 1024)
	for f := 0; f < 4; f++ {
		folder, err := w.Ensure(ctx, []string{fmt.Sprintf("F%d", f)})
		if err != nil {
			b.Fatal(err)
		}
		benchStore(b, w, folder, total/4, func(i int) []byte {
			copy(body, fmt.Sprintf("Subject: %d %d\r\n\r\n", f, i)) // each message its own sum
			return body
		})
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := Verify(ctx, dir, VerifyOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() || rep.Messages != total/4*4 {
			b.Fatalf("verify: %d messages, %d problems (first: %v)", rep.Messages, len(rep.Problems), rep.Problems)
		}
	}
	b.ReportMetric(float64(b.N*total/4*4)/b.Elapsed().Seconds(), "msgs/s")
}
