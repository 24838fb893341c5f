package imap

import (
	"bufio"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// A FETCH the server answers NO because of one message (Exchange and
// others: "NO Message corrupt") ended the folder's pass, and with it the
// run, at every rerun again. Now the messages not delivered are asked for
// one FETCH each: the one refused again reaches the caller as a
// formats.Unreadable, one the server no longer has ([EXPUNGEISSUED]) is
// left out, and the others are delivered.
func TestFetchAnsweredNoAsksEachMessageAlone(t *testing.T) {
	for _, c := range []struct {
		name, alone string // the answer to UID FETCH 3
		wantBad     bool
	}{
		{"refused", " NO [SERVERBUG] cannot read message 3\r\n", true},
		{"expunged", " NO [EXPUNGEISSUED] gone\r\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var fetches []string
			section := "BODY[]"
			m := dialScripted(t, "IMAP4rev1", func(tag, rest string) string {
				body := func(uid string) string {
					b := "Subject: " + uid + "\r\n\r\nbody\r\n"
					return "* " + uid + " FETCH (UID " + uid + " " + section + " {" + strconv.Itoa(len(b)) + "}\r\n" + b + ")\r\n"
				}
				switch {
				case strings.HasPrefix(rest, "EXAMINE"):
					return "* 4 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n" + tag + " OK [READ-ONLY] done\r\n"
				case strings.HasPrefix(rest, "UID FETCH"):
					set, items, _ := strings.Cut(strings.TrimPrefix(rest, "UID FETCH "), " ")
					if strings.Contains(items, "BODY.PEEK[HEADER]") {
						section = "BODY[HEADER]"
					}
					fetches = append(fetches, set)
					switch set {
					case "1:4":
						return body("1") + body("2") + body("4") + tag + " NO some messages could not be fetched\r\n"
					case "3":
						return tag + c.alone
					}
					return tag + " BAD unexpected\r\n"
				}
				return ""
			})
			msgs := []formats.Message{{ID: "1", UID: 1}, {ID: "2", UID: 2}, {ID: "3", UID: 3}, {ID: "4", UID: 4}}
			got := map[string]string{}
			err := m.Fetch(context.Background(), formats.Folder{Name: "INBOX"}, msgs, func(msg formats.Message, body io.Reader) error {
				if err := formats.UnreadableErr(body); err != nil {
					got[msg.ID] = "unreadable: " + err.Error()
					return nil
				}
				b, err := io.ReadAll(body)
				got[msg.ID] = string(b)
				return err
			})
			if err != nil {
				t.Fatalf("Fetch: %v (FETCHes %v)", err, fetches)
			}
			for _, id := range []string{"1", "2", "4"} {
				if want := "Subject: " + id + "\r\n\r\nbody\r\n"; got[id] != want {
					t.Errorf("message %s: %q, want %q", id, got[id], want)
				}
			}
			bad, delivered := got["3"]
			if c.wantBad != (delivered && strings.HasPrefix(bad, "unreadable: ") && strings.Contains(bad, "cannot read message 3")) || !c.wantBad && delivered {
				t.Errorf("message 3: %q (delivered %v), want unreadable %v", bad, delivered, c.wantBad)
			}

			// Headers the same way: the refused message left out.
			heads := map[string]string{}
			err = m.Headers(context.Background(), formats.Folder{Name: "INBOX"}, msgs, func(msg formats.Message, h []byte) error {
				heads[msg.ID] = string(h)
				return nil
			})
			if err != nil {
				t.Fatalf("Headers: %v (FETCHes %v)", err, fetches)
			}
			if _, ok := heads["3"]; ok || len(heads) != 3 || heads["4"] != "Subject: 4\r\n\r\nbody\r\n" {
				t.Errorf("Headers gave %q, want 1, 2 and 4", heads)
			}
		})
	}
}

// dialScripted logs in to a scripted server (fakeIMAP) with caps, which
// answer scripts: a reply for a command, or "" for the session's defaults
// (CAPABILITY with caps, LOGIN and the rest OK, the LIST of the
// separator, LOGOUT).
func dialScripted(t *testing.T, caps string, answer func(tag, rest string) string) *IMAP {
	t.Helper()
	addr := fakeIMAP(t, caps, func(_ *bufio.Reader, tag, rest string) (string, bool) {
		if reply := answer(tag, rest); reply != "" {
			return reply, false
		}
		switch {
		case strings.HasPrefix(rest, "CAPABILITY"):
			return "* CAPABILITY " + caps + "\r\n" + tag + " OK done\r\n", false
		case strings.HasPrefix(rest, "LIST"):
			return "* LIST (\\Noselect) \"/\" \"\"\r\n" + tag + " OK done\r\n", false
		case strings.HasPrefix(rest, "LOGOUT"):
			return "* BYE\r\n" + tag + " OK bye\r\n", true
		}
		return tag + " OK done\r\n", false
	})
	m, err := DialIMAP(context.Background(), mailconn.ServerConfig{Addr: addr, User: "carol", Password: "pw", TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
