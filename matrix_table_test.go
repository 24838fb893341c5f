package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/servertest"
)

// The README's compatibility table is written from TestCompatibilityMatrix:
// the versions of the servers it ran, the legs that passed, and what each
// server did to the bytes it stored. The test fails when the README says
// something else; -update-compat writes the table into the README.

var updateCompat = flag.Bool("update-compat", false, "TestCompatibilityMatrix: write the compatibility table into README.md")

const (
	compatBegin = "<!-- compatibility table: written by TestCompatibilityMatrix (go test -run TestCompatibilityMatrix . -update-compat) -->\n"
	compatEnd   = "<!-- end of the compatibility table -->\n"
)

var compatServer = map[servertest.Kind]string{
	dovecotKind:          "Dovecot (Maildir, `/` separator)",
	dovecotDotKind:       "Dovecot (Maildir, `.` separator)",
	servertest.Cyrus:     "Cyrus IMAP, Debian's defaults (`INBOX.` prefix, `.` separator)",
	servertest.CyrusAlt:  "Cyrus IMAP, `altnamespace: yes`, `unixhierarchysep: yes`",
	servertest.Courier:   "Courier IMAP and POP3 (Maildir++, `INBOX.` prefix)",
	servertest.Mailutils: "GNU mailutils imap4d (mbox files, `/` separator)",
}

// compatNotes is each server's dialect beyond the bytes it stores, each
// fact checked by a test of its own (servers2_test.go, issue11_test.go).
var compatNotes = map[servertest.Kind]string{
	dovecotKind: "Serves a stored NUL byte as 0x80 in `BODY[]`: mailferry reads single-part messages with `BINARY[]`, which keeps the NUL. " +
		"A folder created while another session of the same user lists folders can be left out of its folder index (SELECT opens it, LIST does not show it), " +
		"and two CREATEs at once can crash a session: mailferry creates a run's new folders on one connection before the workers start (`migrate/createfirst.go`); " +
		"a mail client listing at that moment can still cause it (the folder index is a cache: removing the user's `dovecot.list.index*` files makes Dovecot rebuild it).",
	servertest.Cyrus: "Sends `BODY[]` of a message holding NUL as a literal8, which mailferry reads on a connection of its own. " +
		"Refuses `%` in folder names (that folder fails alone, exit 3). " +
		"Says `NO Over quota` without `[OVERQUOTA]` (recognised: the run stops, exit 1).",
	dovecotDotKind:      "Dovecot's dialect as above; `Work/Sub` is `Work.Sub` there.",
	servertest.CyrusAlt: "Cyrus's dialect as above; folders beside INBOX, `/` separator.",
	servertest.Courier: "No MULTIAPPEND or LITERAL+ (one APPEND per message: slower). " +
		"Says `NO [ALERT] You exceeded your mail quota.` (recognised) and `NO Cannot create this folder.` for a folder that exists (handled). " +
		"Its POP3 serves a message with an 8-bit header as a \"Cannot display Unicode content\" notice unless the client sends `UTF8`, which mailferry does.",
	servertest.Mailutils: "Keeps no keywords (PERMANENTFLAGS without `\\*`: dropped, named in the report's note). " +
		"No UIDPLUS: `--delete-source` only marks `\\Deleted` (said in the summary). " +
		"A folder holding messages cannot have subfolders (CREATE `Work/Sub` is refused).",
}

