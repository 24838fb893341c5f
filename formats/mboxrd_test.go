package formats

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/mailferry/mailferry/formats/corpus"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// trickyBodies are byte strings that stress the framing.
var trickyBodies = []string{
	"",
	"\n",
	"\r",
	"\r\n",
	"\n\n",
	"x",
	"no final newline",
	"ends in CR\r",
	"ends in CRLF\r\n",
	"ends in two LF\n\n",
	"From the start\n",
	"From ",
	"From",
	">From ",
	">>From x\n",
	">>>>>From \n>From \nFrom \n",
	"a\nFrom b\n>From c\n>>From d\n>>>From e\n",
	"a\r\nFrom b\r\n>From c\r\n\r\n",
	"Subject: x\n\nbody\nFrom someone Mon Jan  1 00:00:00 2001\nmore\n",
	"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n",
	"nul\x00byte\n\x00",
	"\x00",
	">",
	">>>",
	"\n>",
	"\nFrom",
	"\nFrom ",
	"From x\r",
	"mixed\r\nline\nends\rhere",
	"\xef\xbb\xbfFrom bom\n",
	"line\n>From\n>From-not\nFrom-not\nfrom lower\n",
	"Content-Length: 3\n\nmuch longer than three\n",
}

func encodeOne(t testing.TB, from string, date time.Time, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := WriteMboxrdMessage(&buf, from, date, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("WriteMboxrdMessage: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteMboxrdMessage n = %d, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
}

type decoded struct {
	from   string
	date   time.Time
	offset int64
	end    int64
	body   []byte
}

func decodeAll(t testing.TB, r io.Reader) ([]decoded, []MboxWarning) {
	t.Helper()
	mr := NewMboxReader(r)
	var out []decoded
	for {
		e, err := mr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		b, err := io.ReadAll(e.Body)
		if err != nil {
			t.Fatalf("reading body %d: %v", e.Index, err)
		}
		if e.Size() != int64(len(b)) {
			t.Fatalf("entry %d Size %d, read %d", e.Index, e.Size(), len(b))
		}
		out = append(out, decoded{e.From, e.Date, e.Offset, e.End(), b})
	}
	return out, mr.Warnings
}

func TestMboxrdRoundTrip(t *testing.T) {
	date := time.Date(2024, 2, 29, 13, 14, 15, 0, time.FixedZone("X", 3600))
	var file bytes.Buffer
	var offsets []int64
	for _, b := range trickyBodies {
		offsets = append(offsets, int64(file.Len()))
		file.Write(encodeOne(t, "a@b.example", date, []byte(b)))
	}
	got, warns := decodeAll(t, iotest.OneByteReader(bytes.NewReader(file.Bytes())))
	for _, w := range warns {
		if !strings.Contains(w.Reason, "Content-Length") {
			t.Errorf("unexpected warning on our own file: %v", w)
		}
	}
	if len(got) != len(trickyBodies) {
		t.Fatalf("decoded %d messages, want %d", len(got), len(trickyBodies))
	}
	for i, g := range got {
		if string(g.body) != trickyBodies[i] {
			t.Errorf("message %d: got %q want %q", i, g.body, trickyBodies[i])
		}
		if g.from != "a@b.example" || !g.date.Equal(date) {
			t.Errorf("message %d: from %q date %v", i, g.from, g.date)
		}
		if g.offset != offsets[i] {
			t.Errorf("message %d: offset %d want %d", i, g.offset, offsets[i])
		}
		wantEnd := int64(file.Len())
		if i+1 < len(offsets) {
			wantEnd = offsets[i+1]
		}
		if g.end != wantEnd {
			t.Errorf("message %d: end %d want %d", i, g.end, wantEnd)
		}
	}
}

func TestMboxrdEncoding(t *testing.T) {
	date := time.Date(2001, 1, 2, 3, 4, 5, 0, time.UTC)
	const fl = "From MAILER-DAEMON Tue Jan  2 03:04:05 2001 mailferry:h=0,"
	cases := []struct{ body, want string }{
		{"", fl + "t=1\n\n\n"},
		{"abc", fl + "t=1\nabc\n\n"},
		{"abc\n", fl + "t=0\nabc\n\n"},
		{"abc\r\n", fl + "t=0\nabc\r\n\n"},
		{"a\r\nbc", fl + "t=2\na\r\nbc\r\n\n"},
		{"a\r\nbc\r", fl + "t=1\na\r\nbc\r\n\n"},
		{"From x\n>From y\nFromage\n >From z", fl + "t=1\n>From x\n>>From y\nFromage\n >From z\n\n"},
	}
	for _, c := range cases {
		got := encodeOne(t, "", date, []byte(c.body))
		if string(got) != c.want {
			t.Errorf("encode %q:\n got %q\nwant %q", c.body, got, c.want)
		}
	}
	// The sender is made safe, the date is UTC, a zero date stays zero.
	got := encodeOne(t, "a b\r\nc", time.Time{}, nil)
	if want := "From a_b__c Mon Jan  1 00:00:00 0001 mailferry:h=0,t=1\n\n\n"; string(got) != want {
		t.Errorf("got %q want %q", got, want)
	}
	d, _ := decodeAll(t, bytes.NewReader(got))
	if len(d) != 1 || !d[0].date.IsZero() || d[0].from != "a_b__c" {
		t.Errorf("zero date round trip: %+v", d)
	}
}

// A line of more than the buffer size, and a '>' run longer than the buffer
// followed by "From ", stream correctly.
func TestMboxrdLongLines(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 3*mboxBufSize+7)
	gts := bytes.Repeat([]byte(">"), 2*mboxBufSize+3)
	bodies := [][]byte{
		long,
		append(append(append([]byte{}, gts...), "From here\n"...), long...),
		append(append([]byte("a\n"), gts...), "Fro"...),
		append([]byte("From "), long...),
	}
	var file bytes.Buffer
	for _, b := range bodies {
		file.Write(encodeOne(t, "x@y", time.Unix(0, 0), b))
	}
	got, _ := decodeAll(t, &file)
	if len(got) != len(bodies) {
		t.Fatalf("got %d messages want %d", len(got), len(bodies))
	}
	for i := range bodies {
		if !bytes.Equal(got[i].body, bodies[i]) {
			t.Errorf("message %d differs (len %d vs %d)", i, len(got[i].body), len(bodies[i]))
		}
	}
}

func TestMboxReaderPartialRead(t *testing.T) {
	var file bytes.Buffer
	for _, b := range []string{"first\nbody\n", "second\n", "third"} {
		file.Write(encodeOne(t, "", time.Unix(1e9, 0), []byte(b)))
	}
	mr := NewMboxReader(&file)
	var bodies []string
	for i := 0; ; i++ {
		e, err := mr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			p := make([]byte, 3)
			n, _ := e.Body.Read(p)
			bodies = append(bodies, string(p[:n]))
			continue // the rest is skipped by Next
		}
		b, _ := io.ReadAll(e.Body)
		bodies = append(bodies, string(b))
	}
	if strings.Join(bodies, "|") != "fir|second\n|third" {
		t.Errorf("got %q", bodies)
	}
	if _, err := mr.Next(); err != io.EOF {
		t.Errorf("Next after EOF: %v", err)
	}
}

