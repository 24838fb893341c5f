package formats

import (
	"bytes"
	"strings"
	"testing"
)

func TestIdentityKey(t *testing.T) {
	base := "Message-ID: <a@b>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nFrom: A <a@b>\r\nSubject: hi\r\n\r\nbody\r\n"
	same := []string{
		// Line endings, folding and surrounding space do not matter.
		"Message-ID: <a@b>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nFrom: A <a@b>\nSubject: hi\n\nother body\n",
		"Subject: hi\r\nFrom: A <a@b>\r\nDate: Mon, 1 Jan 2024\r\n 10:00:00 +0000\r\nMessage-ID:   <a@b>  \r\n\r\n",
		"message-id: <a@b>\r\nDATE: Mon, 1 Jan 2024 10:00:00 +0000\r\nfrom: A <a@b>\r\nsubject: hi\r\nX-Other: changed\r\n\r\n",
	}
	differ := []string{
		"Message-ID: <a@c>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nFrom: A <a@b>\r\nSubject: hi\r\n\r\n",
		"Message-ID: <a@b>\r\nDate: Mon, 1 Jan 2024 10:00:01 +0000\r\nFrom: A <a@b>\r\nSubject: hi\r\n\r\n",
		"Message-ID: <a@b>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nFrom: B <a@b>\r\nSubject: hi\r\n\r\n",
		"Message-ID: <a@b>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nFrom: A <a@b>\r\nSubject: Re: hi\r\n\r\n",
	}
	k := IdentityKey([]byte(base))
	for _, s := range same {
		if IdentityKey([]byte(s)) != k {
			t.Errorf("want the same key for %q", s)
		}
	}
	for _, s := range differ {
		if IdentityKey([]byte(s)) == k {
			t.Errorf("want a different key for %q", s)
		}
	}
	// Without a Message-ID the whole header block counts, body excluded.
	a := IdentityKey([]byte("Subject: x\r\nX-A: 1\r\n\r\nbody one"))
	b := IdentityKey([]byte("Subject: x\nX-A: 1\n\nbody two"))
	c := IdentityKey([]byte("Subject: x\r\nX-A: 2\r\n\r\nbody one"))
	if a != b || a == c {
		t.Error("keys without Message-ID: header block with normalised line ends, nothing else")
	}
	if got, ok := ParseKey(k.String()); !ok || got != k {
		t.Error("ParseKey(String()) round trip")
	}
}

func TestHeaderBlockAndValue(t *testing.T) {
	cases := map[string]string{
		"A: 1\r\n\r\nbody":  "A: 1\r\n",
		"A: 1\n\nbody":      "A: 1\n",
		"A: 1\n\r\nbody":    "A: 1\n",
		"\r\nbody":          "",
		"no header end":     "no header end",
		"From x\nA: 1\n\nb": "From x\nA: 1\n",
	}
	for in, want := range cases {
		if got := string(HeaderBlock([]byte(in))); got != want {
			t.Errorf("HeaderBlock(%q) = %q, want %q", in, got, want)
		}
	}
	h := []byte("Subject: one\r\n two\r\nMessage-Id: <x@y>\r\n\r\nMessage-ID: <body@z>\r\n")
	if v := HeaderValue(h, "Message-ID"); v != "<x@y>" {
		t.Errorf("HeaderValue Message-ID = %q", v)
	}
	if v := HeaderValue(h, "subject"); v != "one two" {
		t.Errorf("HeaderValue Subject = %q", v)
	}
}

