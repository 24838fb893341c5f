package imap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// A listing for a first copy (ListForCopy, ListUIDs) carries each
// message's encoding, so that Fetch sends no header FETCH of its own to
// choose between BINARY[] and BODY[]: on a slow link that is a round trip
// per batch. The bytes are still what BODY[] serves, message for message,
// and a plain List leaves Fetch to ask as before.
func TestListForCopyTellsFetchTheEncoding(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	bodies := map[string]formats.Encoding{
		"Message-ID: <plain@enc.test>\r\nSubject: plain\r\n\r\nplain\r\n":                                                 formats.EncodingIdentity,
		"Message-ID: <7bit@enc.test>\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\nseven\r\n":     formats.EncodingIdentity,
		"Message-ID: <b64@enc.test>\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n":                     formats.EncodingEncoded,
		"Message-ID: <qp@enc.test>\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nplain text=\r\n\r\n":             formats.EncodingEncoded,
		"Message-ID: <empty@enc.test>\r\nContent-Transfer-Encoding:\r\n\r\nbody\r\n":                                      formats.EncodingEncoded,
		"Message-ID: <mp@enc.test>\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\npart\r\n--x--\r\n":      formats.EncodingEncoded,
		"Message-ID: <rfc822@enc.test>\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner\r\n":            formats.EncodingEncoded,
		"Message-ID: <8bit@enc.test>\r\nContent-Transfer-Encoding: 8BIT\r\nContent-Type: text/plain\r\n\r\nb\xc3\xa9\r\n": formats.EncodingIdentity,
	}
	var seed []dovecottest.SeedMessage
	want := map[string]formats.Encoding{} // by Message-ID
	for b, enc := range bodies {
		seed = append(seed, dovecottest.SeedMessage{Folder: "INBOX", Body: []byte(b), Date: time.Unix(1600000000, 0)})
		want[formats.HeaderValue([]byte(b), "Message-ID")] = enc
	}
	srv.Seed(t, "alice", seed)
	served := map[uint32]string{} // UID -> SHA-256 of BODY[]
	for _, m := range srv.Snapshot(t, "alice")["INBOX"] {
		served[m.UID] = m.SHA256
	}

	var headerFetches atomic.Int64 // client -> server commands naming the header fields
	// events: "C" for each body FETCH the client sent, "S" for each FETCH
	// the server completed, in the order they passed the proxy.
	var evMu sync.Mutex
	var events []byte
	p, err := faultproxy.New(srv.IMAPAddr(), faultproxy.Faults{Tap: func(_ int, dir faultproxy.Dir, b []byte) {
		evMu.Lock()
		defer evMu.Unlock()
		if dir == faultproxy.ClientToServer {
			headerFetches.Add(int64(bytes.Count(bytes.ToUpper(b), []byte("CONTENT-TRANSFER-ENCODING"))))
			n := bytes.Count(b, []byte("(UID BINARY.PEEK[])")) + bytes.Count(b, []byte("(UID BODY.PEEK[])"))
			events = append(events, bytes.Repeat([]byte("C"), n)...)
		} else {
			events = append(events, bytes.Repeat([]byte("S"), bytes.Count(b, []byte("OK Fetch completed")))...)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	m, err := DialIMAP(ctx, mailconn.ServerConfig{Addr: p.Addr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	folders, err := m.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inbox := folders[0]

	// fetch fetches msgs and checks every body against BODY[]; it returns
	// how many header FETCHes went out meanwhile.
	fetch := func(how string, msgs []formats.Message) int64 {
		t.Helper()
		before := headerFetches.Load()
		n := 0
		if err := m.Fetch(ctx, inbox, msgs, func(msg formats.Message, body io.Reader) error {
			h := sha256.New()
			if _, err := io.Copy(h, body); err != nil {
				return err
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != served[msg.UID] {
				t.Errorf("%s: UID %d: fetched bytes differ from BODY[]", how, msg.UID)
			}
			n++
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		if n != len(bodies) {
			t.Errorf("%s: fetched %d of %d", how, n, len(bodies))
		}
		time.Sleep(50 * time.Millisecond) // the proxy's tap runs after the write
		return headerFetches.Load() - before
	}
	// checkEncodings compares each listed message's Encoding with want.
	checkEncodings := func(how string, msgs []formats.Message, fetched map[uint32]string) {
		t.Helper()
		if len(msgs) != len(bodies) {
			t.Fatalf("%s: listed %d messages, want %d", how, len(msgs), len(bodies))
		}
		for _, msg := range msgs {
			if got, w := msg.Encoding, want[fetched[msg.UID]]; got != w {
				t.Errorf("%s: %s: Encoding %d, want %d", how, fetched[msg.UID], got, w)
			}
		}
	}
	ids := map[uint32]string{} // UID -> Message-ID
	_, all, err := m.List(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Headers(ctx, inbox, all, func(msg formats.Message, h []byte) error {
		ids[msg.UID] = formats.HeaderValue(h, "Message-ID")
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	for _, msg := range all {
		if msg.Encoding != formats.EncodingUnknown {
			t.Errorf("List: UID %d has Encoding %d: a plain listing does not look", msg.UID, msg.Encoding)
		}
	}
	if n := fetch("after List", all); n != 1 {
		t.Errorf("after List: Fetch sent %d header FETCHes, want 1 (the encodings are not known)", n)
	}

	// Batches of 3: the 8 messages go in several FETCHes of each kind, two
	// in flight at a time.
	defer func(n int) { fetchBatch = n }(fetchBatch)
	fetchBatch = 3
	_, forCopy, err := m.ListForCopy(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	checkEncodings("ListForCopy", forCopy, ids)
	time.Sleep(50 * time.Millisecond) // the listing's completion passed the proxy
	evMu.Lock()
	events = events[:0]
	evMu.Unlock()
	if n := fetch("after ListForCopy", forCopy); n != 0 {
		t.Errorf("after ListForCopy: Fetch sent %d header FETCHes, want none", n)
	}
	// The bodies' FETCHes are pipelined: the second goes out before the
	// first is answered.
	evMu.Lock()
	if !bytes.HasPrefix(events, []byte("CC")) || bytes.Count(events, []byte("C")) < 3 {
		t.Errorf("body FETCHes sent (C) and completed (S) in the order %s, want at least 3 (batches of 3), the first two sent before any completed", events)
	}
	evMu.Unlock()

	_, window, err := m.ListUIDs(ctx, inbox, 1, inbox.UIDNext-1)
	if err != nil {
		t.Fatal(err)
	}
	checkEncodings("ListUIDs", window, ids)
	if n := fetch("after ListUIDs", window); n != 0 {
		t.Errorf("after ListUIDs: Fetch sent %d header FETCHes, want none", n)
	}
}