func TestMboxReaderForeign(t *testing.T) {
	type want struct {
		bodies []string
		froms  []string
		warns  []string // substrings, in order
	}
	cases := []struct {
		name string
		in   string
		want want
	}{
		{"empty", "", want{}},
		{"bom", "\xef\xbb\xbfFrom - \nA: b\n\nbody\n\nFrom - \nA: c\n\nx\n",
			want{[]string{"A: b\n\nbody\n", "A: c\n\nx"}, []string{"-", "-"}, []string{"byte-order mark"}}},
		{"blank preamble", "\n\r\nFrom x@y Mon Jan  1 00:00:00 2001\nA: b\n",
			want{[]string{"A: b"}, []string{"x@y"}, []string{"2 blank line(s)"}}},
		{"crlf", "From a@b Mon Jan  1 00:00:00 2001\r\nA: b\r\n\r\nx\r\n\r\nFrom a@b Mon Jan  1 00:00:00 2001\r\nA: c\r\n\r\ny\r\n\r\n",
			want{[]string{"A: b\r\n\r\nx\r\n", "A: c\r\n\r\ny\r\n"}, []string{"a@b", "a@b"}, nil}},
		{"gmail", "From 1844347792267117879@xxx\nA: b\n\nx\n\nFrom 1844347839636459560@xxx\nA: c\n\ny\n",
			want{[]string{"A: b\n\nx\n", "A: c\n\ny"}, []string{"1844347792267117879@xxx", "1844347839636459560@xxx"}, nil}},
		{"pipermail", "From joe at example.com  Tue Jul 10 11:29:44 2012\nA: b\n\nx\n",
			want{[]string{"A: b\n\nx"}, []string{"joe at example.com"}, nil}},
		{"mboxo unescaped", "From - \nA: b\n\nFrom Russia with love\n\nFrom - \nA: c\n\nFrom Russia with love\nYear: 1963\n",
			want{[]string{"A: b\n\nFrom Russia with love\n", "A: c\n\nFrom Russia with love\nYear: 1963"}, []string{"-", "-"},
				[]string{"message 0 at offset 14: unescaped line \"From Russia with love\" (mboxo)", "message 1 at offset 51: unescaped line \"From Russia with love\" followed by header-like line \"Year: 1963\""}}},
		{"weak separator in body", "From - \nA: b\n\nsee\nFrom x@y\nthanks\n",
			want{[]string{"A: b\n\nsee", "thanks"}, []string{"-", "x@y"}, []string{"message 1 at offset 18: From_ line \"From x@y\" without a date"}}},
		{"content-length", "From - \nContent-Length: 3\n\nabcdef\n\nFrom - \nContent-Length: 5\n\nabcd\n\n",
			want{[]string{"Content-Length: 3\n\nabcdef\n", "Content-Length: 5\n\nabcd\n"}, []string{"-", "-"},
				[]string{"message 0 at offset 0: Content-Length 3 disagrees with the From_ framing (body is 7 bytes)"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, warns := decodeAll(t, strings.NewReader(c.in))
			var bodies, froms []string
			for _, g := range got {
				bodies = append(bodies, string(g.body))
				froms = append(froms, g.from)
			}
			if strings.Join(bodies, "\x00") != strings.Join(c.want.bodies, "\x00") {
				t.Errorf("bodies %q want %q", bodies, c.want.bodies)
			}
			if strings.Join(froms, "\x00") != strings.Join(c.want.froms, "\x00") {
				t.Errorf("froms %q want %q", froms, c.want.froms)
			}
			if len(warns) != len(c.want.warns) {
				t.Errorf("warnings %v want %q", warns, c.want.warns)
				return
			}
			for i, w := range warns {
				if !strings.Contains(w.String(), c.want.warns[i]) {
					t.Errorf("warning %q does not contain %q", w.String(), c.want.warns[i])
				}
			}
		})
	}
}

func TestMboxReaderIgnoreContentLength(t *testing.T) {
	in := "From - \nContent-Length: 3\n\nabcdef\n\n"
	mr := NewMboxReader(strings.NewReader(in))
	mr.IgnoreContentLength = true
	for {
		e, err := mr.Next()
		if err != nil {
			break
		}
		io.Copy(io.Discard, e.Body)
	}
	if len(mr.Warnings) != 0 {
		t.Errorf("warnings: %v", mr.Warnings)
	}
}

func TestMboxReaderNotMbox(t *testing.T) {
	mr := NewMboxReader(strings.NewReader("Subject: hi\n\nbody\n"))
	if _, err := mr.Next(); !errors.Is(err, ErrNotMbox) {
		t.Errorf("got %v, want ErrNotMbox", err)
	}
}

func TestParseFromLine(t *testing.T) {
	cases := []struct {
		line string
		from string
		date string // RFC 3339, "" for zero
		kind fromLineKind
	}{
		{"From MAILER-DAEMON Fri Jul  8 12:08:34 2011", "MAILER-DAEMON", "2011-07-08T12:08:34Z", fromLineDated},
		{"From magick@x.com Wed Feb  9 22:02 MET 2000", "magick@x.com", "2000-02-09T22:02:00Z", fromLineDated},
		{"From markov Sun Aug  8 10:04:17 1999", "markov", "1999-08-08T10:04:17Z", fromLineDated},
		{"From news@gmane.org Tue Mar 04 03:33:20 2003", "news@gmane.org", "2003-03-04T03:33:20Z", fromLineDated},
		{"From - Mon Jun  3 12:50:27 1996", "-", "1996-06-03T12:50:27Z", fromLineDated},
		{"From a@b Mon Jun  3 12:50:27 1996 +0200", "a@b", "1996-06-03T10:50:27Z", fromLineDated},
		{"From a@b Mon Jun  3 sometime", "a@b", "", fromLineNoDate},
		{"From - ", "-", "", weakFromLine},
		{"From 1844347792267117879@xxx", "1844347792267117879@xxx", "", weakFromLine},
		{"From Russia with love", "Russia with love", "", notFromLine},
		{"From here on, Mon Jan is over", "here on,", "", fromLineNoDate},
		{"From ", "", "", notFromLine},
	}
	for _, c := range cases {
		from, date, kind, _ := parseFromLine([]byte(c.line))
		if from != c.from || kind != c.kind {
			t.Errorf("%q: from %q kind %d, want %q %d", c.line, from, kind, c.from, c.kind)
		}
		gotDate := ""
		if !date.IsZero() {
			gotDate = date.UTC().Format(time.RFC3339)
		}
		if gotDate != c.date {
			t.Errorf("%q: date %q want %q", c.line, gotDate, c.date)
		}
	}
}

// The real mbox files of the shared corpus are in its mbox-dev directory
// (see the corpus's PROVENANCE.md).

// corpusMbox lists, for each real mbox file, the message count
// PROVENANCE.md gives and whether it calls the file ambiguous (NOT split):
// those must give at least one warning naming a message. warnings is the
// exact number of warnings expected (-1: at least one).
var corpusMbox = []struct {
	name      string
	count     int
	ambiguous bool
	warnLike  string
	warnings  int
}{
	{"hyperkitty__non-ascii-headers.txt.mbox", 6, false, "", 0},
	{"mailbox__t--folders--mbox.src.mbox", 45, false, "", 0},
	// The CRLF twin, with Content-Length headers recomputed for CRLF.
	{"mailbox__t--folders--mbox.win.mbox", 45, false, "", 0},
	{"mime4j__mbox--src--test--resources--test-1--mbox.rlug.mbox", 5, false, "", 0},
	{"mimekit__mbox--content-length.mbox.txt.mbox", 29, true, "Content-Length", -1},
	{"mimekit__mbox--issue1189.mbox.txt.mbox", 4, false, "", 0},
	{"mimekit__mbox--simple.mbox.txt.mbox", 3, false, "", 0},
	{"mimekit__mbox--unmunged.mbox.txt.mbox", 2, true, "followed by header-like line", -1},
}

func TestMboxReaderCorpus(t *testing.T) {
	corpusMboxDir := corpus.Require(t, "mbox-dev")
	for _, c := range corpusMbox {
		t.Run(c.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(corpusMboxDir, c.name))
			if err != nil {
				t.Fatal(err)
			}
			got, warns := decodeAll(t, bytes.NewReader(raw))
			if len(got) != c.count {
				t.Errorf("%d messages, PROVENANCE.md says %d", len(got), c.count)
			}
			for _, w := range warns {
				t.Logf("warning: %v", w)
			}
			if c.warnLike != "" {
				found := false
				for _, w := range warns {
					if strings.Contains(w.Reason, c.warnLike) && w.Index >= 0 && w.Index < len(got) {
						found = true
					}
				}
				if !found {
					t.Errorf("gave no %q warning naming a message", c.warnLike)
				}
			}
			if c.ambiguous && len(warns) == 0 {
				t.Errorf("PROVENANCE.md calls this file ambiguous but it gave no warning")
			}
			if c.warnings >= 0 && len(warns) != c.warnings {
				t.Errorf("%d warnings, want %d", len(warns), c.warnings)
			}
			// The raw bytes between From_ lines are the file, in order.
			var pos int64
			for i, g := range got {
				if g.offset < pos || g.end < g.offset || g.end > int64(len(raw)) {
					t.Fatalf("message %d: offset %d end %d after %d", i, g.offset, g.end, pos)
				}
				pos = g.end
			}
			if pos != int64(len(raw)) {
				t.Errorf("messages end at %d, file is %d bytes", pos, len(raw))
			}
			// Split files: each dev/ .eml is the raw message from its
			// From_ line to the next one.
			base := strings.TrimSuffix(c.name, ".mbox")
			for i, g := range got {
				eml := filepath.Join(filepath.Dir(corpusMboxDir), "dev", fmt.Sprintf("%s--msg%03d.eml", base, i+1))
				want, err := os.ReadFile(eml)
				if err != nil {
					continue
				}
				if !bytes.Equal(raw[g.offset:g.end], want) {
					t.Errorf("message %d: raw bytes differ from %s", i, eml)
				}
				// The body is the .eml without its From_ line and
				// without the framing's final newline.
				nl := bytes.IndexByte(want, '\n')
				wantBody := bytes.TrimSuffix(want[nl+1:], []byte("\n"))
				if !bytes.Equal(g.body, wantBody) {
					t.Errorf("message %d: body differs from %s", i, eml)
				}
			}
		})
	}
	// The CRLF twin gives the same messages with CRLF line endings.
	src, _ := os.ReadFile(filepath.Join(corpusMboxDir, "mailbox__t--folders--mbox.src.mbox"))
	win, _ := os.ReadFile(filepath.Join(corpusMboxDir, "mailbox__t--folders--mbox.win.mbox"))
	a, _ := decodeAll(t, bytes.NewReader(src))
	b, _ := decodeAll(t, bytes.NewReader(win))
	if len(a) != len(b) {
		t.Fatalf("src %d messages, win %d", len(a), len(b))
	}
	// Its Content-Length headers were recomputed: leave them out.
	cl := regexp.MustCompile(`(?m)^Content-Length: [0-9]+`)
	for i := range a {
		want := bytes.ReplaceAll(cl.ReplaceAll(a[i].body, nil), []byte("\n"), []byte("\r\n"))
		if !bytes.Equal(cl.ReplaceAll(b[i].body, nil), want) {
			t.Errorf("message %d of mbox.win is not the CRLF form of mbox.src's", i)
		}
		if !a[i].date.Equal(b[i].date) || a[i].from != b[i].from {
			t.Errorf("message %d: From_ lines differ", i)
		}
	}
}