// TestIdentityKeyServerRewrites: what real servers do to the headers they
// store does not change the key (see Key: "What counts as the same message").
func TestIdentityKeyServerRewrites(t *testing.T) {
	withID := "Message-ID: <\xc3\xa9t\xc3\xa9@b>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n" +
		"From: J\xc3\xbcrgen M\xc3\xbcller <j@b>\r\nSubject: Caf\xc3\xa9 cr\xc3\xa8me \xe2\x82\xac5 and a\r\n  long\ttail\r\n" +
		"X-Enc: =?utf-8?q?Caf=C3=A9?=\r\n\r\nbody\r\n"
	noID := "Subject: Caf\xc3\xa9 \x00x\r\nFrom: A <a@b>\r\nX-Long: one two\r\n three\r\n\r\nbody"
	headerOnly := "Subject: no body\r\nFrom: A <a@b>"
	headerOnlyNoID := "Subject: no body\r\nX-A: 1"
	cases := []struct{ name, orig, stored string }{
		{"cyrus munge8bit", withID, cyrusMunge(withID)},
		{"cyrus munge8bit, no Message-ID", noID, cyrusMunge(noID)},
		{"dovecot NUL as 0x80", noID, strings.ReplaceAll(noID, "\x00", "\x80")},
		{"refolded", withID, strings.Replace(strings.Replace(withID, "Caf\xc3\xa9 cr", "Caf\xc3\xa9\r\n\tcr", 1), "and a\r\n  long\ttail", "and a long tail", 1)},
		{"refolded, no Message-ID", noID, strings.Replace(noID, "one two\r\n three", "one\r\n two three", 1)},
		{"fold inserted without a blank", withID, strings.Replace(withID, "<j@b>", "<j@\r\n b>", 1)},
		{"LF line ends", withID, strings.ReplaceAll(withID, "\r\n", "\n")},
		{"LF line ends, no Message-ID", noID, strings.ReplaceAll(noID, "\r\n", "\n")},
		{"courier final CRLF, header only", headerOnly, headerOnly + "\r\n"},
		{"courier final CRLF, header only, no Message-ID", headerOnlyNoID, headerOnlyNoID + "\r\n"},
		{"header only, empty line appended", headerOnlyNoID, headerOnlyNoID + "\r\n\r\n"},
		{"all at once", noID, cyrusMunge(strings.ReplaceAll(strings.Replace(noID, "one two\r\n three", "one two three", 1), "\r\n", "\n")) + "\r\n"},
		{"Received added", withID, "Received: from x by y; Mon, 1 Jan 2024 10:00:01 +0000\r\n" + withID},
	}
	for _, c := range cases {
		if IdentityKey([]byte(c.orig)) != IdentityKey([]byte(c.stored)) {
			t.Errorf("%s: key changed from %q to %q", c.name, c.orig, c.stored)
		}
	}
	// Still different: another Subject, another header line, another body
	// does not matter but another Message-ID does.
	differ := []struct{ a, b string }{
		{withID, strings.Replace(withID, "Subject: Caf", "Subject: Re: Caf", 1)},
		{withID, strings.Replace(withID, "<\xc3\xa9t\xc3\xa9@b>", "<\xc3\xa9t\xc3\xa9@c>", 1)},
		{noID, strings.Replace(noID, "X-Long: one", "X-Long: on", 1)},
		{noID, strings.Replace(noID, "\r\n\r\n", "\r\nX-Added: 1\r\n\r\n", 1)},
		{headerOnlyNoID, headerOnlyNoID + "\r\nX-B: 2"},
		{"Message-ID: <a@b>\r\nSubject: x\r\n\r\n", "Message-ID: <a@b>\r\nSubject: y\r\n\r\n"},
		// A field moved into a continuation line is another header.
		{"Subject: a\r\nX-A: 1\r\n\r\n", "Subject: a\r\n X-A: 1\r\n\r\n"},
	}
	for _, d := range differ {
		if IdentityKey([]byte(d.a)) == IdentityKey([]byte(d.b)) {
			t.Errorf("want different keys for %q and %q", d.a, d.b)
		}
	}
	if KeyVersion != 2 {
		t.Errorf("KeyVersion = %d: bump it together with the normal form, and these tests", KeyVersion)
	}
}

// cyrusMunge does what Cyrus (munge8bit: yes) does to a message it stores:
// every 8-bit byte of the header block becomes 'X'; the body is untouched.
func cyrusMunge(msg string) string {
	b := []byte(msg)
	h := HeaderBlock(b)
	for i := range h {
		if b[i] >= 0x80 {
			b[i] = 'X'
		}
	}
	return string(b)
}

