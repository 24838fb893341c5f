package imap

// The Source/Sink conformance suite (migrate/conformance) against the IMAP
// endpoint: on real Dovecot with both hierarchy separators, and on the
// in-memory go-imap server.

import (
	"context"
	"errors"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/conformance"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
	"github.com/mailferry/mailferry/migrate/memserver"
)

// imapAccount is where an IMAP conformance endpoint lives.
type imapAccount struct {
	addr, user, password string
}

func (a imapAccount) dial(t *testing.T) *IMAP {
	t.Helper()
	m, err := DialIMAP(context.Background(), mailconn.ServerConfig{
		Addr: a.addr, User: a.user, Password: a.password, TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatalf("DialIMAP: %v", err)
	}
	return m
}

// client runs fn on a plain go-imap session of its own.
func (a imapAccount) client(t *testing.T, fn func(c *imapclient.Client) error) {
	t.Helper()
	c, err := imapclient.DialInsecure(a.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.user, a.password).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := fn(c); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
}

// seed creates every folder (parents are left to the server) and APPENDs
// its messages.
func (a imapAccount) seed(t *testing.T, sep rune, folders []conformance.Folder) {
	a.client(t, func(c *imapclient.Client) error {
		for _, f := range folders {
			name, _ := formats.JoinFolder(f.Path, sep)
			if name != "INBOX" {
				if err := c.Create(name, nil).Wait(); err != nil {
					return err
				}
			}
			for _, m := range f.Messages {
				flags := make([]imap.Flag, len(m.Flags))
				for i, fl := range m.Flags {
					flags[i] = imap.Flag(fl)
				}
				cmd := c.Append(name, int64(len(m.Body)), &imap.AppendOptions{Flags: flags, Time: m.Date})
				_, werr := cmd.Write(m.Body)
				cerr := cmd.Close()
				_, err := cmd.Wait()
				if err := errors.Join(werr, cerr, err); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// expunge removes one message by UID in a session of its own.
func (a imapAccount) expunge(t *testing.T, folder string, uid uint32) {
	a.client(t, func(c *imapclient.Client) error {
		if _, err := c.Select(folder, nil).Wait(); err != nil {
			return err
		}
		set := imap.UIDSetNum(imap.UID(uid))
		if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			return err
		}
		return c.UIDExpunge(set).Close()
	})
}

func imapSourceInstance(t *testing.T, a imapAccount, sep rune, folders []conformance.Folder) conformance.SourceInstance {
	a.seed(t, sep, folders)
	return conformance.SourceInstance{
		Source: a.dial(t),
		Reopen: func(t *testing.T) migrate.Source { return a.dial(t) },
		Vanish: func(t *testing.T, f formats.Folder, m formats.Message) { a.expunge(t, f.Name, m.UID) },
	}
}

func imapSinkInstance(t *testing.T, a imapAccount) conformance.SinkInstance {
	return conformance.SinkInstance{
		Sink:   a.dial(t),
		Reopen: func(t *testing.T) conformance.Endpoint { return a.dial(t) },
	}
}

var imapKeeps = conformance.Keeps{SystemFlags: true, Keywords: true, Date: true}

func dovecotAccount(t *testing.T, sep rune) imapAccount {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: sep})
	return imapAccount{addr: srv.IMAPAddr(), user: "alice", password: srv.Users["alice"]}
}

func TestConformanceIMAPDovecot(t *testing.T) {
	for _, sep := range []rune{'/', '.'} {
		t.Run("sep="+string(sep), func(t *testing.T) {
			t.Run("Source", func(t *testing.T) {
				conformance.TestSource(t, conformance.SourceHarness{
					Open: func(t *testing.T, folders []conformance.Folder) conformance.SourceInstance {
						return imapSourceInstance(t, dovecotAccount(t, sep), sep, folders)
					},
					Keeps:  imapKeeps,
					Served: conformance.CRLF, // Dovecot stores LF and serves CRLF
				})
			})
			t.Run("Sink", func(t *testing.T) {
				conformance.TestSink(t, conformance.SinkHarness{
					Open:   func(t *testing.T) conformance.SinkInstance { return imapSinkInstance(t, dovecotAccount(t, sep)) },
					Keeps:  imapKeeps,
					Served: conformance.CRLF,
				})
			})
		})
	}
}

func memAccount(t *testing.T) imapAccount {
	srv, err := memserver.Start("alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return imapAccount{addr: srv.Addr, user: srv.User, password: srv.Password}
}

func TestConformanceIMAPMemserver(t *testing.T) {
	t.Run("Source", func(t *testing.T) {
		conformance.TestSource(t, conformance.SourceHarness{
			Open: func(t *testing.T, folders []conformance.Folder) conformance.SourceInstance {
				return imapSourceInstance(t, memAccount(t), memserver.Separator, folders)
			},
			Keeps: imapKeeps,
			// imapmemserver rewrites the header with CRLF, but its
			// RFC822.SIZE counts the bytes as they were given.
			Served:          conformance.HeaderCRLF,
			InexactListSize: true,
		})
	})
	t.Run("Sink", func(t *testing.T) {
		conformance.TestSink(t, conformance.SinkHarness{
			Open:            func(t *testing.T) conformance.SinkInstance { return imapSinkInstance(t, memAccount(t)) },
			Keeps:           imapKeeps,
			Served:          conformance.HeaderCRLF,
			InexactListSize: true,
		})
	})
}