func FuzzMboxrdRoundTrip(f *testing.F) {
	for i, b := range trickyBodies {
		f.Add([]byte(b), []byte(trickyBodies[(i+1)%len(trickyBodies)]), int64(i)*1e8, "a@b")
	}
	f.Add([]byte("From x\n\x00\r"), []byte(">From "), int64(-1e12), "")
	f.Add([]byte("0"), []byte("0"), int64(1700000000), "\u00a0") // a Unicode space as sender
	f.Add([]byte("\n>>From \r\n"), []byte("From \nFrom -\n"), int64(253402300800), "x y\r\n")
	f.Fuzz(func(t *testing.T, a, b []byte, sec int64, from string) {
		date := time.Unix(sec, 0)
		var file bytes.Buffer
		file.Write(encodeOne(t, from, date, a))
		file.Write(encodeOne(t, from, date, b))
		got, warns := decodeAll(t, bytes.NewReader(file.Bytes()))
		if len(got) != 2 {
			t.Fatalf("decoded %d messages, want 2", len(got))
		}
		if !bytes.Equal(got[0].body, a) || !bytes.Equal(got[1].body, b) {
			t.Fatalf("round trip differs:\n%q -> %q\n%q -> %q", a, got[0].body, b, got[1].body)
		}
		want := date.UTC()
		if want.Year() < 1 || want.Year() > 9999 {
			want = time.Time{}
		}
		for _, g := range got {
			if !g.date.Equal(want) {
				t.Fatalf("date %v, want %v", g.date, want)
			}
			if g.from != MboxSender(from) {
				t.Fatalf("from %q, want %q", g.from, MboxSender(from))
			}
		}
		for _, w := range warns {
			if !strings.Contains(w.Reason, "Content-Length") {
				t.Fatalf("unexpected warning on our own framing: %v", w)
			}
		}
	})
}

