package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBatchFileParsing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "a.csv"), "\xef\xbb\xbf"+
		"source,destination,src_password_file,dst_password_file,src_token_cmd,dst_token_cmd\n"+
		"# a comment\n"+
		"imaps://alice@old.example.com,imaps://alice@new.example.com,secrets/alice-old,/abs/alice-new,,\n"+
		"\n"+
		"imaps://bob@old.example.com, imaps://bob@new.example.com,,,,oauth2l fetch --json bob\n"+
		"pop3s://carol@pop.example.com,maildir:/srv/archive/carol,,,,\n")
	rows, err := readBatch(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	if r := rows[0]; r.account != 1 || r.line != 3 || r.srcPasswordFile != filepath.Join(dir, "secrets/alice-old") || r.dstPasswordFile != "/abs/alice-new" {
		t.Errorf("row 1: %+v", r)
	}
	if r := rows[1]; r.account != 2 || r.destination != "imaps://bob@new.example.com" || r.dstTokenCmd != "oauth2l fetch --json bob" {
		t.Errorf("row 2: %+v", r)
	}
	if r := rows[2]; r.src.scheme != "pop3s" || r.dst.scheme != "maildir" {
		t.Errorf("row 3: %+v", r)
	}
	// Columns in another order, optional ones left out.
	rows, err = readBatch(writeFile(t, filepath.Join(dir, "b.csv"), "destination,source\nmaildir:/x,imap://u@h\n"))
	if err != nil || len(rows) != 1 || rows[0].source != "imap://u@h" {
		t.Errorf("reordered columns: %+v %v", rows, err)
	}

	for name, content := range map[string]string{
		"no header":        "imap://a@h,imap://a@g\n",
		"unknown column":   "source,destination,password\nimap://a@h,imap://a@g,x\n",
		"empty":            "",
		"header only":      "source,destination\n",
		"missing cell":     "source,destination\nimap://a@h,\n",
		"password in URL":  "source,destination\nimap://a:pw@h,imap://a@g\n",
		"file and token":   "source,destination,src_password_file,src_token_cmd\nimap://a@h,imap://a@g,f,cmd\n",
		"same pair twice":  "source,destination\nimap://a@h,imap://a@g\nimap://a@h:143,imap://a@g\n",
		"ragged row":       "source,destination\nimap://a@h,imap://a@g,extra\n",
		"duplicate column": "source,destination,source\nimap://a@h,imap://a@g,imap://b@h\n",
		"shared maildir":   "source,destination\nimap://a@h,maildir:/srv/x\nimap://b@h,maildir:/srv/x\n",
		"token for a file": "source,destination,dst_token_cmd\nimap://a@h,maildir:/srv/x,get-token\n",
	} {
		_, err := readBatch(writeFile(t, filepath.Join(dir, "bad.csv"), content))
		if exitCode(err) != exitUsage {
			t.Errorf("%s: %v (exit %d), want a usage error", name, err, exitCode(err))
		}
		if strings.Contains(fmt.Sprint(err), ":pw@") {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}

func TestBatchShardsCoverEveryRowOnce(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"0/2", "3/2", "1", "a/b", "1/0", "-1/2"} {
		if _, _, err := parseShard(bad); exitCode(err) != exitUsage {
			t.Errorf("--shard %s: %v, want a usage error", bad, err)
		}
	}
	for total := 0; total <= 23; total++ {
		rows := make([]batchRow, total)
		for i := range rows {
			rows[i].account = i + 1
		}
		for n := 1; n <= 7; n++ {
			seen := map[int]int{}
			for k := 1; k <= n; k++ {
				kk, nn, err := parseShard(fmt.Sprintf("%d/%d", k, n))
				if err != nil || kk != k || nn != n {
					t.Fatalf("parseShard %d/%d: %d %d %v", k, n, kk, nn, err)
				}
				for _, r := range shardRows(rows, k, n) {
					seen[r.account]++
					if (r.account-1)%n != k-1 {
						t.Errorf("shard %d/%d took row index %d", k, n, r.account-1)
					}
				}
			}
			for i := 1; i <= total; i++ {
				if seen[i] != 1 {
					t.Errorf("%d rows, %d shards: row %d taken %d times", total, n, i, seen[i])
				}
			}
		}
	}
}

func TestBatchCommandLineUsage(t *testing.T) {
	t.Parallel()
	csv := writeFile(t, filepath.Join(t.TempDir(), "a.csv"), "source,destination\nimap://a@127.0.0.1:1,maildir:/nonexistent/x\n")
	for _, args := range [][]string{
		{"migrate", "--batch", csv, "imap://a@h", "imap://a@g"}, // SOURCE DEST with --batch
		{"migrate", "imap://a@h"},                               // one argument
		{"migrate"},                                             // none, without --batch
		{"migrate", "imap://a@h", "imap://a@g", "--accounts", "3"},
		{"migrate", "imap://a@h", "imap://a@g", "--shard", "1/2"},
		{"migrate", "--batch", csv, "--shard", "2/1"},
		{"migrate", "--batch", csv, "--accounts", "0"},
		{"migrate", "--batch", csv, "--preset", "hotmail"},
		{"migrate", "--batch", filepath.Join(t.TempDir(), "missing.csv")},
	} {
		if code, out, errOut := mailferry(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2\n%s%s", args[1:], code, out, errOut)
		}
	}
}

func TestBatchReportNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sum, acc, err := batchReports(filepath.Join(dir, "run.json"), "")
	if err != nil || sum != filepath.Join(dir, "run.json") || acc(7) != filepath.Join(dir, "run-7.json") {
		t.Errorf("FILE: %s %s %v", sum, acc(7), err)
	}
	sum, acc, err = batchReports(dir+"/reports/", "2/4")
	if err != nil || sum != filepath.Join(dir, "reports", "summary-2-of-4.json") || acc(7) != filepath.Join(dir, "reports", "report-7.json") {
		t.Errorf("DIR/: %s %s %v", sum, acc(7), err)
	}
	if st, err := os.Stat(filepath.Join(dir, "reports")); err != nil || !st.IsDir() {
		t.Error("DIR/ was not made")
	}
	if sum, acc, _ = batchReports(dir, ""); sum != filepath.Join(dir, "summary.json") || acc(1) != filepath.Join(dir, "report-1.json") {
		t.Errorf("existing DIR: %s %s", sum, acc(1))
	}
}

