package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate"
)

// Issue 15: the command line as a person meets it. These tests hold its
// messages as golden strings.

// smallMaildir makes a Maildir with n messages in INBOX and in each of the
// folders given (Maildir++ names: ".Archive").
func smallMaildir(t *testing.T, n int, folders ...string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "src")
	for _, f := range append([]string{""}, folders...) {
		dir := filepath.Join(root, f)
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < n; i++ {
			body := fmt.Sprintf("Message-ID: <m%d%s@cli>\r\nSubject: %d\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\n\r\nhello %d\r\n", i, f, i, i)
			name := fmt.Sprintf("1700000%03d.M%dP1.host:2,S", i, i)
			if err := os.WriteFile(filepath.Join(dir, "cur", name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// Warnings speak as everything else does: "mailferry: warning: …", naming
// the folder and the message; never slog's "time=… level=WARN msg=…".
func TestWarningsInOneVoice(t *testing.T) {
	t.Parallel()
	src := smallMaildir(t, 1)
	for _, level := range []string{"info", "debug"} {
		dst := filepath.Join(t.TempDir(), "dst")
		code, out, errOut := mailferry(t, "migrate", "maildir:"+src, "maildir:"+dst, "--progress", "never",
			"--state-dir", t.TempDir(), "--max-message-size", "10", "--log-level", level)
		if code != 3 {
			t.Fatalf("%s: exit %d, want 3\n%s\n%s", level, code, out, errOut)
		}
		want := "mailferry: warning: INBOX: message <m0@cli> 1700000000.M0P1.host failed: "
		if !strings.Contains(errOut, want) {
			t.Errorf("%s: stderr lacks %q:\n%s", level, want, errOut)
		}
		for _, l := range strings.Split(strings.TrimSuffix(errOut, "\n"), "\n") {
			if !strings.HasPrefix(l, "mailferry: ") || regexp.MustCompile(`\blevel=|\btime=|\bmsg=`).MatchString(l) {
				t.Errorf("%s: a line in another voice: %q", level, l)
			}
		}
		if level == "debug" && !strings.Contains(errOut, "mailferry: debug: ") {
			t.Errorf("debug: no debug line:\n%s", errOut)
		}
	}
}

// noTrailingBlanks fails on any line that ends with a space or a tab.
func noTrailingBlanks(t *testing.T, what, s string) {
	t.Helper()
	for i, l := range strings.Split(s, "\n") {
		if strings.TrimRight(l, " \t") != l {
			t.Errorf("%s: line %d ends with blanks: %q", what, i+1, l)
		}
	}
}

// The summary says "1 message" and "2 messages", pads no line with
// trailing blanks, and a dry run gives no time or rate and heads its column
// WOULD COPY.
func TestSummaryGrammarAndLayout(t *testing.T) {
	t.Parallel()
	rep := &migrate.Report{DurationSeconds: 2, Folders: []migrate.FolderReport{
		{Source: "INBOX", Destination: "INBOX", Counts: migrate.Counts{Found: 1, Copied: 1, Bytes: 100}},
	}}
	rep.Totals = migrate.Counts{Found: 1, Copied: 1, Bytes: 100}
	var b strings.Builder
	printSummary(&b, rep)
	want := "" +
		"FOLDER  DESTINATION  FOUND  COPIED  SKIPPED  FAILED  BYTES\n" +
		"INBOX   INBOX        1      1       0        0       100 B\n" +
		"total                1      1       0        0       100 B\n" +
		"copied 1 message (100 B) in 2.0s, 0 msg/s\n"
	if b.String() != want {
		t.Errorf("summary:\n%s\nwant:\n%s", b.String(), want)
	}
	rep.DryRun = true
	rep.Totals.DeletedAtSource = 1
	b.Reset()
	printSummary(&b, rep)
	want = "" +
		"FOLDER  DESTINATION  FOUND  WOULD COPY  SKIPPED  FAILED  BYTES\n" +
		"INBOX   INBOX        1      1           0        0       100 B\n" +
		"total                1      1           0        0       100 B\n" +
		"would copy 1 message (100 B)\n" +
		"would delete 1 message at the source\n"
	if b.String() != want {
		t.Errorf("dry-run summary:\n%s\nwant:\n%s", b.String(), want)
	}

	// The same through the command line, and the failure line.
	src := smallMaildir(t, 1)
	dst := filepath.Join(t.TempDir(), "dst")
	code, out, errOut := mailferry(t, "migrate", "maildir:"+src, "maildir:"+dst, "--progress", "never",
		"--state-dir", t.TempDir(), "--dry-run")
	if code != 0 || !regexp.MustCompile(`(?m)^would copy 1 message \(\d+ B\)$`).MatchString(out) || !strings.Contains(out, "WOULD COPY") {
		t.Errorf("dry run: exit %d\n%s\n%s", code, out, errOut)
	}
	noTrailingBlanks(t, "dry run", out)
	code, out, errOut = mailferry(t, "migrate", "maildir:"+src, "maildir:"+dst, "--progress", "never",
		"--state-dir", t.TempDir(), "--max-message-size", "10")
	if code != 3 || !strings.Contains(errOut, "mailferry: 1 message failed; each is named in the report\n") {
		t.Errorf("failure line: exit %d\n%s\n%s", code, out, errOut)
	}
	noTrailingBlanks(t, "run", out)
}

// verify counts its problems in good English.
func TestVerifyOneProblem(t *testing.T) {
	t.Parallel()
	src := smallMaildir(t, 2)
	dir := filepath.Join(t.TempDir(), "arc")
	if code, out, errOut := mailferry(t, "archive", "maildir:"+src, dir, "--progress", "never", "--state-dir", t.TempDir()); code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut := mailferry(t, "verify", dir)
	if code != 0 || !strings.Contains(out, ": 2 messages (") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errOut)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "cur", "*"))
	if len(files) != 2 {
		t.Fatalf("archive holds %d files in cur, want 2", len(files))
	}
	os.Remove(files[0])
	code, out, errOut = mailferry(t, "verify", dir)
	if code != 1 || !regexp.MustCompile(`(?m)^mailferry: verify: 1 problem in `).MatchString(errOut) {
		t.Errorf("verify after a removal: exit %d\n%s\n%s", code, out, errOut)
	}
}

// The batch table pads no line either, and counts in good English.
func TestBatchSummaryLayout(t *testing.T) {
	t.Parallel()
	sum := &batchSummary{DurationSeconds: 1, Complete: 1, Totals: migrate.Counts{Copied: 1},
		Accounts: []accountResult{{Account: 1, Source: "imap://a@h", Destination: "imap://a@k", Status: "complete", Counts: migrate.Counts{Copied: 1}}}}
	var b strings.Builder
	printBatchSummary(&b, sum)
	noTrailingBlanks(t, "batch", b.String())
	if !strings.HasSuffix(b.String(), "\ncopied 1 message (0 B) for 1 account in 1.0s\n") {
		t.Errorf("batch summary:\n%s", b.String())
	}
	sum.DryRun = true
	b.Reset()
	printBatchSummary(&b, sum)
	if !strings.HasSuffix(b.String(), "\nwould copy 1 message (0 B) for 1 account\n") {
		t.Errorf("dry-run batch summary:\n%s", b.String())
	}
}

// Argument errors: one "mailferry: " prefix, the command's own words, one
// line, a suggestion for a mistyped command or flag; exit 2.
func TestArgumentErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "imap://a@h"}, "mailferry: migrate: wants SOURCE DEST (2 arguments), got 1 argument; or --batch FILE for the accounts listed in FILE\n"},
		{[]string{"archive", "maildir:x"}, "mailferry: archive: wants SOURCE DIR (2 arguments), got 1 argument\n"},
		{[]string{"version", "x"}, "mailferry: version: takes no arguments, got 1 argument\n"},
		{[]string{"migrat"}, "mailferry: unknown command \"migrat\"; did you mean migrate? (\"mailferry --help\" lists the commands)\n"},
		{[]string{"migrate", "a", "b", "--delete-sorce"}, "mailferry: unknown flag --delete-sorce; did you mean --delete-source?\n"},
		{[]string{"archive", "a", "b", "--formt=mbox"}, "mailferry: unknown flag --formt; did you mean --format?\n"},
		{[]string{"migrate", "a", "b", "--zzzzzzzz"}, "mailferry: unknown flag --zzzzzzzz\n"},
	} {
		code, out, errOut := mailferry(t, c.args...)
		if code != 2 || errOut != c.want || out != "" {
			t.Errorf("%q: exit %d, stderr %q (stdout %q); want exit 2, stderr %q", c.args, code, errOut, out, c.want)
		}
	}
}