// FuzzMboxReader reads arbitrary input: no panic, and the messages it finds
// tile the input from the first From_ line to the end.
func FuzzMboxReader(f *testing.F) {
	for _, b := range trickyBodies {
		f.Add([]byte(b))
	}
	f.Add([]byte("\xef\xbb\xbfFrom - \nA: b\n\nFrom Russia\nYear: 1\n\nFrom x@y\nz"))
	f.Add([]byte("From a Mon Jan  1 00:00:00 2001\r\nContent-Length: 1\r\n\r\nab\r\n\r\nFrom -\n>From \n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		mr := NewMboxReader(bytes.NewReader(in))
		var prevEnd int64 = -1
		for {
			e, err := mr.Next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrNotMbox) {
					t.Fatalf("Next: %v", err)
				}
				break
			}
			n, err := io.Copy(io.Discard, e.Body)
			if err != nil || n != e.Size() {
				t.Fatalf("body: %d bytes, Size %d, %v", n, e.Size(), err)
			}
			if prevEnd >= 0 && e.Offset != prevEnd {
				t.Fatalf("message %d starts at %d, previous ended at %d", e.Index, e.Offset, prevEnd)
			}
			if e.End() < e.Offset || e.End() > int64(len(in)) || !bytes.HasPrefix(in[e.Offset:], fromPrefix) {
				t.Fatalf("message %d: offset %d end %d", e.Index, e.Offset, e.End())
			}
			prevEnd = e.End()
		}
		if prevEnd >= 0 && prevEnd != int64(len(in)) {
			t.Fatalf("messages end at %d of %d", prevEnd, len(in))
		}
	})
}

