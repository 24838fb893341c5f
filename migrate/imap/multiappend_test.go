package imap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

func TestParseAppendUIDs(t *testing.T) {
	tests := []struct {
		text string
		n    int
		want string
	}{
		{"[APPENDUID 38505 3955] APPEND completed", 1, "[3955]"},
		{"[APPENDUID 1 5:8] ok", 4, "[5 6 7 8]"},
		{"[APPENDUID 1 5,7,9:10] ok", 4, "[5 7 9 10]"},
		{"[APPENDUID 1 8:5] ok", 4, "[8 7 6 5]"},
		{"[APPENDUID 1 5:8] ok", 3, "[]"}, // count mismatch: unknown
		{"Append completed.", 1, "[]"},
		{"[APPENDUID 1 x] ok", 1, "[]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(parseAppendUIDs(tt.text, tt.n)); got != tt.want {
			t.Errorf("parseAppendUIDs(%q, %d) = %s, want %s", tt.text, tt.n, got, tt.want)
		}
	}
}

func TestWriteAppendItem(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	date := time.Date(2024, 2, 3, 4, 5, 6, 0, time.FixedZone("", 2*3600))
	writeAppendItem(w, []string{`\Seen`, `\Recent`, `$Forwarded`, `bad flag`, `(x`}, date, []byte("abc"), true)
	w.Flush()
	want := " (\\Seen $Forwarded) \"03-Feb-2024 04:05:06 +0200\" {3+}\r\nabc"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	// A NUL byte: a literal8 where the server has BINARY, else a literal.
	for binary, head := range map[bool]string{true: "~{3+}", false: " {3+}"} {
		b.Reset()
		writeAppendItem(w, nil, time.Time{}, []byte("a\x00b"), binary)
		w.Flush()
		if !bytes.Contains(b.Bytes(), []byte(head)) {
			t.Errorf("binary=%v: %q lacks %q", binary, b.String(), head)
		}
	}
	if q := quoteIMAP(`a"b\c`); q != `"a\"b\\c"` {
		t.Errorf("quoteIMAP = %s", q)
	}
}