// observedChanges compares what kind serves with what was stored and
// describes the change, failing on one the matrix has no words for.
func observedChanges(t *testing.T, kind servertest.Kind, seeded []dovecottest.SeedMessage, served map[string][]stored) []string {
	t.Helper()
	byFolder := map[string][][]byte{}
	for _, m := range seeded {
		byFolder[m.Folder] = append(byFolder[m.Folder], m.Body)
	}
	var munged, crlf bool
	var seen, added []string
	if kind == servertest.Mailutils {
		checkMailutilsHeaders(t, "as seeded", served)
	}
	for folder, bodies := range byFolder {
		for i, orig := range bodies {
			b, names := servertest.StripMailutilsHeaders(served[folder][i].raw)
			seen = append(seen, names...)
			mungedOrig := serverChange(servertest.Cyrus, orig) // 8-bit header bytes as X
			withCRLF := func(b []byte) []byte { return serverChange(servertest.Courier, b) }
			switch {
			case bytes.Equal(b, orig):
			case bytes.Equal(b, withCRLF(orig)):
				crlf = true
			case bytes.Equal(b, mungedOrig):
				munged = true
			default:
				t.Errorf("%s serves %s message %d changed in a way the matrix has no words for:\n%q\nstored\n%q", kind, folder, i, b, orig)
			}
		}
	}
	for _, h := range servertest.MailutilsHeaders { // in a fixed order
		if slices.Contains(seen, h) {
			added = append(added, h)
		}
	}
	var out []string
	if munged {
		out = append(out, "`munge8bit`: every 8-bit byte in a header becomes `X` when stored.")
	}
	if len(added) > 0 {
		out = append(out, fmt.Sprintf("Adds its state headers to every stored message and serves them in `BODY[]` (`%s`; "+
			"`Status` where the message has a flag, and `Status: O` once a session has had the folder selected read-write); "+
			"they travel on to the next server and are replaced when stored into mailutils again.", strings.Join(added, "`, `")))
	}
	if crlf {
		out = append(out, "Adds a final CRLF where the message had none.")
	}
	if len(out) == 0 {
		out = append(out, "Nothing it stores.")
	}
	return out
}

func dovecotVersion(t *testing.T) string {
	out, err := exec.Command("dovecot", "--version").Output()
	if err != nil {
		t.Fatalf("dovecot --version: %v", err)
	}
	return strings.Fields(string(out))[0]
}

// compatTable is the README's table as the matrix found it.
func compatTable(t *testing.T, res *matrixResults) string {
	var b strings.Builder
	b.WriteString("| Server | Version tested | As source | As destination | What the server itself changes |\n|---|---|---|---|---|\n")
	for _, kind := range matrixKinds {
		version := ""
		if kind == dovecotKind || kind == dovecotDotKind {
			version = dovecotVersion(t)
		} else {
			v, err := servertest.Version(kind)
			if err != nil {
				t.Fatal(err)
			}
			version = v
		}
		var into, from []string
		for _, other := range matrixKinds {
			if res.done[string(kind)+"->"+string(other)] {
				into = append(into, string(other))
			}
			if res.done[string(other)+"->"+string(kind)] {
				from = append(from, string(other))
			}
		}
		src := "IMAP into " + listOf(into) + "; " + archived(res, kind, "archived to")
		if res.done[string(kind)+"-pop3"] {
			src += "; POP3"
		}
		dst := "IMAP from " + listOf(from) + "; " + archived(res, kind, "restored from")
		changes := strings.Join(append(append(res.changes[kind], res.pop3[kind]...), compatNotes[kind]), " ")
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", compatServer[kind], version, src, dst, strings.TrimSpace(changes))
	}
	return b.String()
}

// listOf names the kinds a server was copied into or from: "each of the
// 5 others" when that is all of them.
func listOf(kinds []string) string {
	if len(kinds) == len(matrixKinds)-1 {
		return fmt.Sprintf("each of the %d others", len(kinds))
	}
	if len(kinds) == 0 {
		return "none"
	}
	return strings.Join(kinds, ", ")
}

func archived(res *matrixResults, kind servertest.Kind, verb string) string {
	var formats []string
	for _, f := range []string{"Maildir", "mbox"} {
		if res.done[string(kind)+"->"+strings.ToLower(f)+"->"+string(kind)] {
			formats = append(formats, f)
		}
	}
	if len(formats) == 0 {
		return "no archive"
	}
	return verb + " " + strings.Join(formats, " and ")
}

// checkCompatTable fails when the README's table is not table
// (-update-compat writes it there).
func checkCompatTable(t *testing.T, table string) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, compatBegin), strings.Index(s, compatEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no compatibility table between %q and %q", compatBegin, compatEnd)
	}
	current := s[i+len(compatBegin) : j]
	if current == table {
		return
	}
	if *updateCompat {
		if err := os.WriteFile("README.md", []byte(s[:i+len(compatBegin)]+table+s[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("README.md: compatibility table written")
		return
	}
	t.Errorf("README.md's compatibility table disagrees with the matrix (go test -run TestCompatibilityMatrix . -update-compat writes it):\nREADME:\n%s\nmatrix:\n%s", current, table)
}
