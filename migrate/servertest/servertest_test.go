package servertest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/internal/testproc"
)

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestServersStartSeedSnapshot: every server starts, logs alice in, says
// NAMESPACE as documented, takes APPENDs into INBOX and a folder with a
// space, and serves the bytes back — changed exactly as the package doc says.
func TestServersStartSeedSnapshot(t *testing.T) {
	for _, kind := range Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			s := Start(t, kind, Options{})
			c := s.Client(t, s.User)
			ns, err := c.Namespace().Wait()
			if err != nil {
				t.Fatalf("NAMESPACE: %v", err)
			}
			if len(ns.Personal) != 1 || ns.Personal[0].Prefix != s.Prefix || ns.Personal[0].Delim != s.Separator {
				t.Errorf("NAMESPACE personal %+v, want prefix %q delimiter %q", ns.Personal, s.Prefix, s.Separator)
			}
			date := time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)
			plain := []byte("From: a@example.com\r\nSubject: plain\r\nMessage-ID: <p1@example.com>\r\n\r\nhello\r\n")
			eight := []byte("From: a@example.com\r\nSubject: gr\xc3\xbc\xc3\x9fe\r\nMessage-ID: <p2@example.com>\r\n\r\nbody \xc3\xa4\r\n")
			folder := s.Name("My Folder")
			s.Seed(t, s.User, []dovecottest.SeedMessage{
				{Body: plain, Flags: []string{`\Seen`}, Date: date},
				{Folder: folder, Body: eight, Flags: []string{`\Flagged`}, Date: date.Add(time.Hour)},
			})
			snap := s.Snapshot(t, s.User)
			if got := len(snap["INBOX"]); got != 1 {
				t.Fatalf("INBOX holds %d messages, want 1 (snapshot %v)", got, snap)
			}
			if got := snap["INBOX"][0]; !got.Date.Equal(date) || fmt.Sprint(got.Flags) != `[\Seen]` {
				t.Errorf("INBOX message: %+v, want date %v, [\\Seen]", got, date)
			}
			want := eight
			if kind == Cyrus || kind == CyrusAlt {
				// munge8bit: every 8-bit header byte becomes 'X'; the body keeps its bytes.
				want = []byte(strings.Replace(string(eight), "Subject: gr\xc3\xbc\xc3\x9fe", "Subject: grXXXXe", 1))
			}
			for _, m := range []struct {
				folder string
				want   []byte
			}{{"INBOX", plain}, {folder, want}} {
				got := s.Bodies(t, s.User, m.folder)
				if len(got) != 1 {
					t.Fatalf("%q holds %d messages, want 1", m.folder, len(got))
				}
				b := got[0]
				if kind == Mailutils {
					// mailutils serves its state headers in BODY[]: exactly these, nothing else changed.
					var added []string
					b, added = StripMailutilsHeaders(b)
					if fmt.Sprint(added) != "[X-IMAPbase X-UID Status]" {
						t.Errorf("%q: mailutils added %v, want [X-IMAPbase X-UID Status]", m.folder, added)
					}
				}
				if hashOf(b) != hashOf(m.want) {
					t.Errorf("%q: served %q, want %q", m.folder, b, m.want)
				}
			}
			if s.POP3Port != 0 && !testproc.Greets(s.POP3Addr(), "+OK") {
				t.Errorf("no POP3 greeting at %s", s.POP3Addr())
			}
		})
	}
}

// TestMailutilsSnapshotWaitsForClosedSessions: mailutils writes a session's
// flags into the mbox only when the session ends, through a temporary file
// ("muXXXXXX") beside the folders that LIST shows while it exists. A client
// that hangs up without waiting (mailferry does not wait for LOGOUT) leaves
// that write running; a snapshot taken then must wait for it, and see
// neither the old flags nor the temporary file.
func TestMailutilsSnapshotWaitsForClosedSessions(t *testing.T) {
	t.Parallel()
	need(t, Mailutils)
	s := StartMailutils(t, Options{})
	// A large message makes the rewrite take long enough to be caught.
	big := []byte("From: a@example.com\r\nSubject: big\r\nMessage-ID: <big@example.com>\r\n\r\n" +
		strings.Repeat(strings.Repeat("x", 76)+"\r\n", 40_000))
	s.Seed(t, s.User, []dovecottest.SeedMessage{{Body: big}})
	for round, flag := range []imap.Flag{imap.FlagFlagged, imap.FlagAnswered, imap.FlagDeleted} {
		c := s.Client(t, s.User)
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{flag}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		c.Close() // no LOGOUT: hang up as soon as the STORE is answered
		snap := s.Snapshot(t, s.User)
		if len(snap) != 1 || len(snap["INBOX"]) != 1 {
			t.Fatalf("round %d: snapshot holds folders %v, want INBOX with 1 message", round, keys(snap))
		}
		if got := snap["INBOX"][0].Flags; !strings.Contains(strings.Join(got, " "), string(flag)) {
			t.Fatalf("round %d: INBOX flags %v, want %s among them", round, got, flag)
		}
	}
}

func keys(s dovecottest.Snapshot) []string {
	var out []string
	for k := range s {
		out = append(out, k)
	}
	return out
}
