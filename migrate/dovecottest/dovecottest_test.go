package dovecottest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/migrate/internal/testproc"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// crlfMessage builds a small CRLF message; n makes it unique.
func crlfMessage(subject string, n int) []byte {
	return []byte(fmt.Sprintf("From: Alice <alice@example.org>\r\n"+
		"To: Bob <bob@example.org>\r\n"+
		"Subject: %s\r\n"+
		"Message-ID: <%d.%s@example.org>\r\n"+
		"Date: Mon, 01 Jan 2024 10:00:00 +0100\r\n"+
		"\r\n"+
		"Body of %s, number %d.\r\n", subject, n, strings.ReplaceAll(subject, " ", "-"), subject, n))
}

func sortedFlags(f []string) []string {
	out := append([]string{}, f...)
	sort.Strings(out)
	return out
}

// TestSeedAndSnapshot starts one instance per separator (concurrently),
// seeds nested, non-ASCII and special-use folders with flags, keywords and
// dates, and checks that Snapshot and Folders report exactly that.
func TestSeedAndSnapshot(t *testing.T) {
	for _, tc := range []struct {
		sep      rune
		sentName string
	}{
		{'/', "Sent Items"},
		{'.', ""},
	} {
		t.Run(fmt.Sprintf("sep=%c", tc.sep), func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			s := Start(t, Options{Separator: tc.sep, SpecialUse: true, SentName: tc.sentName})
			t.Logf("instance up in %v at %s", time.Since(began).Round(time.Millisecond), s.IMAPAddr())
			if s.Separator != tc.sep || s.Host != "127.0.0.1" || s.IMAPPort == 0 || s.POP3Port == 0 {
				t.Fatalf("server fields: %+v", s)
			}
			if !reflect.DeepEqual(s.Users, DefaultUsers()) {
				t.Fatalf("Users = %v, want the defaults", s.Users)
			}
			sep := string(tc.sep)
			sentName := tc.sentName
			if sentName == "" {
				sentName = "Sent"
			}
			zone := time.FixedZone("", 2*3600)
			date := func(day int) time.Time { return time.Date(2023, 5, day, 13, 14, 15, 0, zone) }

			msgs := []SeedMessage{
				{Folder: "INBOX", Body: crlfMessage("first", 1), Flags: []string{`\Seen`}, Date: date(1)},
				{Folder: "", Body: crlfMessage("second", 2), Flags: []string{`\Flagged`, "$Forwarded", "project-x", `\Answered`}, Date: date(2)},
				{Folder: "INBOX", Body: crlfMessage("third", 3), Flags: []string{`\Recent`, `\Draft`}, Date: date(3)},
				{Folder: "Work" + sep + "2024" + sep + "Q1", Body: crlfMessage("nested", 4), Flags: []string{`\Seen`, "$Label1"}, Date: date(4)},
				{Folder: "Work" + sep + "2024" + sep + "Q1", Body: crlfMessage("nested again", 5), Date: date(5)},
				{Folder: "Entwürfe" + sep + "Über", Body: crlfMessage("umlaut", 6), Flags: []string{`\Deleted`}, Date: date(6)},
				{Folder: sentName, Body: crlfMessage("sent", 7), Flags: []string{`\Seen`}, Date: date(7)},
				{Folder: "Archive" + sep + "2019", Body: crlfMessage("archived", 8), Date: date(8)},
			}
			if tc.sep == '/' {
				// '.' inside a name is allowed on a '/' server (LAYOUT=fs).
				msgs = append(msgs, SeedMessage{Folder: "v1.2 notes", Body: crlfMessage("dotted", 9), Date: date(9)})
			}
			s.Seed(t, "alice", msgs)

			// What Snapshot must report: every seeded folder, the parents
			// Seed created, and the empty special-use folders.
			want := map[string][]SeedMessage{}
			for _, f := range []string{"INBOX", "Work", "Work" + sep + "2024", "Entwürfe", "Archive",
				sentName, "Drafts", "Trash", "Junk"} {
				want[f] = nil
			}
			for _, m := range msgs {
				f := m.Folder
				if f == "" {
					f = "INBOX"
				}
				want[f] = append(want[f], m)
			}

			snap := s.Snapshot(t, "alice")
			var gotNames, wantNames []string
			for f := range snap {
				gotNames = append(gotNames, f)
			}
			for f := range want {
				wantNames = append(wantNames, f)
			}
			sort.Strings(gotNames)
			sort.Strings(wantNames)
			if !reflect.DeepEqual(gotNames, wantNames) {
				t.Fatalf("snapshot folders\n got %q\nwant %q", gotNames, wantNames)
			}
			for f, wm := range want {
				got := snap[f]
				if len(got) != len(wm) {
					t.Errorf("%q: %d messages, want %d", f, len(got), len(wm))
					continue
				}
				for i, m := range wm {
					g := got[i]
					if g.UID != uint32(i+1) {
						t.Errorf("%q[%d]: UID %d, want %d", f, i, g.UID, i+1)
					}
					if g.SHA256 != sum(m.Body) || g.Size != int64(len(m.Body)) {
						t.Errorf("%q[%d]: sha %s size %d, want %s %d (CRLF messages must come back byte for byte)",
							f, i, g.SHA256, g.Size, sum(m.Body), len(m.Body))
					}
					var wantFlags []string
					for _, fl := range m.Flags {
						if fl != `\Recent` {
							wantFlags = append(wantFlags, fl)
						}
					}
					wantFlags = sortedFlags(wantFlags)
					if wantFlags == nil {
						wantFlags = []string{}
					}
					if !reflect.DeepEqual(g.Flags, wantFlags) {
						t.Errorf("%q[%d]: flags %q, want %q", f, i, g.Flags, wantFlags)
					}
					if !g.Date.Equal(m.Date) {
						t.Errorf("%q[%d]: date %v, want %v", f, i, g.Date, m.Date)
					}
				}
			}

			// Folders: the server's delimiter, special-use attributes on the
			// configured names, parents selectable.
			attrs := map[string][]imap.MailboxAttr{}
			for _, d := range s.Folders(t, "alice") {
				if d.Delim != tc.sep {
					t.Errorf("LIST %q: delimiter %q, want %q", d.Mailbox, d.Delim, tc.sep)
				}
				attrs[d.Mailbox] = d.Attrs
			}
			for name, use := range map[string]imap.MailboxAttr{
				sentName: imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts, "Trash": imap.MailboxAttrTrash,
				"Junk": imap.MailboxAttrJunk, "Archive": imap.MailboxAttrArchive,
			} {
				if !hasAttr(attrs[name], use) {
					t.Errorf("LIST %q: attributes %v lack %s", name, attrs[name], use)
				}
			}
			if a, ok := attrs["Work"]; !ok || hasAttr(a, imap.MailboxAttrNoSelect) {
				t.Errorf("LIST Work: %v (present %v); Seed should have created it as a real folder", a, ok)
			}

			// The other user sees none of it.
			for f, m := range s.Snapshot(t, "bob") {
				if len(m) != 0 || f == "Work" {
					t.Errorf("bob has %q with %d messages", f, len(m))
				}
			}

			if tc.sep == '.' {
				// A '/' inside a name is refused on a '.' server.
				c := s.Client(t, "alice")
				err := c.Create("a/b", nil).Wait()
				var ierr *imap.Error
				if !errors.As(err, &ierr) || ierr.Type != imap.StatusResponseTypeNo {
					t.Errorf(`CREATE "a/b" on a '.' server: %v, want NO`, err)
				} else {
					t.Logf(`CREATE "a/b" on a '.' server: %v`, err)
				}
			}
		})
	}
}