// TestAppenderSpoolBudget: on a real Dovecot, batches beyond an appender's
// own maxOutstanding go out only while the process's spooled bytes in
// flight fit the budget, every message is stored once, and the budget is
// given back by commit and by close after a broken connection.
func TestAppenderSpoolBudget(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	cfg := mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone, Timeout: 20 * time.Second}
	ctx := context.Background()
	if n := spoolInFlight.Load(); n != 0 {
		t.Fatalf("%d spooled bytes in flight before the test", n)
	}
	body := func(i int) []byte {
		return []byte(fmt.Sprintf("Message-ID: <%d@budget>\r\nSubject: %d\r\n\r\n%s", i, i, strings.Repeat("0123456789abcdef\r\n", 5600)))
	}
	a, err := dialAppender(ctx, cfg, imapAuth{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 300 // ~100 KB each: 5 per batch, 60 batches, 30 MB, three budgets
	most, beyond := int64(0), false
	for i := range n {
		if err := a.add("INBOX", []string{`\Seen`}, time.Now(), body(i)); err != nil {
			t.Fatal(err)
		}
		most = max(most, spoolInFlight.Load())
		if len(a.outstanding) > maxOutstanding {
			beyond = true
		}
		if len(a.outstanding) > maxCommands {
			t.Fatalf("%d commands in flight, limit %d", len(a.outstanding), maxCommands)
		}
	}
	if most > spoolBudget+batchBytes+spoolMaxSize {
		t.Errorf("%d spooled bytes in flight at most, budget %d", most, spoolBudget)
	}
	if !beyond {
		t.Errorf("never more than %d batches in flight with the budget free", maxOutstanding)
	}
	outs, err := a.commit()
	if err != nil || len(outs) != n {
		t.Fatalf("commit: %v, %d outcomes for %d messages", err, len(outs), n)
	}
	seen := map[uint32]bool{}
	for i, o := range outs {
		if o.err != nil || o.uid == 0 || seen[o.uid] {
			t.Fatalf("message %d: uid %d, %v", i, o.uid, o.err)
		}
		seen[o.uid] = true
	}
	if got := spoolInFlight.Load(); got != 0 {
		t.Errorf("%d spooled bytes still counted in flight after commit", got)
	}
	a.close()

	// A connection that breaks with batches in flight gives them back on close.
	b, err := dialAppender(ctx, cfg, imapAuth{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if err := b.add("INBOX", nil, time.Now(), body(n+i)); err != nil {
			t.Fatal(err)
		}
	}
	b.closeBatch()
	if spoolInFlight.Load() == 0 {
		t.Fatal("nothing counted in flight")
	}
	b.conn.Close()
	if _, err := b.commit(); err == nil {
		t.Fatal("commit over a closed connection succeeded")
	}
	b.close()
	if got := spoolInFlight.Load(); got != 0 {
		t.Errorf("%d spooled bytes still counted in flight after close", got)
	}
}

// readCommand reads one client command with its LITERAL+ literals and
// returns its text (literals inline). A SELECT ahead of an APPEND
// (startAppend) is passed over unanswered: the appender does not wait for
// its answer, and over net.Pipe, which has no buffer, an answer written
// while the appender is still writing would block both.
func readCommand(br *bufio.Reader) (string, error) {
	for {
		cmd, err := readOneCommand(br)
		if err != nil || !isSelect(cmd) {
			return cmd, err
		}
	}
}

func isSelect(cmd string) bool {
	f := strings.Fields(cmd)
	return len(f) > 1 && f[1] == "SELECT"
}

func readOneCommand(br *bufio.Reader) (string, error) {
	var cmd strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return cmd.String(), err
		}
		cmd.WriteString(line)
		trimmed := strings.TrimRight(line, "\r\n")
		open := strings.LastIndex(trimmed, "{")
		if open < 0 || !strings.HasSuffix(trimmed, "+}") {
			return cmd.String(), nil
		}
		var n int
		if _, err := fmt.Sscanf(trimmed[open:], "{%d+}", &n); err != nil {
			return cmd.String(), err
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(br, lit); err != nil {
			return cmd.String(), err
		}
		cmd.Write(lit)
	}
}

// TestAppenderAnswerNotARefusal: only a tagged NO or BAD refuses a
// MULTIAPPEND (which is then sent again message by message). A garbled
// tagged line (here the server's "M1 " cut off by an injected BYE, as a
// broken link or proxy leaves it) or an untagged BYE says nothing about the
// batch, which the server may have stored: the appender must give up the
// connection and send nothing more, or the engine's resume would find the
// batch stored and its first message stored twice. The NO case shows the
// test can tell the difference.
func TestAppenderAnswerNotARefusal(t *testing.T) {
	cases := []struct {
		name, answer string
		refusal      bool
	}{
		{"garbled tagged line", "M1 * BYE Server shutting down.\r\n", false},
		{"untagged BYE", "* BYE Server shutting down.\r\n", false},
		{"unknown status", "M1 MAYBE [APPENDUID 1 1:2] ok\r\n", false},
		{"tagged NO", "M1 NO [LIMIT] too big\r\n", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer server.Close()
			a := &appender{conn: client, br: bufio.NewReader(client), bw: bufio.NewWriter(client),
				cfg: mailconn.ServerConfig{Addr: "test"}, timeout: 5 * time.Second}
			after := make(chan []string, 1)
			go func() {
				br := bufio.NewReader(server)
				if _, err := readCommand(br); err != nil { // M1: the batch
					after <- []string{"error reading the batch: " + err.Error()}
					return
				}
				// The peer goes on reading: over a real link, what the client
				// sends before the connection is gone can still arrive.
				server.Write([]byte(c.answer))
				var more []string
				for {
					cmd, err := readCommand(br)
					if err != nil {
						break
					}
					tag, verb := strings.Fields(cmd)[0], strings.Fields(cmd)[1]
					if verb == "LOGOUT" {
						break
					}
					more = append(more, verb)
					server.Write([]byte(tag + " OK [APPENDUID 1 7] done\r\n"))
				}
				after <- more
			}()
			for i := range 2 {
				body := []byte(fmt.Sprintf("Message-ID: <%d@refusal>\r\n\r\nbody\r\n", i))
				if err := a.add("INBOX", nil, time.Time{}, body); err != nil {
					t.Fatal(err)
				}
			}
			outs, err := a.commit()
			if c.refusal {
				a.close()
			} else {
				var re *migrate.RetryableError
				if !errors.As(err, &re) {
					t.Errorf("commit: %v (%d outcomes), want a retryable error", err, len(outs))
				}
				if _, err := a.commit(); err == nil {
					t.Error("a second commit on the lost connection succeeded")
				}
				a.close()
			}
			more := <-after
			if c.refusal && (err != nil || len(outs) != 2 || len(more) != 2) {
				t.Errorf("a refused batch of 2: commit %v, %d outcomes, %d single APPENDs sent again (%v), want 2", err, len(outs), len(more), more)
			}
			if !c.refusal && len(more) != 0 {
				t.Errorf("after %q the appender sent %v: the batch may be stored already", c.answer, more)
			}
		})
	}
}