// batchFixture is one source and one destination Dovecot with 20 users,
// a few messages each at the source, and a batch file naming them all with
// password files.
type batchFixture struct {
	src, dst *dovecottest.Server
	users    []string
	csv      string
	state    string
	seeded   map[string]int // user -> messages seeded
}

func newBatchFixture(t *testing.T, wrongDst string) *batchFixture {
	t.Helper()
	users := map[string]string{}
	var names []string
	for i := 1; i <= 20; i++ {
		u := fmt.Sprintf("user%02d", i)
		users[u] = fmt.Sprintf("pw-%s-%d", u, i*7919)
		names = append(names, u)
	}
	fx := &batchFixture{
		src:    dovecottest.Start(t, dovecottest.Options{Separator: '/', Users: users}),
		dst:    dovecottest.Start(t, dovecottest.Options{Separator: '.', Users: users}),
		users:  names,
		state:  t.TempDir(),
		seeded: map[string]int{},
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("source,destination,src_password_file,dst_password_file\n")
	for i, u := range names {
		n := 1 + i%3
		var seed []dovecottest.SeedMessage
		for j := 0; j < n; j++ {
			folder := "INBOX"
			if j == 2 {
				folder = "Archive/2024"
			}
			seed = append(seed, dovecottest.SeedMessage{Folder: folder, Date: time.Date(2024, 5, 1+j, 9, i, 0, 0, time.UTC),
				Body: []byte(fmt.Sprintf("From: %s@example.com\r\nSubject: %s message %d\r\nMessage-ID: <%s-%d@batch.example>\r\n\r\nhello %d\r\n", u, u, j, u, j, j))})
		}
		fx.src.Seed(t, u, seed)
		fx.seeded[u] = n
		dstPW := users[u]
		if u == wrongDst {
			dstPW = "not-" + dstPW
		}
		writeFile(t, filepath.Join(dir, "secrets", u+"-src"), users[u]+"\n")
		writeFile(t, filepath.Join(dir, "secrets", u+"-dst"), dstPW+"\n")
		fmt.Fprintf(&b, "imap://%s@%s,imap://%s@%s,secrets/%s-src,secrets/%s-dst\n", u, fx.src.IMAPAddr(), u, fx.dst.IMAPAddr(), u, u)
	}
	fx.csv = writeFile(t, filepath.Join(dir, "accounts.csv"), b.String())
	// The environment must not lend a password to any row.
	setenv(t, "MAILFERRY_SRC_PASSWORD", "")
	setenv(t, "MAILFERRY_DST_PASSWORD", "")
	return fx
}

func (fx *batchFixture) args(extra ...string) []string {
	return append([]string{"migrate", "--batch", fx.csv, "--src-tls", "none", "--dst-tls", "none",
		"--state-dir", fx.state, "--progress", "never"}, extra...)
}

func readSummary(t *testing.T, path string) batchSummary {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s batchSummary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkAccount compares one user's destination with the source: the same
// messages (hash, flags, date), each once.
func (fx *batchFixture) checkAccount(t *testing.T, u string) {
	t.Helper()
	src, dst := fx.src.Snapshot(t, u), fx.dst.Snapshot(t, u)
	want := keys(append(append([]dovecottest.MessageState(nil), src["INBOX"]...), src["Archive/2024"]...))
	got := keys(append(append([]dovecottest.MessageState(nil), dst["INBOX"]...), dst["Archive.2024"]...))
	if len(want) != fx.seeded[u] || strings.Join(got, "\n") != strings.Join(want, "\n") || total(dst) != fx.seeded[u] {
		t.Errorf("%s: destination holds %d messages (%d in all), source %d: %s\nsource folders %v, destination folders %v\n%s",
			u, len(got), total(dst), len(want), firstDiff(want, got), keysOf(src), keysOf(dst), fx.dst.LogTail(20))
	}
}

func TestBatch20AccountsOneWrongPassword(t *testing.T) {
	t.Parallel()
	fx := newBatchFixture(t, "user07")
	reports := t.TempDir()
	code, out, errOut := mailferry(t, fx.args("--accounts", "4", "--report", reports+"/")...)
	if code != exitFailures {
		t.Fatalf("exit %d, want 3\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", out, errOut)
	sum := readSummary(t, filepath.Join(reports, "summary.json"))
	if sum.Complete != 19 || sum.Failed != 1 || sum.Partial != 0 || len(sum.Accounts) != 20 {
		t.Fatalf("summary: %d complete, %d failed, %d partial of %d", sum.Complete, sum.Failed, sum.Partial, len(sum.Accounts))
	}
	wantCopied := 0
	for i, a := range sum.Accounts {
		u := fx.users[i]
		if a.Account != i+1 || a.Line != i+2 || !strings.Contains(a.Source, u+"@") {
			t.Errorf("summary line %d: %+v", i, a)
		}
		rep := readReport(t, filepath.Join(reports, fmt.Sprintf("report-%d.json", i+1)))
		if a.Report != filepath.Join(reports, fmt.Sprintf("report-%d.json", i+1)) || rep.Source != a.Source {
			t.Errorf("account %d: report %q holds %q", a.Account, a.Report, rep.Source)
		}
		if u == "user07" {
			if a.Status != statusFailed || !strings.Contains(strings.ToLower(a.Error), "authentication failed") || a.Copied != 0 {
				t.Errorf("user07: %+v, want failed with an authentication error", a)
			}
			if rep.Error == "" {
				t.Error("user07's own report does not say why it failed")
			}
			continue
		}
		wantCopied += fx.seeded[u]
		if a.Status != statusComplete || a.Copied != fx.seeded[u] || a.Failed != 0 || rep.Totals.Copied != fx.seeded[u] {
			t.Errorf("%s: %+v (report copied %d), want complete with %d copied", u, a, rep.Totals.Copied, fx.seeded[u])
		}
		fx.checkAccount(t, u)
	}
	if sum.Totals.Copied != wantCopied {
		t.Errorf("summary totals: copied %d, want %d", sum.Totals.Copied, wantCopied)
	}
	if n := total(fx.dst.Snapshot(t, "user07")); n != 0 {
		t.Errorf("user07's destination holds %d messages", n)
	}
	// Named in the table and on stderr; no password anywhere.
	if !strings.Contains(out, "user07@") || !strings.Contains(out, statusFailed) || !strings.Contains(out, "19/20 complete") {
		t.Errorf("the summary table does not name the failed account:\n%s", out)
	}
	if !strings.Contains(errOut, "1 of 20 accounts did not complete") || !strings.Contains(errOut, "account 7 (imap://user07@") {
		t.Errorf("stderr does not name the failed account:\n%s", errOut)
	}
	if strings.Count(errOut, ": started\n") != 20 {
		t.Errorf("want one start line per account on stderr:\n%s", errOut)
	}
	for _, u := range fx.users {
		pw := fx.src.Users[u]
		if strings.Contains(out+errOut, pw) {
			t.Fatalf("%s's password appears in the output", u)
		}
	}

	// The password fixed, a rerun completes user07 and copies nothing else again.
	writeFile(t, filepath.Join(filepath.Dir(fx.csv), "secrets", "user07-dst"), fx.dst.Users["user07"]+"\n")
	code, out, errOut = mailferry(t, fx.args("--accounts", "4", "--report", reports+"/")...)
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	sum = readSummary(t, filepath.Join(reports, "summary.json"))
	if sum.Complete != 20 || sum.Totals.Copied != fx.seeded["user07"] {
		t.Errorf("rerun: %d complete, copied %d; want 20 and %d", sum.Complete, sum.Totals.Copied, fx.seeded["user07"])
	}
	fx.checkAccount(t, "user07")
}

func TestBatchTwoShardsCoverEveryAccountOnce(t *testing.T) {
	t.Parallel()
	fx := newBatchFixture(t, "")
	reports := t.TempDir()
	seen := map[int]string{}
	for k := 1; k <= 2; k++ {
		report := filepath.Join(reports, fmt.Sprintf("shard%d.json", k))
		code, out, errOut := mailferry(t, fx.args("--accounts", "3", "--shard", fmt.Sprintf("%d/2", k), "--report", report)...)
		if code != 0 {
			t.Fatalf("shard %d/2: exit %d\n%s\n%s", k, code, out, errOut)
		}
		sum := readSummary(t, report)
		if len(sum.Accounts) != 10 || sum.Complete != 10 || sum.Shard != fmt.Sprintf("%d/2", k) {
			t.Errorf("shard %d/2: %d accounts, %d complete", k, len(sum.Accounts), sum.Complete)
		}
		for _, a := range sum.Accounts {
			if prev, dup := seen[a.Account]; dup {
				t.Errorf("account %d ran in %s and in shard %d", a.Account, prev, k)
			}
			seen[a.Account] = fmt.Sprintf("shard %d", k)
			if (a.Account-1)%2 != k-1 {
				t.Errorf("shard %d/2 ran account %d (row index %d)", k, a.Account, a.Account-1)
			}
			u := fx.users[a.Account-1]
			if a.Copied != fx.seeded[u] {
				t.Errorf("shard %d: %s copied %d, want %d", k, u, a.Copied, fx.seeded[u])
			}
			if rep := readReport(t, filepath.Join(reports, fmt.Sprintf("shard%d-%d.json", k, a.Account))); rep.Totals.Copied != fx.seeded[u] {
				t.Errorf("shard %d: %s's report copied %d", k, u, rep.Totals.Copied)
			}
		}
		if k == 1 {
			// Between the shards: shard 2's accounts are untouched.
			for i, u := range fx.users {
				if n := total(fx.dst.Snapshot(t, u)); i%2 == 1 && n != 0 {
					t.Errorf("after shard 1/2, %s (row index %d) already holds %d messages", u, i, n)
				}
			}
		}
	}
	var accounts []int
	for a := range seen {
		accounts = append(accounts, a)
	}
	sort.Ints(accounts)
	if len(accounts) != 20 || accounts[0] != 1 || accounts[19] != 20 {
		t.Errorf("the shards together ran accounts %v, want 1..20", accounts)
	}
	for _, u := range fx.users {
		fx.checkAccount(t, u)
	}
}

func TestBatchExampleFileParses(t *testing.T) {
	t.Parallel()
	rows, err := readBatch(filepath.Join("examples", "accounts.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("examples/accounts.csv: %d accounts, want 3", len(rows))
	}
	if r := rows[0]; r.dst.server.User != "alice@example.com" || r.dst.server.Addr != "outlook.office365.com:993" ||
		r.dstTokenCmd != "m365-token alice@example.com" || r.srcPasswordFile != "/secrets/alice-old" {
		t.Errorf("row 1: %+v %+v", r, r.dst.server)
	}
	if r := rows[2]; r.dst.scheme != "maildir" || r.dstTokenCmd != "" {
		t.Errorf("row 3: %+v", r)
	}
}

// An account whose run finishes with failed messages is "partial": the
// batch exits 3 and names it. The row gives no password files, so the
// environment's passwords are used (newPair sets them).
func TestBatchAccountWithFailedMessagesIsPartial(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msg := func(n int) []byte {
		return []byte(fmt.Sprintf("From: ann@example.com\r\nSubject: %d\r\nMessage-ID: <m%d@batch.example>\r\n\r\nhello\r\n", n, n))
	}
	big := append(msg(2), bytes.Repeat([]byte("x"), 30_000)...)
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: msg(1)}, {Body: big}})
	dir := t.TempDir()
	csv := writeFile(t, filepath.Join(dir, "one.csv"), fmt.Sprintf("source,destination\nimap://alice@%s,imap://alice@%s\n", p.src.IMAPAddr(), p.dst.IMAPAddr()))
	report := filepath.Join(dir, "sum.json")
	code, out, errOut := mailferry(t, "migrate", "--batch", csv, "--src-tls", "none", "--dst-tls", "none",
		"--state-dir", p.state, "--progress", "never", "--preset", "office365", "--max-message-size", "10KB", "--report", report)
	if code != exitFailures {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, out, errOut)
	}
	sum := readSummary(t, report)
	if a := sum.Accounts[0]; sum.Partial != 1 || a.Status != statusPartial || a.Copied != 1 || a.Failed != 1 {
		t.Errorf("summary: %+v", sum)
	}
	if rep := readReport(t, filepath.Join(dir, "sum-1.json")); len(rep.Failures) != 1 || rep.Failures[0].MessageID != "<m2@batch.example>" {
		t.Errorf("the account's report does not name the failed message: %+v", rep.Failures)
	}
	if !strings.Contains(errOut, "account 1 (imap://alice@") || !strings.Contains(errOut, "1 message failed") {
		t.Errorf("stderr does not name the partial account:\n%s", errOut)
	}
}