// TestServedBytes pins what Dovecot serves for messages that are not plain
// CRLF text: bare LF comes back as CRLF, NUL comes back as 0x80 (BODY[]).
func TestServedBytes(t *testing.T) {
	s := Start(t, Options{})
	lf := []byte("Subject: bare LF\n\nline one\nline two\n")
	nul := []byte("Subject: NUL\r\n\r\nbefore\x00after\r\n")
	cr := []byte("Subject: lone CR\r\n\r\nx\ry\r\n")
	s.Seed(t, "alice", []SeedMessage{{Body: lf}, {Body: nul}, {Body: cr}})

	lfServed := bytes.ReplaceAll(lf, []byte("\n"), []byte("\r\n"))
	nulServed := bytes.ReplaceAll(nul, []byte{0}, []byte{0x80})
	got := s.Snapshot(t, "alice")["INBOX"]
	if len(got) != 3 {
		t.Fatalf("INBOX has %d messages, want 3", len(got))
	}
	for i, w := range []struct {
		name string
		sent []byte
		want []byte
	}{
		{"bare LF", lf, lfServed},
		{"NUL", nul, nulServed},
		{"lone CR", cr, cr},
	} {
		if got[i].SHA256 != sum(w.want) || got[i].Size != int64(len(w.want)) {
			t.Errorf("%s: served sha %s size %d; want %s %d (sent %d bytes, sha %s): Dovecot's behaviour changed?",
				w.name, got[i].SHA256, got[i].Size, sum(w.want), len(w.want), len(w.sent), sum(w.sent))
		}
	}
}