// TestAppenderSpoolPacksAndResends: messages read into the spool by
// addFrom keep about their own size in memory (small ones packed into
// chunks, not a 4 KiB buffer each), a source that fails half-way through a
// message leaves nothing of it in the batch, and a refused batch is sent
// again message by message with every body intact (SHA-256), also those
// packed side by side and the one in a buffer of its own.
func TestAppenderSpoolPacksAndResends(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	a := &appender{conn: client, br: bufio.NewReader(client), bw: bufio.NewWriter(client),
		cfg: mailconn.ServerConfig{Addr: "test"}, timeout: 5 * time.Second}
	type got struct {
		verb     string
		literals [][]byte
	}
	cmds := make(chan got, 1000)
	go func() {
		defer close(cmds)
		br := bufio.NewReader(server)
		for i := 0; ; i++ {
			text, lits, err := readLiterals(br)
			if err != nil {
				return
			}
			f := strings.Fields(text)
			if f[1] == "SELECT" { // startAppend's, not awaited: passed over (see readCommand)
				i--
				continue
			}
			cmds <- got{f[1], lits}
			switch {
			case f[1] == "LOGOUT":
				return
			case i == 0: // the batch: refused, all or nothing
				server.Write([]byte(f[0] + " NO [LIMIT] refused\r\n"))
			default:
				server.Write([]byte(fmt.Sprintf("%s OK [APPENDUID 1 %d] done\r\n", f[0], i)))
			}
		}
	}()
	var want [][32]byte
	spooled := 0
	for i := range 200 {
		size := 900 + i*7 // packed, across several chunks
		if i == 100 {
			size = spoolPackMax + 1 // a buffer of its own
		}
		body := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		copy(body, fmt.Sprintf("Message-ID: <%d@pack>\r\n\r\n", i))
		if i == 50 { // the source breaks half-way: nothing of it is queued
			err := a.addFrom("INBOX", nil, time.Time{}, int64(size), io.MultiReader(bytes.NewReader(body[:size/2]), iotest.ErrReader(io.ErrClosedPipe)))
			var re *migrate.RetryableError
			if !errors.As(err, &re) {
				t.Fatalf("a source that broke: %v, want a retryable error", err)
			}
		}
		if err := a.addFrom("INBOX", []string{`\Seen`}, time.Time{}, int64(size), bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		want = append(want, sha256.Sum256(body))
		spooled += size
	}
	held := 0
	for _, c := range a.open.chunks {
		held += cap(*c)
	}
	for _, m := range a.open.msgs {
		if m.pooled {
			held += cap(m.body)
		}
	}
	if len(a.open.msgs) != 200 || held > spooled+spooled/4+spoolChunkSize {
		t.Errorf("%d messages, %d bytes, held in %d bytes of spool", len(a.open.msgs), spooled, held)
	}
	outs, err := a.commit()
	if err != nil || len(outs) != 200 {
		t.Fatalf("commit: %v, %d outcomes", err, len(outs))
	}
	a.close()
	var all []got
	for c := range cmds {
		all = append(all, c)
	}
	if len(all) < 201 || len(all[0].literals) != 200 {
		t.Fatalf("%d commands, the batch with %d messages; want the batch of 200 and 200 single APPENDs", len(all), len(all[0].literals))
	}
	for i, w := range want {
		for _, sent := range [][]byte{all[0].literals[i], all[1+i].literals[0]} {
			if sha256.Sum256(sent) != w {
				t.Fatalf("message %d: sent %d bytes with another SHA-256", i, len(sent))
			}
		}
	}
}

// readLiterals reads one client command with its LITERAL+ literals and
// returns its first line and the literals.
func readLiterals(br *bufio.Reader) (string, [][]byte, error) {
	var first string
	var lits [][]byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return first, lits, err
		}
		if first == "" {
			first = line
		}
		trimmed := strings.TrimRight(line, "\r\n")
		open := strings.LastIndex(trimmed, "{")
		if open < 0 || !strings.HasSuffix(trimmed, "+}") {
			return first, lits, nil
		}
		var n int
		if _, err := fmt.Sscanf(trimmed[open:], "{%d+}", &n); err != nil {
			return first, lits, err
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(br, lit); err != nil {
			return first, lits, err
		}
		lits = append(lits, lit)
	}
}