// version and --version print the same line: the module version and the
// commit the binary was built from.
func TestVersion(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/mailferry/mailferry", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := formatVersion("dev", bi), "mailferry v1.4.0, commit 0123abcd (2026-12-01T10:00:00Z) with uncommitted changes, built with go1.26.8"; got != want {
		t.Errorf("formatVersion:\n got %q\nwant %q", got, want)
	}
	if got, want := formatVersion("v2.0.0", bi), "mailferry v2.0.0, commit 0123abcd (2026-12-01T10:00:00Z) with uncommitted changes, built with go1.26.8"; got != want {
		t.Errorf("formatVersion with -X main.version:\n got %q\nwant %q", got, want)
	}
	_, v1, _ := mailferry(t, "version")
	code, v2, errOut := mailferry(t, "--version")
	if code != 0 || v1 != v2 || !strings.HasPrefix(v1, "mailferry ") || errOut != "" {
		t.Errorf("version %q, --version %q (exit %d, %q): want the same line", v1, v2, code, errOut)
	}

	// A binary built from a clone (Go records no VCS data in a git
	// worktree) names the clone's commit.
	if testing.Short() {
		t.Skip("builds a binary")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git: " + err.Error())
	}
	dir := filepath.Join(t.TempDir(), "clone")
	git := func(args ...string) string {
		out, err := exec.Command("git", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %q: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("clone", "-q", "--no-local", ".", dir)
	// The clone gets this package's working files (what is being tested).
	for _, f := range strings.Fields(git("ls-files", "-co", "--exclude-standard", "*.go")) {
		b, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, f), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	head := git("-C", dir, "rev-parse", "HEAD")
	bin := filepath.Join(t.TempDir(), "mailferry")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ", commit "+head+" (") {
			t.Errorf("%s: %v %q; want commit %s", arg, err, out, head)
		}
	}
}

