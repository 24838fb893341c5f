package migrate_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	mfimap "github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/memserver"
)

// probeCount wraps a destination connection and counts its same-mailbox
// probes (a CREATE and a DELETE at the destination each).
type probeCount struct {
	*mfimap.IMAP
	n *atomic.Int32
}

func (p *probeCount) Unwrap() migrate.Sink { return p.IMAP }

func (p *probeCount) Probe() (string, func(), error) {
	p.n.Add(1)
	return p.IMAP.Probe()
}

// TestSameAccountProbedOnlyWhenTheListingsAgree: for the same user on the
// same host (MaybeSameAccount), the probe folder is made only while the two
// listings could be of one mailbox. Once a folder of one name has a
// different UIDVALIDITY on each side (every rerun, where the destination's
// folders are mailferry's), the run writes nothing at the destination to
// tell them apart.
func TestSameAccountProbedOnlyWhenTheListingsAgree(t *testing.T) {
	src, dst := memPair(t)
	// memserver numbers UIDVALIDITY 1, 2, ... per user in creation order:
	// INBOX is 1 on both sides, and the destination's Other takes 2, so
	// the Work that the first run creates there gets 3 where the source's
	// has 2.
	if err := src.Add([]memserver.Message{
		{Folder: "INBOX", Body: []byte("Message-ID: <p1@example.org>\r\n\r\none\r\n")},
		{Folder: "Work", Body: []byte("Message-ID: <p2@example.org>\r\n\r\ntwo\r\n")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := dst.Add([]memserver.Message{{Folder: "Other", Body: []byte("Message-ID: <p3@example.org>\r\n\r\nthree\r\n")}}); err != nil {
		t.Fatal(err)
	}
	var probes atomic.Int32
	state := filepath.Join(t.TempDir(), "state.db")
	job := migrate.Job{SourceName: "src", DestName: "dst", MaybeSameAccount: true,
		Options:    migrate.Options{StatePath: state},
		OpenSource: func(context.Context) (migrate.Source, error) { return dialMem(src) },
		OpenSink: func(context.Context) (migrate.Sink, error) {
			m, err := dialMem(dst)
			if err != nil {
				return nil, err
			}
			return &probeCount{IMAP: m, n: &probes}, nil
		},
	}
	for run, want := range []int32{1, 0} {
		probes.Store(0)
		rep, err := migrate.Run(context.Background(), job)
		if err != nil {
			t.Fatalf("run %d: %v", run+1, err)
		}
		if got := probes.Load(); got != want {
			t.Errorf("run %d probed %d times, want %d", run+1, got, want)
		}
		if run == 0 && rep.Totals.Copied != 2 {
			t.Errorf("run 1 copied %d of 2", rep.Totals.Copied)
		}
	}
}

// TestDistinctListings: the rule by itself.
func TestDistinctListings(t *testing.T) {
	f := func(name string, validity uint32) formats.Folder {
		return formats.Folder{Name: name, Path: []string{name}, Validity: validity}
	}
	for _, c := range []struct {
		name     string
		src, dst []formats.Folder
		want     bool
	}{
		{"one mailbox listed twice", []formats.Folder{f("INBOX", 7), f("Work", 9)}, []formats.Folder{f("INBOX", 7), f("Work", 9)}, false},
		{"no folder in common", []formats.Folder{f("A", 1)}, []formats.Folder{f("B", 2)}, false},
		{"validity unknown", []formats.Folder{f("INBOX", 0)}, []formats.Folder{f("INBOX", 3)}, false},
		{"a folder of one name, two validities", []formats.Folder{f("INBOX", 7), f("Work", 9)}, []formats.Folder{f("INBOX", 7), f("Work", 12)}, true},
	} {
		if got := migrate.DistinctListings(c.src, c.dst); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
