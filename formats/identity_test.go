package formats

import (
	"bytes"
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

// FuzzIdentityKey: the key from a stream written in any chunks equals the
// key of the whole message, and nothing panics.
func FuzzIdentityKey(f *testing.F) {
	f.Add([]byte("Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody"), 3)
	f.Add([]byte("\r\n\r\n"), 1)
	f.Add([]byte("From x\nA: 1\n\nb"), 2)
	f.Add([]byte("A: 1\r"), 1)
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
	})
}