// An archive DIR that looks like an endpoint is read as one or refused,
// never made into a directory named "imap:" or "maildir:"; a path in a
// server URL, a port out of range and an empty date range are usage errors.
// Not parallel: t.Chdir changes the whole process's directory.
func TestEndpointArguments(t *testing.T) {
	src := "maildir:" + smallMaildir(t, 1)
	work := t.TempDir()
	t.Chdir(work)
	state := t.TempDir()
	setenv(t, "MAILFERRY_SRC_PASSWORD", "x") // so that only the endpoint can be refused
	for _, c := range []struct {
		args []string
		want string // on stderr
	}{
		{[]string{"archive", src, "imap://bob@host"}, "mailferry: imap://bob@host: archive writes into a local directory, not a server (to copy into a server: mailferry migrate SOURCE imap://bob@host)\n"},
		{[]string{"archive", src, "maildir:arc/y", "--format", "mbox"}, "mailferry: maildir:arc/y: says maildir, but --format says mbox\n"},
		{[]string{"archive", src, "mbox:one.mbox"}, "mailferry: mbox:one.mbox: archive writes a directory of mbox files; give a directory (mbox:DIR or DIR --format mbox)\n"},
		{[]string{"migrate", "imap://alice@127.0.0.1:1/INBOX", "maildir:m"}, "mailferry: imap://alice@127.0.0.1:1/INBOX: a folder or anything else after the host is not part of an endpoint; select folders with --include (--include \"INBOX\")\n"},
		{[]string{"migrate", "imap://alice@127.0.0.1:99999", "maildir:m"}, "mailferry: imap://alice@127.0.0.1:99999: port 99999 is not a port number (1 to 65535)\n"},
		{[]string{"migrate", src, "maildir:m", "--since", "2024-02-01", "--before", "2024-01-01"}, "mailferry: --since 2024-02-01 is not before --before 2024-01-01: no message could be selected\n"},
	} {
		code, out, errOut := mailferry(t, append(c.args, "--progress", "never", "--state-dir", state)...)
		if code != 2 || errOut != c.want {
			t.Errorf("%q: exit %d\nstderr %q\nwant   %q\n%s", c.args, code, errOut, c.want, out)
		}
	}
	if code, out, errOut := mailferry(t, "archive", src, "maildir:arc/x", "--progress", "never", "--state-dir", state); code != 0 {
		t.Errorf("archive into maildir:arc/x: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := mailferry(t, "archive", src, "mbox:arcm", "--progress", "never", "--state-dir", state); code != 0 {
		t.Errorf("archive into mbox:arcm: exit %d\n%s\n%s", code, out, errOut)
	}
	var got []string
	filepath.WalkDir(work, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != work && (d.IsDir() || strings.HasSuffix(p, ".mbox") || strings.HasSuffix(p, "inbox")) && !strings.Contains(p, string(os.PathSeparator)+"arc"+string(os.PathSeparator)+"x"+string(os.PathSeparator)) {
			rel, _ := filepath.Rel(work, p)
			got = append(got, rel)
		}
		return nil
	})
	if want := "arc arc/x arcm arcm/mail arcm/mail/inbox"; strings.Join(got, " ") != want {
		t.Errorf("the working directory holds %q, want %q", strings.Join(got, " "), want)
	}
}

