package pop3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// scriptedPOP3 answers a POP3 session: extra's answers first, then a plain
// server with two messages ("a" and "b").
func scriptedPOP3(extra func(line string) (string, bool)) func(line string) string {
	return func(line string) string {
		if extra != nil {
			if a, ok := extra(line); ok {
				return a
			}
		}
		switch {
		case line == "CAPA":
			return "+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n"
		case strings.HasPrefix(line, "USER "), strings.HasPrefix(line, "PASS "):
			return "+OK\r\n"
		case line == "STAT":
			return "+OK 2 20\r\n"
		case line == "UIDL":
			return "+OK\r\n1 a\r\n2 b\r\n.\r\n"
		case line == "LIST":
			return "+OK\r\n1 10\r\n2 10\r\n.\r\n"
		case strings.HasPrefix(line, "RETR "):
			return "+OK\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
		case strings.HasPrefix(line, "DELE "), line == "RSET", line == "QUIT":
			return "+OK\r\n"
		}
		return "-ERR what?\r\n"
	}
}

// withPipelining adds PIPELINING to CAPA when pipe is set.
func withPipelining(pipe bool, extra func(string) (string, bool)) func(string) (string, bool) {
	return func(line string) (string, bool) {
		if pipe && line == "CAPA" {
			return "+OK\r\nUSER\r\nUIDL\r\nTOP\r\nPIPELINING\r\n.\r\n", true
		}
		return extra(line)
	}
}

// quitCount counts the QUIT commands a fake server received.
type quitCount struct {
	n, active atomic.Int32
}

// Load returns the count once the server has read all that its clients
// sent before they hung up (at most 5 s): Close does not wait for QUIT's
// answer where nothing was deleted.
func (q *quitCount) Load() int32 {
	for deadline := time.Now().Add(5 * time.Second); q.active.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return q.n.Load()
}

// hostilePOP3 serves scriptedPOP3(extra); quits counts the QUIT commands
// received.
func hostilePOP3(t *testing.T, greeting string, extra func(line string) (string, bool)) (cfg mailconn.ServerConfig, quits *quitCount) {
	t.Helper()
	quits = new(quitCount)
	answer := scriptedPOP3(extra)
	addr := fakePOP3Counting(t, greeting, func(line string) string {
		if line == "QUIT" {
			quits.n.Add(1)
		}
		return answer(line)
	}, &quits.active)
	return mailconn.ServerConfig{Addr: addr, User: "u", Password: "secret-pw", TLS: mailconn.TLSNone, Timeout: 300 * time.Millisecond}, quits
}