// toCRLF turns every LF not preceded by CR into CRLF.
func toCRLF(b []byte) []byte {
	var out []byte
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// refold folds the header block the way a server may: at every blank that
// follows the first colon of a line (and is not the first byte of a line) it
// inserts a CRLF; where there is no blank after a colon it inserts CRLF SP
// after the colon; and it turns every HTAB into two spaces.
func refold(msg []byte) []byte {
	h := HeaderBlock(msg)
	var out []byte
	afterColon := false
	for i, c := range h {
		prevBreak := i == 0 || h[i-1] == '\n' || h[i-1] == '\r'
		if c == '\n' || c == '\r' {
			afterColon = false
		}
		switch {
		case (c == ' ' || c == '\t') && afterColon && !prevBreak:
			out = append(out, "\r\n  "...)
			continue
		case c == ':' && !afterColon && !prevBreak && i+1 < len(h) && h[i+1] != ' ' && h[i+1] != '\t' && h[i+1] != '\r' && h[i+1] != '\n':
			out = append(out, ":\r\n "...)
			afterColon = true
			continue
		case c == ':':
			afterColon = true
		}
		out = append(out, c)
	}
	return append(out, msg[len(h):]...)
}

// FuzzIdentityKey: the key from a stream written in any chunks equals the
// key of the whole message, nothing panics, and what servers do to stored
// headers (8-bit bytes as X, NUL as 0x80, a final CRLF, CRLF for LF,
// refolding) leaves the key as it was.
func FuzzIdentityKey(f *testing.F) {
	f.Add([]byte("Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody"), 3)
	f.Add([]byte("\r\n\r\n"), 1)
	f.Add([]byte("From x\nA: 1\n\nb"), 2)
	f.Add([]byte("A: 1\r"), 1)
	f.Add([]byte("Subject: Caf\xc3\xa9 a b\r\n\tc\r\nMessage-ID: <x@y>"), 4)
	f.Add([]byte("Subject: \x00\xff\nX-A:1\n\nbody"), 5)
	f.Fuzz(func(t *testing.T, msg []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		var w KeyWriter
		for rest := msg; len(rest) > 0; {
			n := min(chunk, len(rest))
			w.Write(rest[:n])
			rest = rest[n:]
		}
		if w.Key() != IdentityKey(msg) {
			t.Fatalf("streamed key differs for %q in chunks of %d", msg, chunk)
		}
		if !bytes.HasPrefix(msg, HeaderBlock(msg)) {
			t.Fatal("HeaderBlock is not a prefix")
		}
		k := IdentityKey(msg)
		// What servers do to stored mail keeps the key (see Key).
		if IdentityKey([]byte(cyrusMunge(string(msg)))) != k {
			t.Fatalf("8-bit header bytes as X changed the key of %q", msg)
		}
		if IdentityKey(bytes.ReplaceAll(msg, []byte{0}, []byte{0x80})) != k {
			t.Fatalf("NUL as 0x80 changed the key of %q", msg)
		}
		if IdentityKey(append(bytes.Clone(msg), "\r\n"...)) != k {
			t.Fatalf("a final CRLF changed the key of %q", msg)
		}
		if IdentityKey(toCRLF(msg)) != k {
			t.Fatalf("LF to CRLF changed the key of %q", msg)
		}
		if r := refold(msg); IdentityKey(r) != k {
			t.Fatalf("refolding changed the key of %q (refolded %q)", msg, r)
		}
	})
}

// A released KeyWriter's array serves the next message's, which gets its
// own key: nothing of the message before is left in it.
func TestKeyWriterRelease(t *testing.T) {
	long := "Message-ID: <first@x>\r\nSubject: " + strings.Repeat("a", 3000) + "\r\n\r\nbody one\r\n"
	short := "Subject: second\r\n\r\nbody two\r\n" // no Message-ID: the whole header counts
	for range 3 {
		for _, msg := range []string{long, short, long} {
			var w KeyWriter
			for rest := msg; len(rest) > 0; {
				n := min(7, len(rest))
				w.Write([]byte(rest[:n]))
				rest = rest[n:]
			}
			if got, want := w.Key(), IdentityKey([]byte(msg)); got != want {
				t.Fatalf("key of %.30q after a released writer: %s, want %s", msg, got, want)
			}
			if got := string(w.Header()); got != string(HeaderBlock([]byte(msg))) {
				t.Fatalf("header %.40q, want that of %.40q", got, msg)
			}
			w.Release()
			if w.buf != nil || w.done || w.Key() != IdentityKey(nil) {
				t.Fatal("a released writer is not empty")
			}
		}
	}
}

// keyOfHeader normalises into arrays it takes from a pool and gives back:
// headers of every size one after the other, each key as the reference
// implementation's, and no allocation a header but the hash's.
func TestKeyOfHeaderReusesItsArrays(t *testing.T) {
	headers := []string{
		"Message-ID: <a@x>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: " + strings.Repeat("s", 5000) + "\r\n",
		"Subject: no id\r\nFrom: a@b\r\n",
		"X-Many: 1\r\n" + strings.Repeat("X-L: v\r\n", 3000),
		"From: a\r\n lone\rcr\r\nSubject: \x80\x00 8-bit\r\n",
		"Message-ID: <b@x>\r\n",
		"Subject: " + strings.Repeat("big ", 40000) + "\r\n", // over normalBufKept: not kept
		"Subject: short\r\n",
	}
	for range 3 {
		for _, h := range headers {
			if got, want := keyOfHeader([]byte(h)), refKeyOfHeader([]byte(h)); got != want {
				t.Fatalf("key of %.40q: %s, want %s", h, got, want)
			}
		}
	}
	h := []byte(headers[0])
	if n := testing.AllocsPerRun(100, func() { keyOfHeader(h) }); n > 1 {
		t.Errorf("keyOfHeader allocates %.0f times a header, want at most 1 (the hash)", n)
	}
}