// The token columns log in with OAuth2: each row's command gives that
// account's token, and a row whose token is refused fails alone.
func TestBatchTokenColumns(t *testing.T) {
	t.Parallel()
	o := dovecottest.StartOAuth2(t)
	users := map[string]string{"ann": "ann-pw-1", "ben": "ben-pw-2", "cat": "cat-pw-3"}
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/', Users: users, OAuth2IntrospectionURL: o.URL})
	dst := dovecottest.Start(t, dovecottest.Options{Separator: '.', Users: users, OAuth2IntrospectionURL: o.URL})
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("source,destination,src_password_file,dst_token_cmd\n")
	for _, u := range []string{"ann", "ben", "cat"} {
		src.Seed(t, u, []dovecottest.SeedMessage{{Body: []byte(fmt.Sprintf("From: %s@example.com\r\nSubject: hi\r\nMessage-ID: <%s@tok.example>\r\n\r\nhi\r\n", u, u))}})
		writeFile(t, filepath.Join(dir, u+"-src"), users[u]+"\n")
		token := "tok-" + u + "-0123456789"
		if u != "ben" { // ben's token is never granted
			o.Grant(token, u)
		}
		fmt.Fprintf(&b, "imap://%s@%s,imap://%s@%s,%s-src,echo %s\n", u, src.IMAPAddr(), u, dst.IMAPAddr(), u, token)
	}
	csv := writeFile(t, filepath.Join(dir, "tokens.csv"), b.String())
	setenv(t, "MAILFERRY_SRC_PASSWORD", "")
	setenv(t, "MAILFERRY_DST_PASSWORD", "")
	report := filepath.Join(dir, "sum.json")
	code, out, errOut := mailferry(t, "migrate", "--batch", csv, "--src-tls", "none", "--dst-tls", "none",
		"--state-dir", t.TempDir(), "--progress", "never", "--accounts", "3", "--report", report)
	if code != exitFailures {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, out, errOut)
	}
	sum := readSummary(t, report)
	for i, want := range []string{statusComplete, statusFailed, statusComplete} {
		if a := sum.Accounts[i]; a.Status != want {
			t.Errorf("account %d: %s (%s), want %s", a.Account, a.Status, a.Error, want)
		}
	}
	for _, u := range []string{"ann", "cat"} {
		if n := total(dst.Snapshot(t, u)); n != 1 {
			t.Errorf("%s's destination holds %d messages, want 1", u, n)
		}
	}
	if strings.Contains(out+errOut, "tok-") {
		t.Error("a token appears in the output")
	}
}