// Every library call the POP3 source makes, answered by a hostile server
// with what go-pop3 mishandles: lines it indexes without checking (UIDL or
// LIST lines with one field, a bare +OK to STAT), an empty line (which it
// takes for +OK), "+OK" glued to its text, a bare -ERR, a SASL continuation,
// a line longer than its 4096-byte buffer (which it splits in two). None may
// panic, log in, or be taken for a good answer; a failed connection never
// gets QUIT (which would commit DELE).
func TestPOP3HostileReplies(t *testing.T) {
	ctx := context.Background()
	on := func(cmd, answer string) func(string) (string, bool) {
		return func(line string) (string, bool) {
			return answer, line == cmd || strings.HasPrefix(line, cmd+" ")
		}
	}
	long := "+OK " + strings.Repeat("x", 5000) + "\r\n"

	// The greeting (NewConn) and the login (User, Pass, Cmd AUTH PLAIN).
	for _, tc := range []struct {
		name, greeting string
		extra          func(string) (string, bool)
		want           error // nil: any error that is not a login
	}{
		{"greeting: empty line", "\r\n", nil, mailconn.ErrProtocol},
		{"greeting: +OK glued to its text", "+OKready\r\n", nil, mailconn.ErrProtocol},
		{"greeting: a line over 4096 bytes", long, nil, mailconn.ErrProtocol},
		{"USER: empty line", "+OK\r\n", on("USER", "\r\n"), mailconn.ErrProtocol},
		{"USER: SASL continuation", "+OK\r\n", on("USER", "+ \r\n"), mailconn.ErrProtocol},
		{"PASS: empty line", "+OK\r\n", on("PASS", "\r\n"), mailconn.ErrProtocol},
		{"PASS: +OK glued to its text", "+OK\r\n", on("PASS", "+OKwelcome\r\n"), mailconn.ErrProtocol},
		{"PASS: a line over 4096 bytes", "+OK\r\n", on("PASS", long), mailconn.ErrProtocol},
		{"PASS: bare -ERR", "+OK\r\n", on("PASS", "-ERR\r\n"), migrate.ErrAuth},
		{"AUTH PLAIN: SASL continuation", "+OK\r\n", func(line string) (string, bool) {
			switch {
			case line == "CAPA":
				return "+OK\r\nSASL PLAIN\r\nUIDL\r\n.\r\n", true
			case strings.HasPrefix(line, "AUTH "):
				return "+ \r\n", true
			}
			return "", false
		}, mailconn.ErrProtocol},
		{"AUTH PLAIN: empty line", "+OK\r\n", func(line string) (string, bool) {
			switch {
			case line == "CAPA":
				return "+OK\r\nSASL PLAIN\r\nUIDL\r\n.\r\n", true
			case strings.HasPrefix(line, "AUTH "):
				return "\r\n", true
			}
			return "", false
		}, mailconn.ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := hostilePOP3(t, tc.greeting, tc.extra)
			p, err := DialPOP3(ctx, cfg)
			if err == nil {
				p.Close()
				t.Fatal("logged in")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), cfg.Password) {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}

	// CAPA (Cmd, multi-line) with an empty status line: go-pop3 reads the
	// listing as if it were +OK; it must not be used.
	t.Run("CAPA: empty line", func(t *testing.T) {
		cfg, _ := hostilePOP3(t, "+OK\r\n", on("CAPA", "\r\nUSER\r\nPIPELINING\r\n.\r\n"))
		p := dialPOP3(t, cfg)
		if p.caps != nil || p.pipelining {
			t.Fatalf("capabilities taken from a malformed CAPA answer: %v", p.caps)
		}
		if got := listPOP3(t, p); len(got) != 2 {
			t.Fatalf("listed %v", got)
		}
	})

	// STAT (Cmd), UIDL and LIST (Cmd, multi-line).
	for _, tc := range []struct {
		name  string
		extra func(string) (string, bool)
		call  func(p *POP3) error
	}{
		{"STAT: bare +OK", on("STAT", "+OK\r\n"), pop3Folders},
		{"STAT: words", on("STAT", "+OK two twenty\r\n"), pop3Folders},
		{"STAT: empty line", on("STAT", "\r\n"), pop3Folders},
		{"UIDL: one-field line", on("UIDL", "+OK\r\n1\r\n2 b\r\n.\r\n"), pop3List},
		{"UIDL: one-field line alone", on("UIDL", "+OK\r\n7\r\n.\r\n"), pop3List},
		{"UIDL: empty line", on("UIDL", "+OK\r\n\r\n.\r\n"), pop3List},
		{"UIDL: three fields", on("UIDL", "+OK\r\n1 a x\r\n.\r\n"), pop3List},
		{"UIDL: empty status line", on("UIDL", "\r\n1 a\r\n.\r\n"), pop3List},
		{"UIDL: +OK glued to its text", on("UIDL", "+OKhere\r\n1 a\r\n.\r\n"), pop3List},
		{"UIDL: cut mid-listing", on("UIDL", "STALL+OK\r\n1 a\r\n"), pop3List},
		{"UIDL: a line over 4096 bytes", on("UIDL", "+OK\r\n1 "+strings.Repeat("u", 5000)+"\r\n.\r\n"), pop3List},
		{"UIDL: a number past 32 bits", on("UIDL", "+OK\r\n1 a\r\n4294967297 b\r\n.\r\n"), pop3List},
		{"LIST: one-field line", on("LIST", "+OK\r\n1\r\n2 10\r\n.\r\n"), pop3List},
		{"LIST: one-field line alone", on("LIST", "+OK\r\n1\r\n.\r\n"), pop3List},
		{"LIST: size not a number", on("LIST", "+OK\r\n1 ten\r\n.\r\n"), pop3List},
		{"LIST: empty status line", on("LIST", "\r\n1 10\r\n.\r\n"), pop3List},
	} {
		// Each with and without PIPELINING (then UIDL and LIST go out together).
		for _, pipe := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, pipelining %v", tc.name, pipe), func(t *testing.T) {
				cfg, quits := hostilePOP3(t, "+OK\r\n", withPipelining(pipe, tc.extra))
				p := dialPOP3(t, cfg)
				if p.pipelining != pipe {
					t.Fatalf("pipelining %v, want %v", p.pipelining, pipe)
				}
				if err := tc.call(p); err == nil {
					t.Fatal("accepted")
				} else if migrate.IsRetryable(err) && !strings.Contains(tc.name, "cut") && !strings.Contains(err.Error(), mailconn.ErrProtocol.Error()) {
					t.Fatalf("%v: want a protocol error", err)
				}
				p.Close()
				if quits.Load() != 0 {
					t.Fatal("QUIT sent on a connection out of step")
				}
			})
		}
	}

	// UIDL refused (a plain -ERR, the session usable) while LIST went out
	// with it: LIST's answer is read too, so the next command is in step.
	t.Run("UIDL refused, pipelined", func(t *testing.T) {
		cfg, quits := hostilePOP3(t, "+OK\r\n", withPipelining(true, on("UIDL", "-ERR not today\r\n")))
		p := dialPOP3(t, cfg)
		if _, _, err := p.List(ctx, pop3Inbox); err == nil || !strings.Contains(err.Error(), "UIDL refused: not today") {
			t.Fatalf("%v: want UIDL refused", err)
		}
		if _, err := p.Folders(ctx); err != nil {
			t.Fatalf("the next command: %v (out of step?)", err)
		}
		p.Close()
		if quits.Load() != 1 {
			t.Fatal("no QUIT on a session in step")
		}
	})

	// RETR and TOP status lines (Send, then ReadOne).
	for _, verb := range []string{"RETR", "TOP"} {
		run := func(p *POP3, fn func(formats.Message, io.Reader) error) error {
			msgs := listPOP3(t, p)
			if verb == "RETR" {
				return p.Fetch(ctx, pop3Inbox, msgs, fn)
			}
			return p.Headers(ctx, pop3Inbox, msgs, func(m formats.Message, h []byte) error { return fn(m, bytes.NewReader(h)) })
		}
		for _, answer := range []string{"\r\n", "+OKhere\r\nSubject: x\r\n\r\n.\r\n", "+ \r\n", strings.Repeat("+", 5000) + "\r\n"} {
			t.Run(fmt.Sprintf("%s: %.10q", verb, answer), func(t *testing.T) {
				cfg, quits := hostilePOP3(t, "+OK\r\n", on(verb, answer))
				p := dialPOP3(t, cfg)
				calls := 0
				err := run(p, func(formats.Message, io.Reader) error { calls++; return nil })
				if !migrate.IsRetryable(err) || !errors.Is(err, mailconn.ErrProtocol) || calls != 0 {
					t.Fatalf("%v after %d calls: want a retryable protocol error and no message", err, calls)
				}
				p.Close()
				if quits.Load() != 0 {
					t.Fatal("QUIT sent on a connection out of step")
				}
			})
		}
		t.Run(verb+": bare -ERR", func(t *testing.T) {
			cfg, _ := hostilePOP3(t, "+OK\r\n", on(verb, "-ERR\r\n"))
			p := dialPOP3(t, cfg)
			calls := 0
			if err := run(p, func(formats.Message, io.Reader) error { calls++; return nil }); err != nil || calls != 0 {
				t.Fatalf("%v after %d calls: refused messages are skipped", err, calls)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}

	// DELE (Send, then ReadOne), RSET and QUIT (Cmd).
	del := []formats.Message{{ID: "a"}, {ID: "b"}}
	for _, tc := range []struct {
		name  string
		extra func(string) (string, bool)
	}{
		{"DELE: empty line", on("DELE", "\r\n")},
		{"DELE: +OK glued to its text", on("DELE", "+OKmarked\r\n")},
		{"DELE: SASL continuation", on("DELE", "+ \r\n")},
		{"RSET: empty line", func(line string) (string, bool) {
			switch {
			case strings.HasPrefix(line, "DELE 2"):
				return "-ERR no\r\n", true
			case line == "RSET":
				return "\r\n", true
			}
			return "", false
		}},
		{"RSET: bare -ERR", func(line string) (string, bool) {
			switch {
			case strings.HasPrefix(line, "DELE 2"):
				return "-ERR\r\n", true
			case line == "RSET":
				return "-ERR\r\n", true
			}
			return "", false
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, quits := hostilePOP3(t, "+OK\r\n", tc.extra)
			p := dialPOP3(t, cfg)
			if err := p.Delete(ctx, pop3Inbox, del); err == nil {
				t.Fatal("Delete accepted")
			}
			p.Close()
			if quits.Load() != 0 {
				t.Fatal("QUIT sent after a failed Delete: the marks would be committed")
			}
		})
	}
	for _, answer := range []string{"\r\n", "+OKbye\r\n", "-ERR\r\n"} {
		t.Run(fmt.Sprintf("QUIT after DELE: %q", answer), func(t *testing.T) {
			cfg, _ := hostilePOP3(t, "+OK\r\n", on("QUIT", answer))
			p := dialPOP3(t, cfg)
			if err := p.Delete(ctx, pop3Inbox, del); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); err == nil {
				t.Fatal("Close reported a malformed answer to QUIT as success")
			}
		})
	}
}

func pop3Folders(p *POP3) error {
	_, err := p.Folders(context.Background())
	return err
}

func pop3List(p *POP3) error {
	_, _, err := p.List(context.Background(), pop3Inbox)
	return err
}

// RETR and TOP answers whose status line and body come in one write, with
// several commands pipelined: the bytes reach fn exactly as the server
// meant them (dot-stuffing undone, nothing else changed), including what no
// Dovecot sends (bare LF, a lone CR, no CRLF before a stuffed dot line), so
// nothing of a message may stay in go-pop3's buffer or pass through it.
func TestPOP3FakeRETRBytes(t *testing.T) {
	bodies := [][]byte{
		[]byte("Subject: bare LF\n\n.\n..\n.x\nend\n"),
		crlf("Subject: 5000", "", strings.Repeat("y", 5000), "."+strings.Repeat("z", 5000), ".", "+OK not a status"),
		[]byte("Subject: lone CR\r\n\r\nbefore\rafter\r\n.\r\r\n"),
		crlf("Subject: empty body", ""),
	}
	stuffed := func(b []byte) string { return string(dotStream(b)) }
	cfg, _ := hostilePOP3(t, "+OK\r\n", func(line string) (string, bool) {
		var n, lines int
		switch {
		case line == "CAPA":
			return "+OK\r\nUSER\r\nUIDL\r\nTOP\r\nPIPELINING\r\n.\r\n", true
		case line == "UIDL":
			s := "+OK\r\n"
			for i := range bodies {
				s += fmt.Sprintf("%d m%d\r\n", i+1, i+1)
			}
			return s + ".\r\n", true
		case line == "LIST":
			s := "+OK\r\n"
			for i, b := range bodies {
				s += fmt.Sprintf("%d %d\r\n", i+1, len(b))
			}
			return s + ".\r\n", true
		}
		if _, err := fmt.Sscanf(line, "RETR %d", &n); err == nil {
			return "+OK message follows\r\n" + stuffed(bodies[n-1]), true
		}
		if _, err := fmt.Sscanf(line, "TOP %d %d", &n, &lines); err == nil {
			h, _ := readHeader(bytes.NewReader(bodies[n-1]))
			return "+OK\r\n" + stuffed(h), true
		}
		return "", false
	})
	p := dialPOP3(t, cfg)
	if !p.pipelining {
		t.Fatal("PIPELINING not seen")
	}
	msgs := listPOP3(t, p)
	if len(msgs) != len(bodies) {
		t.Fatalf("listed %d messages", len(msgs))
	}
	got := fetchPOP3(t, p, msgs)
	for i, m := range msgs {
		if hexSHA(got[m.ID]) != hexSHA(bodies[i]) {
			t.Errorf("message %d: got %q, want %q", i+1, mailconn.Printable(string(got[m.ID]), 100), mailconn.Printable(string(bodies[i]), 100))
		}
	}
	i := 0
	if err := p.Headers(context.Background(), pop3Inbox, msgs, func(m formats.Message, h []byte) error {
		want, _ := readHeader(bytes.NewReader(bodies[i]))
		if hexSHA(h) != hexSHA(want) {
			t.Errorf("header %d: got %q, want %q", i+1, h, want)
		}
		i++
		return nil
	}); err != nil || i != len(bodies) {
		t.Fatalf("Headers: %v after %d", err, i)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// Ctrl-C (a cancelled context) ends a session at once, whatever the
// library is waiting for: the greeting inside its NewConn, or a stalled
// RETR; the timeout here is far longer than the test allows.
func TestPOP3CancelWhileWaiting(t *testing.T) {
	stalled := func(line string) (string, bool) { return "STALL+OK\r\nSubject: x\r\n", line == "RETR 1" }
	for _, stage := range []string{"greeting", "RETR"} {
		t.Run(stage, func(t *testing.T) {
			greeting := "+OK\r\n"
			if stage == "greeting" {
				greeting = ""
			}
			cfg, quits := hostilePOP3(t, greeting, stalled)
			cfg.Timeout = time.Minute
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var p *POP3
			if stage == "RETR" {
				p = dialPOP3(t, cfg)
			}
			time.AfterFunc(200*time.Millisecond, cancel)
			start := time.Now()
			var err error
			if p == nil {
				_, err = DialPOP3(ctx, cfg)
			} else {
				err = p.Fetch(ctx, pop3Inbox, listPOP3(t, p)[:1], func(m formats.Message, body io.Reader) error {
					_, err := io.ReadAll(body)
					return err
				})
				p.Close()
			}
			if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
				t.Fatalf("%v after %v, want context.Canceled at once", err, time.Since(start))
			}
			if quits.Load() != 0 {
				t.Fatal("QUIT sent after a cancel")
			}
		})
	}
}

// Close sends QUIT, but waits for its answer only where DELE marked
// messages: then the answer is the only word that they were removed.
// Otherwise it tells nothing, and on a slow link it was the run's last
// round trip.
func TestPOP3CloseWaitsForQUITOnlyAfterDELE(t *testing.T) {
	for _, dele := range []bool{false, true} {
		t.Run(fmt.Sprintf("DELE %v", dele), func(t *testing.T) {
			closed := make(chan struct{})
			afterClose := make(chan bool, 1) // QUIT was answered after Close returned
			cfg, quits := hostilePOP3(t, "+OK\r\n", func(line string) (string, bool) {
				if line != "QUIT" {
					return "", false
				}
				select {
				case <-closed:
					afterClose <- true
				case <-time.After(time.Second):
					afterClose <- false
				}
				return "+OK bye\r\n", true
			})
			cfg.Timeout = 10 * time.Second // Close may wait longer than the server holds the answer
			p := dialPOP3(t, cfg)
			msgs := listPOP3(t, p)
			if got := fetchPOP3(t, p, msgs); len(got) != 2 {
				t.Fatalf("fetched %d messages, want 2", len(got))
			}
			if dele {
				if err := p.Delete(context.Background(), pop3Inbox, msgs[:1]); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			close(closed)
			if got := <-afterClose; got == dele {
				if dele {
					t.Error("Close returned before the answer to QUIT after a DELE: the deletion is unconfirmed")
				} else {
					t.Error("Close waited for the answer to QUIT with nothing deleted")
				}
			}
			if n := quits.Load(); n != 1 {
				t.Errorf("the server got %d QUITs, want 1", n)
			}
		})
	}
}
