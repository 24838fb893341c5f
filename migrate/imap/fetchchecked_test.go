package imap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// Fetch takes a small message's BODY[] where it is sure to be the stored
// bytes (fetchahead.go: the listed size, and no 0x80 byte, which is how
// Dovecot serves a stored NUL, unless BINARY[] would decode the message
// anyway), pipelined, without asking any message's encoding first. The
// others (a plain message with a 0x80 byte, one with a NUL, one larger
// than checkedMax) go the old way: a header FETCH for their encodings,
// then BINARY[]; the large one's both beside the pipelined FETCHes, the
// others' once those are read. Every message comes back as it was
// stored, NUL included.
func TestFetchTakesTheBodiesItCanTrust(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	stored := []string{
		"Message-ID: <plain@enc.test>\r\nSubject: plain\r\n\r\nplain\r\n",
		"Message-ID: <7bit@enc.test>\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\nseven\r\n",
		"Message-ID: <b64@enc.test>\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n",
		"Message-ID: <qp@enc.test>\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nplain text=\r\n\r\n",
		"Message-ID: <empty@enc.test>\r\nContent-Transfer-Encoding:\r\n\r\nbody\r\n",
		"Message-ID: <mp@enc.test>\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\npart \xc3\x80\r\n--x--\r\n",
		"Message-ID: <rfc822@enc.test>\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner\r\n",
		"Message-ID: <8bit@enc.test>\r\nContent-Transfer-Encoding: 8BIT\r\nContent-Type: text/plain\r\n\r\nb\xc3\xa9\r\n",
		"Message-ID: <x80@enc.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xc3\x80 la carte\r\n",
		"Message-ID: <large@enc.test>\r\nSubject: large\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", checkedMax/18+10),
	}
	nul := "Message-ID: <nul@enc.test>\r\nSubject: nul\r\n\r\na\x00b\r\n"
	var seed []dovecottest.SeedMessage
	for _, b := range stored {
		seed = append(seed, dovecottest.SeedMessage{Folder: "INBOX", Body: []byte(b), Date: time.Unix(1600000000, 0)})
	}
	srv.Seed(t, "alice", seed)
	ctx := context.Background()
	cfg := mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone}
	a, err := dialAppender(ctx, cfg, imapAuth{})
	if err != nil {
		t.Fatal(err)
	}
	a.binary = true // Dovecot has BINARY: the NUL goes as a literal8
	if err := a.add("INBOX", nil, time.Unix(1600000000, 0), []byte(nul)); err != nil {
		t.Fatal(err)
	}
	if outs, err := a.commit(); err != nil || len(outs) != 1 || outs[0].err != nil {
		t.Fatalf("storing the NUL message: %v %+v", err, outs)
	}
	a.close()
	stored = append(stored, nul)
	want := map[string][32]byte{} // by Message-ID: the stored bytes
	for _, b := range stored {
		want[formats.HeaderValue([]byte(b), "Message-ID")] = sha256.Sum256([]byte(b))
	}

	var headerFetches, binaryFetches atomic.Int64 // client -> server
	// events: "C" for each BODY[] FETCH the client sent, "H" for each
	// header FETCH, "B" for each BINARY[] FETCH, "S" for each FETCH the
	// server completed, in the order they passed the proxy.
	var evMu sync.Mutex
	var events []byte
	// The latency keeps a quick answer from passing the proxy before a
	// command sent just after its own.
	p, err := faultproxy.New(srv.IMAPAddr(), faultproxy.Faults{Latency: 15 * time.Millisecond, Tap: func(_ int, dir faultproxy.Dir, b []byte) {
		evMu.Lock()
		defer evMu.Unlock()
		if dir == faultproxy.ClientToServer {
			headerFetches.Add(int64(bytes.Count(bytes.ToUpper(b), []byte("CONTENT-TRANSFER-ENCODING"))))
			binaryFetches.Add(int64(bytes.Count(b, []byte("(UID BINARY.PEEK[])"))))
			// In the order they were sent, where they share a chunk.
			type sent struct {
				at   int
				what byte
			}
			var in []sent
			for _, k := range []struct {
				pat  string
				what byte
			}{{"(UID BODY.PEEK[])", 'C'}, {"CONTENT-TRANSFER-ENCODING", 'H'}, {"(UID BINARY.PEEK[])", 'B'}} {
				u := bytes.ToUpper(b)
				for i := 0; ; {
					j := bytes.Index(u[i:], []byte(k.pat))
					if j < 0 {
						break
					}
					in = append(in, sent{i + j, k.what})
					i += j + 1
				}
			}
			slices.SortFunc(in, func(x, y sent) int { return x.at - y.at })
			for _, e := range in {
				events = append(events, e.what)
			}
		} else {
			events = append(events, bytes.Repeat([]byte("S"), bytes.Count(b, []byte("OK Fetch completed")))...)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg.Addr = p.Addr()
	m, inbox := dialInbox(t, cfg)
	ids := map[uint32]string{} // UID -> Message-ID
	_, all, err := m.List(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(stored) {
		t.Fatalf("listed %d messages, stored %d", len(all), len(stored))
	}
	if err := m.Headers(ctx, inbox, all, func(msg formats.Message, h []byte) error {
		ids[msg.UID] = formats.HeaderValue(h, "Message-ID")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the proxy's tap runs after the write
	headerFetches.Store(0)
	evMu.Lock()
	events = events[:0]
	evMu.Unlock()

	// Batches of 3: the 10 small messages go in four FETCHes, two in
	// flight at a time; the 3 left go in one batch the old way.
	defer func(n int) { fetchBatch = n }(fetchBatch)
	fetchBatch = 3
	got := map[string]int{}
	if err := m.Fetch(ctx, inbox, all, func(msg formats.Message, body io.Reader) error {
		h := sha256.New()
		if _, err := io.Copy(h, body); err != nil {
			return err
		}
		id := ids[msg.UID]
		got[id]++
		if [32]byte(h.Sum(nil)) != want[id] {
			t.Errorf("%s: fetched bytes differ from the stored ones", id)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("%s: fetched %d times, want once", id, got[id])
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := headerFetches.Load(); n != 2 {
		t.Errorf("Fetch sent %d header FETCHes, want 2 (the large one's, then the two the pipelined path left)", n)
	}
	if n := binaryFetches.Load(); n != 2 {
		t.Errorf("Fetch sent %d BINARY[] FETCHes, want 2 (the large one's, beside the pipelined FETCHes; then the two they left: 0x80, NUL)", n)
	}
	evMu.Lock()
	defer evMu.Unlock()
	// The large message's BINARY[] goes out beside the pipelined FETCHes,
	// before the header FETCH of the two they leave (which waits for them
	// all); it went out with those two's after it, a round trip later.
	if b, h2 := bytes.IndexByte(events, 'B'), bytes.LastIndexByte(events, 'H'); b < 0 || b > h2 {
		t.Errorf("events %s: the first BINARY[] FETCH (B) went out after the last header FETCH (H)", events)
	}
	if !bytes.HasPrefix(events, []byte("HCC")) || bytes.Count(events, []byte("C")) < 4 {
		t.Errorf("BODY[] FETCHes sent (C), header FETCHes sent (H) and FETCHes completed (S) in the order %s, want at least 4 C (batches of 3), the large message's encoding asked first and the first two sent before any completed", events)
	}
}

// TestExactBody: which BODY[] literals the pipelined path takes as the
// stored bytes.
func TestExactBody(t *testing.T) {
	plain := "Subject: a\r\n\r\nplain\r\n"
	x80 := "Subject: a\r\n\r\n\xc3\x80\r\n"
	b64 := "Content-Transfer-Encoding: base64\r\n\r\nw4A=\r\n\xc3\x80\r\n"
	mp := "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\n\xc3\x80\r\n--x--\r\n"
	for _, tt := range []struct {
		body string
		size int64
		want bool
	}{
		{plain, int64(len(plain)), true},
		{plain, int64(len(plain)) + 1, false}, // not the size listed
		{x80, int64(len(x80)), false},         // 0x80 in a plain message: maybe a NUL
		{b64, int64(len(b64)), true},          // BINARY[] would decode it: BODY[] it is
		{mp, int64(len(mp)), true},
	} {
		if got := exactBody(formats.Message{Size: tt.size}, []byte(tt.body)); got != tt.want {
			t.Errorf("exactBody(%q, size %d) = %v, want %v", tt.body, tt.size, got, tt.want)
		}
	}
}

// TestFetchLeavesALiteralLargerThanListed: a message listed small whose
// BODY[] comes larger than checkedMax (a server whose RFC822.SIZE and
// BODY[] disagree; here the listed size is made up) is not taken from the
// pipelined BODY[] unchecked: Fetch asks its encoding the old way.
func TestFetchLeavesALiteralLargerThanListed(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	body := "Message-ID: <big@enc.test>\r\nSubject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", checkedMax/18+10)
	srv.Seed(t, "alice", []dovecottest.SeedMessage{{Folder: "INBOX", Body: []byte(body), Date: time.Unix(1600000000, 0)}})
	var headerFetches atomic.Int64
	p, err := faultproxy.New(srv.IMAPAddr(), faultproxy.Faults{Tap: func(_ int, dir faultproxy.Dir, b []byte) {
		if dir == faultproxy.ClientToServer {
			headerFetches.Add(int64(bytes.Count(bytes.ToUpper(b), []byte("CONTENT-TRANSFER-ENCODING"))))
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	m, inbox := dialInbox(t, mailconn.ServerConfig{Addr: p.Addr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone})
	_, msgs, err := m.List(ctx, inbox)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("listed %d messages: %v", len(msgs), err)
	}
	msgs[0].Size = 1000 // listed small
	n := 0
	if err := m.Fetch(ctx, inbox, msgs, func(msg formats.Message, r io.Reader) error {
		b, err := io.ReadAll(r)
		n++
		if string(b) != body {
			t.Errorf("fetched %d bytes, not the stored %d", len(b), len(body))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the proxy's tap runs after the write
	if n != 1 || headerFetches.Load() != 1 {
		t.Errorf("fetched %d times with %d header FETCHes, want once after 1", n, headerFetches.Load())
	}
}

// dialInbox connects as cfg says (closed when the test ends) and returns
// the session with its INBOX, the first folder Folders lists.
func dialInbox(t *testing.T, cfg mailconn.ServerConfig) (*IMAP, formats.Folder) {
	t.Helper()
	m, err := DialIMAP(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	folders, err := m.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m, folders[0]
}