// fakeAppendServer is an appender talking to a server over net.Pipe that
// answers each APPEND with its UIDs, or NO where refuse(tag) says so;
// verbs gives "VERB/literals" of every command it was sent, in order.
func fakeAppendServer(t *testing.T, refuse func(tag string) bool) (a *appender, verbs func() []string) {
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	a = &appender{conn: client, br: bufio.NewReader(client), bw: bufio.NewWriter(client),
		cfg: mailconn.ServerConfig{Addr: "test"}, timeout: 5 * time.Second}
	var mu sync.Mutex
	var sent []string
	answers := make(chan string, 100) // net.Pipe has no buffer: answer beside reading
	go func() {
		for a := range answers {
			server.Write([]byte(a))
		}
	}()
	go func() {
		defer close(answers)
		br := bufio.NewReader(server)
		uid := 0
		for {
			text, lits, err := readLiterals(br)
			if err != nil {
				return
			}
			f := strings.Fields(text)
			mu.Lock()
			sent = append(sent, fmt.Sprintf("%s/%d", f[1], len(lits)))
			mu.Unlock()
			if f[1] == "LOGOUT" {
				return
			}
			if refuse(f[0]) {
				answers <- f[0] + " NO refused\r\n"
				continue
			}
			answers <- fmt.Sprintf("%s OK [APPENDUID 1 %d:%d] done\r\n", f[0], uid+1, uid+len(lits))
			uid += len(lits)
		}
	}()
	return a, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sent)
	}
}

// TestAppenderCommitSome: commitSome gives the outcomes of the batches that
// were in flight at the last commitSome and waits for nothing newer (the
// first one waits for nothing at all), and the rest come with the next
// commit; when one of the older batches was refused, it becomes a whole
// commit (each message of the refused batch sent again alone, with nothing
// else in flight), and every message has exactly one outcome.
func TestAppenderCommitSome(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refused=%v", refuse), func(t *testing.T) {
			a, verbs := fakeAppendServer(t, func(tag string) bool { return refuse && tag == "M1" })
			add := func(from, n int) {
				for i := from; i < from+n; i++ {
					if err := a.add("INBOX", nil, time.Time{}, []byte(fmt.Sprintf("Message-ID: <%d@some>\r\n\r\nx\r\n", i))); err != nil {
						t.Fatal(err)
					}
				}
			}
			add(0, 3)
			a.closeBatch() // M1: 3 messages
			add(3, 2)      // M2: 2 messages, closed by commitSome
			// The first commitSome waits for nothing: both were sent since
			// the last one (there was none).
			outs, err := a.commitSome()
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) != 0 || len(a.outstanding) != 2 {
				t.Fatalf("first commitSome: %d outcomes, %d batches in flight; want 0 and 2", len(outs), len(a.outstanding))
			}
			add(5, 1) // M3: 1 message, sent since
			more, err := a.commitSome()
			if err != nil {
				t.Fatal(err)
			}
			want, inFlight := 5, 1 // M1 and M2 waited for, M3 in flight
			if refuse {
				want, inFlight = 6, 0 // a whole commit
			}
			if outs = append(outs, more...); len(outs) != want || len(a.outstanding) != inFlight {
				t.Fatalf("second commitSome: %d outcomes, %d batches in flight; want %d and %d", len(outs), len(a.outstanding), want, inFlight)
			}
			rest, err := a.commit()
			if err != nil || len(outs)+len(rest) != 6 {
				t.Fatalf("commit: %v, %d outcomes; want 6 in all", err, len(outs)+len(rest))
			}
			for i, o := range append(outs, rest...) {
				if o.err != nil || o.uid == 0 {
					t.Errorf("message %d: uid %d, %v", i, o.uid, o.err)
				}
			}
			a.close()
			// One SELECT of INBOX ahead of the first APPEND (startAppend).
			wantVerbs := "[SELECT/0 APPEND/3 APPEND/2 APPEND/1]"
			if refuse {
				wantVerbs = "[SELECT/0 APPEND/3 APPEND/2 APPEND/1 APPEND/1 APPEND/1 APPEND/1]"
			}
			// Every APPEND was answered, so recorded; the LOGOUT may not be yet.
			sent := verbs()
			if got := fmt.Sprint(slices.DeleteFunc(slices.Clone(sent), func(v string) bool { return v == "LOGOUT/0" })); got != wantVerbs {
				t.Errorf("the server was sent %v, want %s", sent, wantVerbs)
			}
		})
	}
}