// An --include that matches no folder is named in a warning; a selection
// that selects nothing at all is a usage error (exit 2), copying nothing.
func TestIncludeMatchingNothing(t *testing.T) {
	t.Parallel()
	src := "maildir:" + smallMaildir(t, 1, ".Archive", ".Archive.2023")
	dst := filepath.Join(t.TempDir(), "dst")
	state := t.TempDir()
	code, out, errOut := mailferry(t, "migrate", src, "maildir:"+dst, "--progress", "never", "--state-dir", state,
		"--include", "Archvie/*", "--include", "Archive/*")
	if code != 0 || errOut != "mailferry: warning: --include \"Archvie/*\" matches no folder of the source\n" ||
		!regexp.MustCompile(`(?m)^copied 1 message `).MatchString(out) {
		t.Errorf("one pattern matching nothing: exit %d\nstdout %s\nstderr %q", code, out, errOut)
	}
	dst = filepath.Join(t.TempDir(), "dst")
	code, out, errOut = mailferry(t, "migrate", src, "maildir:"+dst, "--progress", "never", "--state-dir", state,
		"--include", "inbox")
	want := "mailferry: warning: --include \"inbox\" matches no folder of the source (names are case-sensitive: did you mean \"INBOX\"?)\n" +
		"mailferry: usage: --include and --exclude select no folder of the source; 'mailferry folders SOURCE' lists them\n"
	if code != 2 || errOut != want || out != "" {
		t.Errorf("nothing selected: exit %d\nstdout %s\nstderr %q\nwant   %q", code, out, errOut, want)
	}
	if files, _ := filepath.Glob(filepath.Join(dst, "*", "*")); len(files) != 0 {
		t.Errorf("nothing selected, yet the destination holds %q", files)
	}
}

// Password files and commands: an empty file is refused naming it, a file
// others can read gets a warning, a failing command's first line of
// standard error is shown.
func TestPasswordSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	server := "imap://alice@127.0.0.1:1" // nothing listens: only the password is at stake
	args := func(extra ...string) []string {
		return append([]string{"migrate", server, "maildir:" + filepath.Join(dir, "m"), "--progress", "never", "--state-dir", dir}, extra...)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := mailferry(t, args("--src-password-file", empty)...)
	if want := "mailferry: --src-password-file " + empty + ": no password on its first line\n"; code != 2 || errOut != want {
		t.Errorf("empty file: exit %d\nstderr %q\nwant   %q\n%s", code, errOut, want, out)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o644)
	code, _, errOut = mailferry(t, args("--src-password-file", open)...)
	if want := "mailferry: warning: --src-password-file " + open + " can be read by others (mode 0644): chmod 600 " + open + "\n"; code != 1 || !strings.HasPrefix(errOut, want) || strings.Contains(errOut, "hunter2") {
		t.Errorf("file others can read: exit %d\nstderr %q\nwant a line %q", code, errOut, want)
	}
	os.Chmod(open, 0o600)
	if _, _, errOut = mailferry(t, args("--src-password-file", open)...); strings.Contains(errOut, "warning") {
		t.Errorf("a private file gets a warning: %q", errOut)
	}
	code, _, errOut = mailferry(t, args("--src-password-cmd", `echo hunter2; echo "gpg: encrypted with 3072-bit RSA key, ID 0123" >&2; echo "gpg: decryption failed: No secret key" >&2; echo >&2; exit 3`)...)
	if want := "mailferry: --src-password-cmd failed (exit status 3): gpg: decryption failed: No secret key\n"; code != 1 || errOut != want {
		t.Errorf("failing command: exit %d\nstderr %q\nwant   %q", code, errOut, want)
	}

	// A file and a command both: refused, nothing done. A flag and the
	// environment: the flag is used, and a note says so.
	code, out, errOut = mailferry(t, args("--src-password-file", open, "--src-password-cmd", "echo x")...)
	if want := "mailferry: --src-password-file and --src-password-cmd: give one of them\n"; code != 2 || errOut != want || out != "" {
		t.Errorf("file and command: exit %d\nstderr %q\nwant   %q", code, errOut, want)
	}
	setenv(t, "MAILFERRY_SRC_PASSWORD", "from-env")
	_, _, errOut = mailferry(t, args("--src-password-file", open)...)
	if want := "mailferry: note: --src-password-file is used; MAILFERRY_SRC_PASSWORD is set too and ignored\n"; !strings.HasPrefix(errOut, want) {
		t.Errorf("file and environment:\nstderr %q\nwant a line %q", errOut, want)
	}
}

