package imap

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// BenchmarkAppendGrowingFolder fills one Dovecot folder through the
// appender in batches of 1,000 messages of 1 KB, with startAppend's SELECT
// and without it, and reports the server's CPU (dovecottest.CPU: its
// processes' user and system time). MAILFERRY_BENCH_FOLDER sets the number of messages
// (default 100,000; the million-message set's INBOX holds 297,700). Put
// TMPDIR on a tmpfs to keep the file system's own costs out of it:
//
//	TMPDIR=/mnt/tmpfs MAILFERRY_BENCH_FOLDER=300000 go test -run '^$' \
//	  -bench AppendGrowingFolder -benchtime 1x ./migrate/imap
func BenchmarkAppendGrowingFolder(b *testing.B) {
	n := 100_000
	if v := os.Getenv("MAILFERRY_BENCH_FOLDER"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("MAILFERRY_BENCH_FOLDER=%q: want a number of messages, 1000 or more", v)
		}
	}
	for _, sel := range []bool{true, false} {
		b.Run(fmt.Sprintf("select=%v", sel), func(b *testing.B) {
			defer func(old bool) { appendSelects = old }(appendSelects)
			appendSelects = sel
			for range b.N {
				srv := dovecottest.Start(b, dovecottest.Options{Separator: '/'})
				cfg := mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone}
				a, err := dialAppender(context.Background(), cfg, imapAuth{})
				if err != nil {
					b.Fatal(err)
				}
				flags := [][]string{{`\Seen`}, nil, {`\Seen`, `\Flagged`}, {`\Seen`}, {`\Answered`, `\Seen`}}
				date := time.Unix(1600000000, 0)
				cpu0 := dovecottest.CPU(srv)
				start := time.Now()
				for i := range n {
					body := []byte(fmt.Sprintf("Message-ID: <%d@grow>\r\nFrom: a@example.org\r\n\r\n%0900d\r\n", i, i))
					if err := a.add("INBOX", flags[i%len(flags)], date, body); err != nil {
						b.Fatal(err)
					}
					if i%batchMessages == batchMessages-1 || i == n-1 {
						if outs, err := a.commit(); err != nil {
							b.Fatal(err)
						} else {
							for _, o := range outs {
								if o.err != nil || o.uid == 0 {
									b.Fatalf("message stored without a UID: %v", o.err)
								}
							}
						}
					}
				}
				b.ReportMetric(time.Since(start).Seconds(), "wall-s")
				b.ReportMetric(dovecottest.CPU(srv)-cpu0, "server-cpu-s")
				a.close()
				srv.Stop()
			}
		})
	}
}