// Issue 12 item 4: every From_ line after the first must follow a blank
// line (formail, mblaze and Python's stop rule expect it), also after a
// message that does not end in a newline; our reader still gives back the
// exact bytes.
func TestMboxrdBlankLineBeforeEveryFrom(t *testing.T) {
	date := time.Date(2024, 2, 29, 13, 14, 15, 0, time.UTC)
	var file bytes.Buffer
	for _, b := range trickyBodies {
		file.Write(encodeOne(t, "a@b.example", date, []byte(b)))
	}
	lines := bytes.SplitAfter(file.Bytes(), []byte("\n"))
	froms := 0
	for i, l := range lines {
		if !bytes.HasPrefix(l, []byte("From ")) {
			continue
		}
		froms++
		if i > 0 && string(lines[i-1]) != "\n" {
			t.Errorf("From_ line %d (%q) follows %q, not a blank line", froms, l, lines[i-1])
		}
	}
	if froms != len(trickyBodies) {
		t.Errorf("%d From_ lines, want %d", froms, len(trickyBodies))
	}
	if !bytes.HasSuffix(file.Bytes(), []byte("\n\n")) {
		t.Errorf("file does not end in a blank line")
	}
	got, _ := decodeAll(t, bytes.NewReader(file.Bytes()))
	if len(got) != len(trickyBodies) {
		t.Fatalf("%d messages read back, want %d", len(got), len(trickyBodies))
	}
	for i, g := range got {
		if string(g.body) != trickyBodies[i] {
			t.Errorf("message %d: %q, want %q", i, g.body, trickyBodies[i])
		}
	}
}