// A single mbox file holds only INBOX: as the destination of a selection
// that may hold more folders it is a usage error before any connection
// (nothing listens at the source address), suggesting --include INBOX or
// a directory; with --include INBOX, or from a POP3 server, the run goes on
// (and fails to connect).
func TestSingleMboxDestinationRefusedBeforeConnecting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	one := filepath.Join(dir, "one.mbox")
	setenv(t, "MAILFERRY_SRC_PASSWORD", "x")
	run := func(src string, extra ...string) (int, string) {
		args := append([]string{"migrate", src, "mbox:" + one, "--progress", "never", "--state-dir", dir}, extra...)
		code, _, errOut := mailferry(t, args...)
		return code, errOut
	}
	want := "mailferry: mbox:" + one + " is a single mbox file: it holds only INBOX, and imap://alice@127.0.0.1:1 may have other folders; add --include INBOX (without --prefix), or give a directory (mbox:DIR) for every folder\n"
	for _, extra := range [][]string{nil, {"--include", "Archive/*"}, {"--include", "INBOX", "--include", "Sent"}, {"--include", "INBOX", "--prefix", "Old"}} {
		if code, errOut := run("imap://alice@127.0.0.1:1", extra...); code != 2 || errOut != want {
			t.Errorf("%q: exit %d\nstderr %q\nwant   %q", extra, code, errOut, want)
		}
	}
	if code, errOut := run("imap://alice@127.0.0.1:1", "--include", "INBOX"); code != 1 || !strings.Contains(errOut, "connection refused") {
		t.Errorf("--include INBOX: exit %d, %q; want the run to try to connect", code, errOut)
	}
	if code, errOut := run("pop3://alice@127.0.0.1:1"); code != 1 || !strings.Contains(errOut, "connection refused") {
		t.Errorf("from POP3: exit %d, %q; want the run to try to connect", code, errOut)
	}
	if _, err := os.Stat(one); err == nil {
		t.Errorf("%s was made", one)
	}
}

// migrate into a local store writes a manifest, as archive does, and says
// its chain head (which verify --last-hash accepts); a folder name a file
// name cannot hold as it is gets the same kind of note from both.
func TestLocalDestinationChainHeadAndEscapeNote(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	mbox := "From a@b Mon Jan  2 10:00:00 2023\nMessage-ID: <n@cli>\nSubject: x\n\nhi\n"
	writeFile(t, filepath.Join(src, "INBOX.mbox"), mbox)
	writeFile(t, filepath.Join(src, "Notes 1.5.mbox"), mbox)
	state := t.TempDir()
	note := "note: Notes 1.5: a name part holds '.', which a local store's file name cannot: stored as \"Notes 1%2E5\"\n"
	head := regexp.MustCompile(`(?m)^manifest chain head: ([0-9a-f]{64})$`)
	for _, args := range [][]string{{"migrate", "mbox:" + src, "maildir:"}, {"archive", "mbox:" + src, ""}} {
		dir := filepath.Join(t.TempDir(), "out")
		code, out, errOut := mailferry(t, args[0], args[1], args[2]+dir, "--progress", "never", "--state-dir", state)
		if code != 0 || !strings.Contains(out, note) {
			t.Errorf("%s: exit %d, want the note %q\n%s%s", args[0], code, note, out, errOut)
		}
		m := head.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("%s: no chain head:\n%s", args[0], out)
			continue
		}
		if code, vout, verr := mailferry(t, "verify", dir, "--last-hash", m[1]); code != 0 {
			t.Errorf("%s: verify --last-hash %s: exit %d\n%s%s", args[0], m[1], code, vout, verr)
		}
	}
}