// TestAppenderCommitSomeBoundsTheQueue: a partial commit also waits while
// more than batchMessages messages are in flight (each is held in the
// engine's queue until answered), even for batches sent since the last one.
func TestAppenderCommitSomeBoundsTheQueue(t *testing.T) {
	a, _ := fakeAppendServer(t, func(string) bool { return false })
	for i := range batchMessages + 5 { // a full batch, sent, and 5 in the next
		if err := a.add("INBOX", nil, time.Time{}, []byte(fmt.Sprintf("Message-ID: <%d@q>\r\n\r\nx\r\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	outs, err := a.commitSome()
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != batchMessages || len(a.outstanding) != 1 {
		t.Fatalf("commitSome: %d outcomes, %d batches in flight; want %d and 1", len(outs), len(a.outstanding), batchMessages)
	}
	rest, err := a.commit()
	if err != nil || len(outs)+len(rest) != batchMessages+5 {
		t.Fatalf("commit: %v, %d outcomes in all, want %d", err, len(outs)+len(rest), batchMessages+5)
	}
	a.close()
}

// TestAppenderDeeperOnASlowLink: on a slow link (deep) a partial commit
// lets slowInFlight messages be in flight before it waits, and an
// appender keeps slowOutstanding spooled batches of many small messages
// of its own in flight whatever the process's spool budget; elsewhere,
// and for batches of few messages, batchMessages and maxOutstanding.
// Every message is answered once either way.
func TestAppenderDeeperOnASlowLink(t *testing.T) {
	for _, deep := range []bool{false, true} {
		t.Run(fmt.Sprintf("deep=%v", deep), func(t *testing.T) {
			a, _ := fakeAppendServer(t, func(string) bool { return false })
			a.deep = deep
			n := 2*batchMessages + 5 // two full batches, sent, and 5 in the third
			for i := range n {
				if err := a.add("INBOX", nil, time.Time{}, []byte(fmt.Sprintf("Message-ID: <%d@deep>\r\n\r\nx\r\n", i))); err != nil {
					t.Fatal(err)
				}
			}
			outs, err := a.commitSome()
			if err != nil {
				t.Fatal(err)
			}
			wantOuts, wantFlight := 2*batchMessages, 1
			if deep {
				wantOuts, wantFlight = 0, 3
			}
			if len(outs) != wantOuts || len(a.outstanding) != wantFlight {
				t.Fatalf("commitSome: %d outcomes, %d batches in flight; want %d and %d", len(outs), len(a.outstanding), wantOuts, wantFlight)
			}
			rest, err := a.commit()
			if err != nil || len(outs)+len(rest) != n {
				t.Fatalf("commit: %v, %d outcomes in all, want %d", err, len(outs)+len(rest), n)
			}

			// The spool: with the budget taken by others, a batch waits
			// once the appender has its own number in flight: more on a
			// slow link, where each holds slowBatchMessages or more.
			spoolInFlight.Add(spoolBudget)
			defer spoolInFlight.Add(-spoolBudget)
			for _, per := range []int{1, slowBatchMessages} {
				for i := range slowOutstanding {
					a.open = &appendBatch{tag: a.nextTag(), mailbox: "INBOX"}
					for j := range per {
						if err := a.queue(nil, time.Time{}, []byte(fmt.Sprintf("Message-ID: <%d.%d.%d@spool>\r\n\r\nx\r\n", per, i, j)), false); err != nil {
							t.Fatal(err)
						}
					}
					if err := a.closeBatch(); err != nil {
						t.Fatal(err)
					}
					own := maxOutstanding
					if deep && per >= slowBatchMessages {
						own = slowOutstanding
					}
					if got, want := a.full(), i+1 >= own; got != want {
						t.Errorf("with %d spooled batches of %d in flight: full = %v, want %v", i+1, per, got, want)
					}
				}
				if _, err := a.commit(); err != nil {
					t.Fatal(err)
				}
			}
			a.close()
		})
	}
}

// CarryBatch (migrate.BatchCarrier) lets a window's batch stay in flight
// across the window's end only on a slow link, told by the main
// connection's first command and the appender's LOGIN: never before the
// appender is open, not on loopback, and through a proxy that adds 20 ms
// a round trip; not where only the LOGIN was slow.
func TestCarryBatchOnlyOnASlowLink(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	ctx := context.Background()
	p, err := faultproxy.New(srv.IMAPAddr(), faultproxy.Faults{Latency: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, c := range []struct {
		name string
		addr string
		want bool
	}{{"loopback", srv.IMAPAddr(), false}, {"20 ms", p.Addr(), true}} {
		m, err := DialIMAP(ctx, mailconn.ServerConfig{Addr: c.addr, User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone})
		if err != nil {
			t.Fatal(err)
		}
		if m.CarryBatch() {
			t.Errorf("%s: CarryBatch before the appender is open", c.name)
		}
		if err := m.appenderReady(ctx); err != nil {
			t.Fatal(err)
		}
		if got := m.CarryBatch(); got != c.want {
			t.Errorf("%s: CarryBatch = %v with a LOGIN round trip of %v, want %v", c.name, got, m.app.login, c.want)
		}
		if m.app.deep != c.want {
			t.Errorf("%s: the appender's deep = %v, want %v", c.name, m.app.deep, c.want)
		}
		m.Close()
	}
	// A slow LOGIN alone (as on a loaded loopback: the main connection's
	// first command was quick) is not a slow link.
	m, err := DialIMAP(ctx, mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.cfg.Addr = p.Addr() // the appender dials through the 20 ms proxy
	if err := m.appenderReady(ctx); err != nil {
		t.Fatal(err)
	}
	if m.app.login < slowLink {
		t.Fatalf("the appender's LOGIN through the proxy took %v: the test proves nothing", m.app.login)
	}
	if m.CarryBatch() || m.app.deep {
		t.Errorf("CarryBatch %v, deep %v with a LOGIN of %v but a first command of %v", m.CarryBatch(), m.app.deep, m.app.login, m.rtt)
	}
}

// TestAppenderSelectsTheFolderItWritesTo: on Dovecot, the appender SELECTs
// a folder before its first APPEND into it, and again when it comes back
// to it after another (startAppend: APPEND into a folder that is not
// selected costs Dovecot a reading of the folder's whole file list each
// time). The server accepts each SELECT; every message arrives whole
// (SHA-256) with its flags, once, in the folder it was meant for: batched,
// streamed (too large for the spool), and into a name that needs quoting
// and modified UTF-7. Selecting read-write and switching folders deletes
// nothing: a message marked \Deleted before is still there after.
func TestAppenderSelectsTheFolderItWritesTo(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	date := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	const other = "B/Ça \"va\""
	before := []dovecottest.SeedMessage{
		{Folder: "A", Body: []byte("Message-ID: <old@select>\r\n\r\nthere before\r\n"), Flags: []string{`\Deleted`}, Date: date},
		{Folder: other, Body: []byte("Message-ID: <old2@select>\r\n\r\nthere before\r\n"), Flags: []string{`\Deleted`, `\Seen`}, Date: date},
	}
	srv.Seed(t, "alice", before)
	var mu sync.Mutex
	sent, answered := map[int]*bytes.Buffer{}, map[int]*bytes.Buffer{}
	p, err := faultproxy.New(srv.IMAPAddr(), faultproxy.Faults{Tap: func(conn int, dir faultproxy.Dir, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		m := sent
		if dir == faultproxy.ServerToClient {
			m = answered
		}
		if m[conn] == nil {
			m[conn] = &bytes.Buffer{}
		}
		m[conn].Write(b)
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
	if err := m.appenderReady(ctx); err != nil {
		t.Fatal(err)
	}
	a := m.app
	type put struct {
		folder string
		flags  []string
		body   []byte
		stream bool
	}
	big := bytes.Repeat([]byte("a streamed line of a large message\r\n"), spoolMaxSize/36+10)
	puts := []put{
		{"A", []string{`\Seen`}, []byte("Message-ID: <1@select>\r\n\r\none\r\n"), false},
		{"A", nil, []byte("Message-ID: <2@select>\r\n\r\ntwo\r\n"), false},
		{other, []string{`\Flagged`}, []byte("Message-ID: <3@select>\r\n\r\nthree\r\n"), false},
		{"A", []string{`\Draft`}, append([]byte("Message-ID: <4@select>\r\n\r\n"), big...), true},
	}
	for _, x := range puts {
		var err error
		if x.stream {
			err = a.addStream(x.folder, x.flags, date, int64(len(x.body)), bytes.NewReader(x.body))
		} else {
			err = a.add(x.folder, x.flags, date, x.body)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	outs, err := a.commit()
	if err != nil || len(outs) != len(puts) {
		t.Fatalf("commit: %v, %d outcomes for %d messages", err, len(outs), len(puts))
	}
	for i, o := range outs {
		if o.err != nil || o.uid == 0 {
			t.Errorf("message %d: uid %d, %v", i, o.uid, o.err)
		}
	}
	m.Close()                         // the appender's LOGOUT
	time.Sleep(50 * time.Millisecond) // the proxy's tap runs after the write

	// The appender's connection is the one that APPENDed: its SELECTs and
	// APPENDs in order, each with the quoted folder name it gave.
	mu.Lock()
	var folders []string
	conn := -1
	for c, b := range sent {
		if !bytes.Contains(b.Bytes(), []byte(" APPEND ")) {
			continue
		}
		conn = c
		for _, line := range strings.Split(b.String(), "\r\n") {
			f := strings.SplitN(line, " ", 3)
			if len(f) < 3 || f[1] != "SELECT" && f[1] != "APPEND" {
				continue
			}
			end := 1 // the quoted name ends at the first unescaped quote
			for end < len(f[2]) && f[2][end] != '"' {
				if f[2][end] == '\\' {
					end++
				}
				end++
			}
			folders = append(folders, f[1]+" "+f[2][:min(end+1, len(f[2]))])
		}
	}
	var answers string
	if conn >= 0 {
		answers = answered[conn].String()
	}
	mu.Unlock()
	quoted := quoteIMAP(formats.EncodeMailboxUTF7(other))
	want := []string{`SELECT "A"`, `APPEND "A"`, "SELECT " + quoted, "APPEND " + quoted, `SELECT "A"`, `APPEND "A"`}
	if !slices.Equal(folders, want) {
		t.Errorf("the appender sent\n  %s\nwant\n  %s", strings.Join(folders, "\n  "), strings.Join(want, "\n  "))
	}
	for i := 1; i <= 3; i++ {
		if !strings.Contains(answers, fmt.Sprintf("\r\nS%d OK ", i)) {
			t.Errorf("Dovecot did not answer SELECT S%d with OK: %q", i, clip(answers))
		}
	}

	snap := srv.Snapshot(t, "alice")
	count := func(folder string, body []byte, flags []string) {
		t.Helper()
		sum := fmt.Sprintf("%x", sha256.Sum256(body))
		found := 0
		for _, st := range snap[folder] {
			if st.SHA256 == sum {
				found++
				if want := slices.Sorted(slices.Values(flags)); !slices.Equal(st.Flags, want) && len(st.Flags)+len(want) > 0 {
					t.Errorf("%s: flags %v, want %v", folder, st.Flags, want)
				}
			}
		}
		if found != 1 {
			t.Errorf("%s holds %d copies of a message stored once (%d bytes)", folder, found, len(body))
		}
	}
	for _, x := range puts {
		count(x.folder, x.body, x.flags)
	}
	for _, x := range before {
		count(x.Folder, x.Body, x.Flags) // marked \Deleted, not expunged
	}
	if n := len(snap["A"]) + len(snap[other]); n != len(puts)+len(before) {
		t.Errorf("%d messages in the two folders, want %d", n, len(puts)+len(before))
	}
}