// Files written before the mailferry token (no blank line after a message
// without a final newline) are still read exactly, also mixed with new
// messages in one file (a rerun appending to an old archive).
func TestMboxrdReadsOldFraming(t *testing.T) {
	old := "From a@b Thu Jan  1 00:00:00 1970\nabc\n" + // "abc"
		"From a@b Thu Jan  1 00:00:00 1970\nabc\n\n" + // "abc\n"
		"From a@b Thu Jan  1 00:00:00 1970\n>From x\r\n\n" // ">From x" unescaped, CRLF kept
	file := old + string(encodeOne(t, "a@b", time.Unix(0, 0), []byte("new"))) +
		"From a@b Thu Jan  1 00:00:00 1970\nlast\n"
	got, warns := decodeAll(t, strings.NewReader(file))
	want := []string{"abc", "abc\n", "From x\r\n", "new", "last"}
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i].body) != want[i] {
			t.Errorf("message %d: %q, want %q", i, got[i].body, want[i])
		}
	}
	if len(warns) > 0 {
		t.Errorf("warnings: %v", warns)
	}
}

// Status lines are written after the From_ line, taken away on reading and
// handed back in MboxEntry.Status; the date survives the token.
func TestMboxStatusLinesRoundTrip(t *testing.T) {
	date := time.Date(2024, 2, 29, 13, 14, 15, 0, time.UTC)
	st := MboxStatusLines([]string{FlagSeen, FlagFlagged, FlagAnswered, "Work", "$Label1", "bad kw", "\\Recent"})
	if want := "Status: RO\nX-Status: AF\nX-Keywords: Work $Label1\n"; string(st) != want {
		t.Fatalf("status lines %q, want %q", st, want)
	}
	if got := string(MboxStatusLines(nil)); got != "Status: O\n" {
		t.Errorf("no flags: %q", got)
	}
	var buf memWriterAt
	var file []byte
	for _, b := range trickyBodies {
		buf = buf[:0]
		if _, err := WriteMboxMessage(&buf, "x@y", date, st, strings.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		file = append(file, buf...)
	}
	mr := NewMboxReader(bytes.NewReader(file))
	for i := 0; ; i++ {
		e, err := mr.Next()
		if err == io.EOF {
			if i != len(trickyBodies) {
				t.Fatalf("%d messages, want %d", i, len(trickyBodies))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(e.Body)
		wantSt := st
		if !StatusLinesFit([]byte(trickyBodies[i])) {
			wantSt = nil
		}
		if string(b) != trickyBodies[i] || string(e.Status) != string(wantSt) || !e.Date.Equal(date) {
			t.Errorf("message %d: %q status %q date %v", i, b, e.Status, e.Date)
		}
		if want := int64(len(wantSt)); e.Added < want || e.Added > want+2 {
			t.Errorf("message %d: Added %d", i, e.Added)
		}
	}
	// A message starting with a continuation line gets no status lines
	// (another reader would join it to the last one).
	buf = buf[:0]
	if _, err := WriteMboxMessage(&buf, "", date, st, strings.NewReader(" folded\nSubject: x\n\nb\n")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf, []byte("mailferry:h=0,t=0\n folded\n")) {
		t.Errorf("status lines before a continuation line: %q", buf)
	}
	// Nor before a first line that is no header field (a saved mbox's
	// escaped From_ line): other readers would end the header there.
	buf = buf[:0]
	if _, err := WriteMboxMessage(&buf, "", date, st, strings.NewReader("From a Mon Jan  1 00:00:00 2001\nSubject: x\n\nb\n")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf, []byte("mailferry:h=0,t=0\n>From a")) {
		t.Errorf("status lines before a From_ line: %q", buf)
	}
	if _, err := WriteMboxMessage(&buf, "", date, []byte("Subject: no\n"), strings.NewReader("x")); err == nil {
		t.Errorf("status lines other than Status/X-Status/X-Keywords accepted")
	}
}

// readBodies reads every message of in with mr's options set by opt.
func readBodies(t *testing.T, in string, opt func(*MboxReader)) ([]string, []MboxWarning) {
	t.Helper()
	mr := NewMboxReader(strings.NewReader(in))
	opt(mr)
	var out []string
	for {
		e, err := mr.Next()
		if err == io.EOF {
			return out, mr.Warnings
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(e.Body)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
}

// Issue 12 item 11: a From_ line inside the body a plausible Content-Length
// gives is part of that body (mutt reads 2 messages here, and so do we
// now, with a warning); an implausible Content-Length changes nothing.
func TestMboxReaderHonoursPlausibleContentLength(t *testing.T) {
	body := "quoted below:\n\nFrom bob@example.com Tue Feb  2 00:00:00 2021\nSubject: inner\n\nhi\n"
	in := "From a@example.com Mon Jan  1 00:00:00 2001\nSubject: one\nContent-Length: " + strconv.Itoa(len(body)) + "\n\n" + body +
		"\nFrom c@example.com Wed Mar  3 00:00:00 2021\nSubject: two\n\nbye\n\n"
	got, warns := readBodies(t, in, func(*MboxReader) {})
	want := []string{"Subject: one\nContent-Length: " + strconv.Itoa(len(body)) + "\n\n" + body, "Subject: two\n\nbye\n"}
	if !slices.Equal(got, want) {
		t.Errorf("got %d messages %q, want %q", len(got), got, want)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].Reason, "inside the body its Content-Length gives") {
		t.Errorf("warnings %v", warns)
	}
	// Content-Length one byte short: not plausible, the From_ line splits.
	bad := strings.Replace(in, "Content-Length: "+strconv.Itoa(len(body)), "Content-Length: "+strconv.Itoa(len(body)-1), 1)
	if got, _ := readBodies(t, bad, func(*MboxReader) {}); len(got) != 3 {
		t.Errorf("implausible Content-Length: %d messages, want 3", len(got))
	}
	if got, _ := readBodies(t, in, func(r *MboxReader) { r.IgnoreContentLength = true }); len(got) != 3 {
		t.Errorf("IgnoreContentLength: %d messages, want 3", len(got))
	}
}

// Issue 12 item 12: another program's mboxo file keeps a ">From " line's
// '>' (Mboxo), and its last message, not followed by a blank line, keeps
// its final newline (BlankLineOnly); a message followed by a blank line
// loses only that.
func TestMboxReaderForeignFraming(t *testing.T) {
	in := "From a Mon Jan  1 00:00:00 2001\nSubject: one\n\n>From the start\n\nFrom b Mon Jan  1 00:00:00 2001\nSubject: two\n\nlast line\n"
	got, _ := readBodies(t, in, func(r *MboxReader) { r.Mboxo, r.BlankLineOnly = true, true })
	want := []string{"Subject: one\n\n>From the start\n", "Subject: two\n\nlast line\n"}
	if !slices.Equal(got, want) {
		t.Errorf("mboxo, blank line only: got %q, want %q", got, want)
	}
	got, _ = readBodies(t, in, func(*MboxReader) {})
	want = []string{"Subject: one\n\nFrom the start\n", "Subject: two\n\nlast line"}
	if !slices.Equal(got, want) {
		t.Errorf("mboxrd (our framing): got %q, want %q", got, want)
	}
	crlf := strings.ReplaceAll(in, "\n", "\r\n")
	got, _ = readBodies(t, crlf, func(r *MboxReader) { r.Mboxo, r.BlankLineOnly = true, true })
	want = []string{"Subject: one\r\n\r\n>From the start\r\n", "Subject: two\r\n\r\nlast line\r\n"}
	if !slices.Equal(got, want) {
		t.Errorf("CRLF: got %q, want %q", got, want)
	}
}

// The X-IMAPbase line (Dovecot's keyword declaration on a file's first
// message) is one of the status lines: written before them, taken away on
// reading like them, and invalid keywords are left out as they are from
// X-Keywords.
func TestMboxBaseLineIsAStatusLine(t *testing.T) {
	base := MboxBaseLine(1700000000, []string{"Work", `\Seen`, "$Label1", "Work", "bad kw"})
	if want := "X-IMAPbase: 1700000000 0000000000 Work $Label1\n"; string(base) != want {
		t.Fatalf("base line %q, want %q", base, want)
	}
	if got := string(MboxBaseLine(0, nil)); got != "X-IMAPbase: 1 0000000000\n" {
		t.Errorf("UIDVALIDITY 0 (Dovecot takes it for broken): %q", got)
	}
	st := append(base, MboxStatusLines([]string{"Work"})...)
	var buf memWriterAt
	body := "Subject: x\n\nbody\n"
	if _, err := WriteMboxMessage(&buf, "x@y", time.Now(), st, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	e, err := NewMboxReader(bytes.NewReader(buf)).Next()
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(e.Body); string(b) != body || string(e.Status) != string(st) {
		t.Errorf("read back %q with status %q, want %q and %q", b, e.Status, body, st)
	}
}
