package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
)

// A server that limits the sessions of one user from one address (Dovecot's
// mail_max_userip_connections, 10 unless set) refuses the logins beyond
// the limit with "NO [LIMIT] Maximum number of connections from user+IP
// exceeded". That is not a wrong password: the run goes on with the
// connections it has. A mail program holds a session on each side, and
// the run asks for 8 workers (each a source connection, and on the
// destination a connection and its APPEND connection): against a source
// that allows 4 sessions, and against a destination that allows 5.
func TestConnectionLimitDoesNotEndTheRun(t *testing.T) {
	for _, tc := range []struct {
		name             string
		srcMax, dstMax   int
		wantWorkersFewer bool
	}{
		{"source", 4, 0, true},
		{"destination", 0, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &pair{
				src:   dovecottest.Start(t, dovecottest.Options{Separator: '/', MaxUserIPConnections: tc.srcMax}),
				dst:   dovecottest.Start(t, dovecottest.Options{Separator: '.', MaxUserIPConnections: tc.dstMax}),
				state: t.TempDir(),
			}
			setenv(t, "MAILFERRY_SRC_PASSWORD", p.src.Users["alice"])
			setenv(t, "MAILFERRY_DST_PASSWORD", p.dst.Users["alice"])
			var msgs []dovecottest.SeedMessage
			for f := 0; f < 10; f++ {
				folder := "INBOX"
				if f > 0 {
					folder = fmt.Sprintf("Folder%d", f)
				}
				for n := 0; n < 20; n++ {
					msgs = append(msgs, dovecottest.SeedMessage{Folder: folder, Flags: []string{`\Seen`},
						Body: []byte(fmt.Sprintf("Message-ID: <limit-%d-%d@example.com>\r\nSubject: %d %d\r\n\r\nbody %d %d\r\n", f, n, f, n, f, n))})
				}
			}
			p.src.Seed(t, "alice", msgs)
			before := p.src.Snapshot(t, "alice")
			sc, dc := p.src.Client(t, "alice"), p.dst.Client(t, "alice") // the user's mail program
			defer sc.Close()
			defer dc.Close()

			report := filepath.Join(t.TempDir(), "report.json")
			code, out, errOut := mailferry(t, p.args("--jobs", "8", "--report", report)...)
			if code != 0 {
				t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
			}
			if strings.Contains(errOut, "authentication failed") {
				t.Errorf("a refusal for the number of sessions was reported as a failed authentication:\n%s", errOut)
			}
			if tc.wantWorkersFewer && !strings.Contains(errOut, "Maximum number of connections") {
				t.Errorf("the run did not say that the server refused some connections:\n%s", errOut)
			}
			rep := readReport(t, report)
			sameContent(t, before, p.dst.Snapshot(t, "alice"), rep)
			if rep.Totals.Copied != len(msgs) {
				t.Errorf("copied %d, want %d", rep.Totals.Copied, len(msgs))
			}
		})
	}
}

// A worker's login refused outright, after the run's first login with the
// same password was accepted, is the server's moment, not a wrong password
// (Dovecot answers "Authentication failed." to a good password while its
// auth process restarts): the worker leaves its folders to the others and
// the run ends with everything copied. The source is behind a proxy that
// holds every connection after the first until that one's LOGIN was
// answered, and makes the server refuse the password meanwhile.
func TestWorkerRefusedLoginLeavesItsFolders(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	var msgs []dovecottest.SeedMessage
	for f := 0; f < 6; f++ {
		folder := fmt.Sprintf("Folder%d", f)
		for n := 0; n < 10; n++ {
			msgs = append(msgs, dovecottest.SeedMessage{Folder: folder,
				Body: []byte(fmt.Sprintf("Message-ID: <refused-%d-%d@example.com>\r\n\r\nbody %d %d\r\n", f, n, f, n))})
		}
	}
	p.src.Seed(t, "alice", msgs)
	before := p.src.Snapshot(t, "alice")
	loggedIn := make(chan struct{})
	var once sync.Once
	var tapped []byte
	proxy, err := faultproxy.New(p.src.IMAPAddr(), faultproxy.Faults{
		Tap: func(conn int, dir faultproxy.Dir, b []byte) {
			if conn != 0 || dir != faultproxy.ServerToClient {
				return
			}
			select {
			case <-loggedIn:
				return // done: the rest of the session is not looked at
			default:
			}
			tapped = append(tapped, b...)
			for _, l := range strings.Split(string(tapped), "\r\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] != "*" && f[1] == "OK" {
					once.Do(func() {
						p.src.RefuseLogins(t, "alice", true)
						close(loggedIn)
					})
				}
			}
		},
		Accepted: func(conn int) {
			if conn > 0 {
				select {
				case <-loggedIn:
				case <-time.After(20 * time.Second):
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	report := filepath.Join(t.TempDir(), "report.json")
	args := []string{"migrate", "imap://alice@" + proxy.Addr(), "imap://alice@" + p.dst.IMAPAddr(),
		"--src-tls", "none", "--dst-tls", "none", "--state-dir", p.state, "--progress", "never", "--jobs", "3", "--report", report}
	code, out, errOut := mailferry(t, args...)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "going on with one worker fewer") {
		t.Errorf("no worker said it left (were the others' logins refused?):\n%s", errOut)
	}
	p.src.RefuseLogins(t, "alice", false)
	rep := readReport(t, report)
	sameContent(t, before, p.dst.Snapshot(t, "alice"), rep)
	if rep.Totals.Copied != len(msgs) {
		t.Errorf("copied %d, want %d", rep.Totals.Copied, len(msgs))
	}
}