// TestSnapshotUIDGaps checks that Snapshot reports UIDs, not sequence
// numbers, and handles an empty folder.
func TestSnapshotUIDGaps(t *testing.T) {
	s := Start(t, Options{Users: map[string]string{"carol": "c4rol pw"}})
	var msgs []SeedMessage
	for i := 1; i <= 4; i++ {
		msgs = append(msgs, SeedMessage{Folder: "Box", Body: crlfMessage("gap", i)})
	}
	msgs = append(msgs, SeedMessage{Folder: "Empty/Child", Body: crlfMessage("child", 5)})
	s.Seed(t, "carol", msgs)

	c := s.Client(t, "carol")
	if _, err := c.Select("Box", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	uids := imap.UIDSetNum(2, 3)
	if err := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(uids).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("Empty/Child", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}

	snap := s.Snapshot(t, "carol")
	box := snap["Box"]
	if len(box) != 2 || box[0].UID != 1 || box[1].UID != 4 || box[1].SHA256 != sum(crlfMessage("gap", 4)) {
		t.Errorf("Box after expunging UIDs 2:3: %+v", box)
	}
	for _, f := range []string{"Empty", "Empty/Child"} {
		if m, ok := snap[f]; !ok || len(m) != 0 {
			t.Errorf("%q: %v (present %v), want empty", f, m, ok)
		}
	}
}

// TestPOP3 checks that the POP3 listener logs a user in and sees INBOX only.
func TestPOP3(t *testing.T) {
	s := Start(t, Options{})
	s.Seed(t, "bob", []SeedMessage{
		{Body: crlfMessage("pop one", 1)},
		{Body: crlfMessage("pop two", 2)},
		{Folder: "Other", Body: crlfMessage("not in pop", 3)},
	})
	conn, err := net.DialTimeout("tcp", s.POP3Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	cmd := func(line string) string {
		t.Helper()
		if line != "" {
			fmt.Fprintf(conn, "%s\r\n", line)
		}
		resp, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(resp, "+OK") {
			t.Fatalf("POP3 %q: %q %v", line, resp, err)
		}
		return strings.TrimSpace(resp)
	}
	cmd("")
	cmd("USER bob")
	cmd("PASS " + s.Users["bob"])
	size := len(crlfMessage("pop one", 1)) + len(crlfMessage("pop two", 2))
	if got, want := cmd("STAT"), fmt.Sprintf("+OK 2 %d", size); got != want {
		t.Errorf("STAT: %q, want %q", got, want)
	}
	cmd("QUIT")
}

// TestStop checks that Stop kills every process of the instance, closes the
// ports, removes the directory and may be called again.
func TestStop(t *testing.T) {
	s := Start(t, Options{})
	c := s.Client(t, "alice") // a logged-in session: an imap process exists
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	master := s.cmd.Process.Pid
	procs := append([]int{master}, testproc.Children(master)...)
	if len(procs) < 3 {
		t.Fatalf("only %d dovecot processes before Stop", len(procs))
	}
	began := time.Now()
	s.Stop()
	t.Logf("Stop took %v", time.Since(began).Round(time.Millisecond))
	s.Stop()
	for _, p := range procs {
		if testproc.Alive(p) {
			t.Errorf("process %d still alive after Stop", p)
		}
	}
	if _, err := os.Stat(s.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("instance dir after Stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", s.IMAPAddr(), time.Second); err == nil {
		conn.Close()
		t.Errorf("IMAP port still accepts connections after Stop")
	}
}

// TestReapStale leaks an instance from a child test binary that exits
// without running its cleanups, then checks that the next Start's reaping
// kills it and removes its directory.
func TestReapStale(t *testing.T) {
	if os.Getenv("DOVECOTTEST_LEAK") == "1" {
		return // the helper below does the work
	}
	requireDovecot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestLeakHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DOVECOTTEST_LEAK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var dir string
	var master int
	for _, line := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(line, "LEAKED %s %d", &dir, &master); err == nil {
			break
		}
	}
	if dir == "" || master == 0 {
		t.Fatalf("helper did not report its instance:\n%s", out)
	}
	if !testproc.Alive(master) {
		t.Fatalf("leaked master %d is not running", master)
	}
	reapStaleNow()
	waitGone([]int{master}, 5*time.Second)
	if testproc.Alive(master) {
		t.Errorf("leaked master %d survived reaping", master)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leaked dir %s after reaping: %v", dir, err)
	}
}

// TestLeakHelper runs only inside TestReapStale's child process.
func TestLeakHelper(t *testing.T) {
	if os.Getenv("DOVECOTTEST_LEAK") != "1" {
		t.Skip("helper for TestReapStale")
	}
	s := Start(t, Options{})
	fmt.Printf("LEAKED %s %d\n", s.Dir, s.cmd.Process.Pid)
	os.Exit(0) // no cleanups: the instance keeps running
}
