package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/servertest"
)

// The compatibility matrix (docs-compat.md is written from it): every
// server as the source into one other server and back into a fresh
// instance of its own kind, and every server's archive to Maildir and back
// into a fresh instance. Every leg checks each message's bytes (where a
// server changes them, exactly that change: serverChange), flags, internal
// date and folder name, then a rerun copies 0 and a rerun with a fresh
// state directory copies 0 (the destination's identity keys alone). A
// small message set (roundTripMessages) keeps it quick.

const dovecotKind servertest.Kind = "dovecot"

// matrixPartner is the destination each server is the source for.
var matrixPartner = map[servertest.Kind]servertest.Kind{
	dovecotKind:          servertest.Cyrus,
	servertest.Cyrus:     servertest.Courier,
	servertest.Courier:   servertest.CyrusAlt,
	servertest.CyrusAlt:  servertest.Mailutils,
	servertest.Mailutils: dovecotKind,
}

// startNode starts a server of kind; Dovecot ('/') is wrapped as a
// servertest.Server so that one set of helpers serves all.
func startNode(t *testing.T, kind servertest.Kind) *servertest.Server {
	t.Helper()
	if kind == dovecotKind {
		dc := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
		return &servertest.Server{Server: dc, Kind: dovecotKind, User: "alice"}
	}
	return servertest.Start(t, kind, servertest.Options{})
}

func nodeURL(s *servertest.Server) string { return serverURL(s) }

// stored is one message as a server serves it.
type stored struct {
	raw   []byte
	flags string
	date  string
}

// contentOf returns folder path -> messages as s serves them.
func contentOf(t *testing.T, s *servertest.Server, folders []string) map[string][]stored {
	t.Helper()
	snap := s.Snapshot(t, s.User)
	out := map[string][]stored{}
	for _, f := range folders {
		name := s.Name(f)
		bodies := s.Bodies(t, s.User, name)
		if len(bodies) != len(snap[name]) {
			t.Fatalf("%s %q: %d bodies, %d messages", s.Kind, name, len(bodies), len(snap[name]))
		}
		for i, b := range bodies {
			m := snap[name][i]
			out[f] = append(out[f], stored{b, strings.Join(m.Flags, ","), m.Date.UTC().Format(time.RFC3339)})
		}
	}
	if len(snap) != len(folders) {
		t.Errorf("%s has folders %v, want %d: %v", s.Kind, keysOf(snap), len(folders), folders)
	}
	return out
}

// entries is content as sorted "sha flags date" lines per folder, each
// body passed through f.
func entries(c map[string][]stored, f func([]byte) []byte) map[string][]string {
	out := map[string][]string{}
	for folder, ms := range c {
		for _, m := range ms {
			out[folder] = append(out[folder], fmt.Sprintf("%s %s %s", sha(f(m.raw)), m.flags, m.date))
		}
		sort.Strings(out[folder])
	}
	return out
}

// holds checks that dst serves what src served, changed as dst changes
// what it stores (mailutils' own state headers taken off first).
func holds(t *testing.T, what string, dst *servertest.Server, from map[string][]stored, folders []string) {
	t.Helper()
	strip := func(b []byte) []byte { return b }
	if dst.Kind == servertest.Mailutils {
		strip = func(b []byte) []byte { b, _ = servertest.StripMailutilsHeaders(b); return b }
	}
	// (A message that holds mailutils' headers already, from a mailutils
	// source, gets them replaced when stored there again: both sides are
	// compared without them.)
	want := entries(from, func(b []byte) []byte { return strip(serverChange(dst.Kind, b)) })
	got := entries(contentOf(t, dst, folders), strip)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: %s holds\n%v\nwant\n%v", what, dst.Kind, got, want)
	}
}

// copyLeg migrates src -> dst three times (state, same state, fresh state)
// and checks the copy and that the reruns copy 0.
func copyLeg(t *testing.T, what string, src, dst string, srcPW, dstPW string, want int, extra ...string) {
	t.Helper()
	state := t.TempDir()
	for i, st := range []string{state, state, t.TempDir()} {
		run := []string{"first run", "rerun", "fresh-state rerun"}[i]
		code, out, errOut, report := migrateBetween(t, src, dst, srcPW, dstPW, st, extra...)
		if code != 0 {
			t.Fatalf("%s, %s: exit %d\n%s\n%s", what, run, code, out, errOut)
		}
		r := readReport(t, report)
		if i > 0 {
			want = 0
		}
		if r.Totals.Copied != want || r.Totals.Failed != 0 {
			t.Errorf("%s, %s: copied %d, failed %d; want %d, 0", what, run, r.Totals.Copied, r.Totals.Failed, want)
		}
	}
}

func TestCompatibilityMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 20 server instances")
	}
	for _, kind := range []servertest.Kind{dovecotKind, servertest.Cyrus, servertest.CyrusAlt, servertest.Courier, servertest.Mailutils} {
		partner := matrixPartner[kind]
		t.Run(string(kind)+"->"+string(partner), func(t *testing.T) {
			// A nested folder except where mailutils is one side (an mbox
			// file cannot have subfolders).
			set := servertest.Cyrus
			if kind == servertest.Mailutils || partner == servertest.Mailutils {
				set = servertest.Mailutils
			}
			msgs := roundTripMessages(set)
			folders := []string{"INBOX", "Work", msgs[len(msgs)-1].Folder}
			a := startNode(t, kind)
			b := startNode(t, partner)
			var seed []dovecottest.SeedMessage
			for _, m := range msgs {
				m.Folder = a.Name(m.Folder)
				seed = append(seed, m)
			}
			a.Seed(t, a.User, seed)
			atA := contentOf(t, a, folders)

			copyLeg(t, "there", nodeURL(a), nodeURL(b), a.Users[a.User], b.Users[b.User], len(msgs))
			holds(t, "there", b, atA, folders)
			atB := contentOf(t, b, folders)

			back := startNode(t, kind)
			copyLeg(t, "back", nodeURL(b), nodeURL(back), b.Users[b.User], back.Users[back.User], len(msgs))
			holds(t, "back", back, atB, folders)

			// The archive and back into a fresh instance.
			dir := filepath.Join(t.TempDir(), "archive")
			t.Setenv("MAILFERRY_SRC_PASSWORD", a.Users[a.User])
			for _, run := range []string{"archive", "archive rerun"} {
				code, out, errOut := mailferry(t, "archive", nodeURL(a), dir, "--src-tls", "none",
					"--state-dir", t.TempDir(), "--progress", "never")
				if code != 0 {
					t.Fatalf("%s: exit %d\n%s\n%s", run, code, out, errOut)
				}
			}
			var wantArch, gotArch []string
			for _, ms := range atA {
				for _, m := range ms {
					wantArch = append(wantArch, sha(m.raw))
				}
			}
			gotArch = manifestSHA256(t, dir)
			sort.Strings(wantArch)
			sort.Strings(gotArch)
			if fmt.Sprint(gotArch) != fmt.Sprint(wantArch) {
				t.Errorf("archive of %s holds\n%v\nwant\n%v", kind, gotArch, wantArch)
			}
			restored := startNode(t, kind)
			t.Setenv("MAILFERRY_DST_PASSWORD", restored.Users[restored.User])
			state := t.TempDir()
			for i, st := range []string{state, state, t.TempDir()} {
				run := []string{"restore", "restore rerun", "restore fresh-state rerun"}[i]
				report := filepath.Join(t.TempDir(), "report.json")
				code, out, errOut := mailferry(t, "migrate", "maildir:"+dir, nodeURL(restored), "--dst-tls", "none",
					"--state-dir", st, "--progress", "never", "--report", report)
				if code != 0 {
					t.Fatalf("%s: exit %d\n%s\n%s", run, code, out, errOut)
				}
				want := len(msgs)
				if i > 0 {
					want = 0
				}
				if r := readReport(t, report); r.Totals.Copied != want || r.Totals.Failed != 0 {
					t.Errorf("%s: copied %d, failed %d; want %d, 0", run, r.Totals.Copied, r.Totals.Failed, want)
				}
			}
			holds(t, "restored from the archive", restored, atA, folders)
		})
	}
}

// POP3 from Cyrus and Courier: the archive holds every INBOX message as
// IMAP serves it (RETR is BODY[]; a final CRLF where the message had none),
// and a rerun copies 0.
func TestCompatibilityPOP3(t *testing.T) {
	for _, kind := range []servertest.Kind{servertest.Cyrus, servertest.Courier} {
		t.Run(string(kind), func(t *testing.T) {
			s := startNode(t, kind)
			var inbox []dovecottest.SeedMessage
			for _, m := range roundTripMessages(kind) {
				m.Folder = "INBOX"
				inbox = append(inbox, m)
			}
			s.Seed(t, s.User, inbox)
			// A POP3 multi-line answer ends with CRLF "." CRLF: a message
			// whose last line has no CRLF (Cyrus keeps it so) gets one.
			var served [][]byte
			for _, b := range s.Bodies(t, s.User, "INBOX") {
				if !bytes.HasSuffix(b, []byte("\r\n")) {
					b = append(b, "\r\n"...)
				}
				served = append(served, b)
			}
			want := sortedSHA(served)
			dir := filepath.Join(t.TempDir(), "archive")
			state := t.TempDir()
			t.Setenv("MAILFERRY_SRC_PASSWORD", s.Users[s.User])
			for i, run := range []string{"archive", "rerun"} {
				report := filepath.Join(t.TempDir(), "report.json")
				code, out, errOut := mailferry(t, "archive", "pop3://"+s.User+"@"+s.POP3Addr(), dir, "--src-tls", "none",
					"--state-dir", state, "--progress", "never", "--report", report)
				if code != 0 {
					t.Fatalf("%s: exit %d\n%s\n%s", run, code, out, errOut)
				}
				if r := readReport(t, report); r.Totals.Copied != []int{len(inbox), 0}[i] {
					t.Errorf("%s: copied %d, want %d", run, r.Totals.Copied, []int{len(inbox), 0}[i])
				}
			}
			if got := sortedSHA(archivedBodies(t, dir)); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("POP3 archive of %s holds\n%v\nwant what IMAP serves\n%v", kind, got, want)
			}
		})
	}
}
