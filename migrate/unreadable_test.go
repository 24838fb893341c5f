package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	mfimap "github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/memserver"
)

// unreadableSource passes the message with UID bad as a formats.Unreadable,
// as a source does for a message it lists but cannot read.
type unreadableSource struct {
	*mfimap.IMAP
	bad uint32
}

func (s *unreadableSource) Fetch(ctx context.Context, f formats.Folder, msgs []formats.Message, fn func(formats.Message, io.Reader) error) error {
	return s.IMAP.Fetch(ctx, f, msgs, func(m formats.Message, body io.Reader) error {
		if m.UID == s.bad {
			io.Copy(io.Discard, body)
			return fn(m, formats.Unreadable{Err: errors.New("permission denied")})
		}
		return fn(m, body)
	})
}

// StartFetch is left out, so that every Fetch goes through Fetch above.
func (s *unreadableSource) StartFetch(formats.Folder, []formats.Message) func(context.Context, func(formats.Message, io.Reader) error) error {
	return nil
}

// A message the source lists but cannot read (formats.Unreadable) is named
// as failed and the folder's other messages are copied; it is not
// recorded, so the next run copies it once the source can read it.
func TestUnreadableMessageFailsAlone(t *testing.T) {
	src, dst := memPair(t)
	var msgs []memserver.Message
	for i := 1; i <= 5; i++ {
		msgs = append(msgs, memserver.Message{Folder: "INBOX", Body: []byte(fmt.Sprintf("Message-ID: <%d@unreadable>\r\nSubject: %d\r\n\r\nbody\r\n", i, i))})
	}
	if err := src.Add(msgs); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.db")
	run := func(bad uint32) *migrate.Report {
		job := migrate.Job{SourceName: "src", DestName: "dst", Options: migrate.Options{StatePath: state},
			OpenSource: func(context.Context) (migrate.Source, error) {
				m, err := dialMem(src)
				return &unreadableSource{IMAP: m, bad: bad}, err
			},
			OpenSink: func(context.Context) (migrate.Sink, error) { return dialMem(dst) },
		}
		rep, err := migrate.Run(context.Background(), job)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return rep
	}
	rep := run(3)
	if rep.Totals.Copied != 4 || rep.Totals.Failed != 1 || len(rep.Failures) != 1 || rep.Failures[0].UID != 3 ||
		!strings.Contains(rep.Failures[0].Error, "could not read it: permission denied") {
		t.Fatalf("copied %d, failed %d, failures %+v; want 4 copied and UID 3 failed", rep.Totals.Copied, rep.Totals.Failed, rep.Failures)
	}
	rep = run(0)
	if rep.Totals.Copied != 1 || rep.Totals.Failed != 0 {
		t.Fatalf("rerun: copied %d, failed %d; want UID 3 copied", rep.Totals.Copied, rep.Totals.Failed)
	}
	if !memSame(t, src, dst) {
		t.Fatalf("the destination differs from the source (SHA-256, flags, dates)")
	}
}