// The CSV has src_tls, dst_tls and ca_file columns, as the flags of those
// names: a row reaches a TLS source whose CA only ca_file names, and a
// plaintext destination (dst_tls none), with no TLS flag on the command
// line. A bad mode or CA file is a usage error naming the line.
func TestBatchTLSColumns(t *testing.T) {
	t.Parallel()
	s := newTLSSetup(t, dovecottest.Options{TLS: true})
	dir := t.TempDir()
	for name, content := range map[string]string{
		"bad mode":        "source,destination,src_tls\nimap://a@h,maildir:/x,ssl\n",
		"tls for a store": "source,destination,dst_tls\nimap://a@h,maildir:/x,none\n",
		"no such CA":      "source,destination,ca_file\nimap://a@h,maildir:/x,nothere.pem\n",
	} {
		_, err := readBatch(writeFile(t, filepath.Join(dir, "bad.csv"), content))
		if exitCode(err) != exitUsage || !strings.Contains(fmt.Sprint(err), "bad.csv:2: ") {
			t.Errorf("%s: %v (exit %d), want a usage error naming line 2", name, err, exitCode(err))
		}
	}
	csv := writeFile(t, filepath.Join(dir, "accounts.csv"), "source,destination,src_tls,dst_tls,ca_file\n"+
		s.imapsURL("")+",imap://alice@"+s.dst.IMAPAddr()+",tls,none,"+s.src.CAFile+"\n")
	code, out, errOut := mailferry(t, "migrate", "--batch", csv, "--state-dir", s.state, "--progress", "never")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	s.wantCopied(t)
}

