package formats

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailferry/mailferry/formats/corpus"
)

// The key and the header lookup as they were before they allocated less
// (keys are kept in state files and archive manifests: the same message
// must keep the same key, KeyVersion says so). Kept here, unchanged, to
// compare the new ones with.

func refKeyOfHeader(h []byte) Key {
	fields := refNormalFields(h)
	var want [4][]byte
	var seen [4]bool
	for _, f := range fields {
		colon := bytes.IndexByte(f, ':')
		if colon <= 0 {
			continue
		}
		idx := -1
		switch toLowerASCII(string(f[:colon])) {
		case "message-id":
			idx = 0
		case "date":
			idx = 1
		case "from":
			idx = 2
		case "subject":
			idx = 3
		}
		if idx >= 0 && !seen[idx] {
			seen[idx] = true
			want[idx] = f[colon+1:]
		}
	}
	mid := messageIDOf(want[0])
	var buf bytes.Buffer
	if len(mid) == 0 {
		buf.WriteString("mailferry-key-v2-header\x00")
		buf.Write(bytes.Join(fields, []byte("\n")))
		return sha256.Sum256(buf.Bytes())
	}
	buf.WriteString("mailferry-key-v2")
	buf.WriteByte(0)
	buf.Write(mid)
	for _, v := range want[1:] {
		buf.WriteByte(0)
		buf.Write(v)
	}
	return sha256.Sum256(buf.Bytes())
}

func refNormalFields(h []byte) [][]byte {
	var fields [][]byte
	var cur []byte
	lineStart := true
	flush := func() {
		if len(cur) > 0 {
			fields = append(fields, cur)
		}
		cur = nil
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '\n' || c == '\r' && (i+1 >= len(h) || h[i+1] != '\n'):
			lineStart = true
			continue
		case c == '\r':
			continue
		case c == ' ' || c == '\t':
			lineStart = false
			continue
		}
		if lineStart {
			flush()
			lineStart = false
		}
		if c == 0 || c >= 0x80 {
			c = 'X'
		}
		cur = append(cur, c)
	}
	flush()
	return fields
}

func refParseHeaderFields(h []byte, names ...string) [][]byte {
	out := make([][]byte, len(names))
	lines := refSplitLines(h)
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name := bytes.ToLower(bytes.TrimRight(line[:colon], " \t"))
		idx := -1
		for n, want := range names {
			if out[n] == nil && string(name) == want {
				idx = n
				break
			}
		}
		if idx < 0 {
			continue
		}
		val := append([]byte(nil), line[colon+1:]...)
		for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			val = append(val, ' ')
			val = append(val, bytes.TrimLeft(lines[i], " \t")...)
		}
		out[idx] = append([]byte{}, bytes.TrimSpace(val)...)
	}
	return out
}

func refSplitLines(h []byte) [][]byte {
	var lines [][]byte
	for len(h) > 0 {
		i := bytes.IndexByte(h, '\n')
		var line []byte
		if i < 0 {
			line, h = h, nil
		} else {
			line, h = h[:i], h[i+1:]
		}
		lines = append(lines, bytes.TrimSuffix(line, []byte("\r")))
	}
	return lines
}

// sameAsReference fails t where msg's key, normal fields or looked-up
// fields differ from the reference's.
func sameAsReference(t *testing.T, what string, msg []byte) {
	t.Helper()
	h := HeaderBlock(msg)
	if got, want := keyOfHeader(h), refKeyOfHeader(h); got != want {
		t.Fatalf("%s: key %s, before %s", what, got, want)
	}
	got, want := normalFields(h), refNormalFields(h)
	if len(got) != len(want) {
		t.Fatalf("%s: %d normal fields, before %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: normal field %d %q, before %q", what, i, got[i], want[i])
		}
	}
	names := []string{"message-id", "subject", "from", "k\u212a", "x-\u017fpam"}
	gotV, wantV := parseHeaderFields(h, names...), refParseHeaderFields(h, names...)
	for i := range names {
		if !bytes.Equal(gotV[i], wantV[i]) || (gotV[i] == nil) != (wantV[i] == nil) {
			t.Fatalf("%s: field %s %q, before %q", what, names[i], gotV[i], wantV[i])
		}
	}
}

// Every message of the shared corpus (real and broken mail) keeps its key
// and its header values.
func TestKeyAsBeforeOnTheCorpus(t *testing.T) {
	dir := corpus.Require(t, "dev")
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		msg, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sameAsReference(t, path, msg)
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("only %d messages in the corpus at %s", n, dir)
	}
	t.Logf("%d messages: keys and header values as before", n)
}

// Header blocks of any shape keep their key and their header values.
func FuzzKeyAsBefore(f *testing.F) {
	for _, s := range []string{
		"Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody",
		"Subject: one\r\n two\r\n\r\n",
		"\r\n\r\n", "A: 1\r", "a\rb\n c\r\r\nd:\t\n",
		"Subject: Caf\xc3\xa9 a b\r\n\tc\r\nMessage-ID: <x@y>",
		"K\xe2\x84\xaa: kelvin\nX-\xc5\xbfpam: long s\n \n\tmore\n",
		"Subject: \x00\xff\nX-A:1\n\nbody", "From: \n:\n :x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		sameAsReference(t, "fuzzed", msg)
	})
}