// Each failed account is named once (in the list at the end, with why);
// when every account failed the exit status is 1, not 3; a dry run says
// what it checked and would copy, never "complete".
func TestBatchFailuresOnceAndDryRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	setenv(t, "MAILFERRY_SRC_PASSWORD", "x")
	src := smallMaildir(t, 1)
	refused := func(n int) string {
		return fmt.Sprintf("imap://u%d@127.0.0.1:1,maildir:%s\n", n, filepath.Join(dir, fmt.Sprint("dst", n)))
	}
	run := func(name, rows string, extra ...string) (int, string, string) {
		csv := writeFile(t, filepath.Join(dir, name+".csv"), "source,destination\n"+rows)
		return mailferry(t, append([]string{"migrate", "--batch", csv, "--state-dir", filepath.Join(dir, "state"), "--progress", "never"}, extra...)...)
	}
	code, out, errOut := run("allfail", refused(1)+refused(2))
	if code != exitError || strings.Count(out+errOut, "connection refused") != 2 ||
		!strings.HasSuffix(errOut, "mailferry: batch: every account failed; each is named above\n") {
		t.Errorf("every account failed: exit %d, want 1, each failure once\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = run("onefails", refused(1)+"maildir:"+src+",maildir:"+filepath.Join(dir, "ok")+"\n")
	if code != exitFailures || strings.Count(out+errOut, "connection refused") != 1 || !strings.Contains(out, "1/2 complete") {
		t.Errorf("one account failed: exit %d, want 3, the failure once\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	code, out, errOut = run("dry", "maildir:"+src+",maildir:"+filepath.Join(dir, "dry")+"\n", "--dry-run")
	if code != 0 || strings.Contains(out+errOut, "complete") || !strings.Contains(out, "1/1 checked") ||
		!strings.Contains(out, "WOULD COPY") || !strings.Contains(errOut, ": checked: would copy 1, skip 0\n") {
		t.Errorf("dry run: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
