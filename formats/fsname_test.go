package formats

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestEncodeFSComponent(t *testing.T) {
	tests := []struct{ in, want string }{
		{"INBOX", "INBOX"},
		{"Sent Messages", "Sent Messages"},
		{"Zürich", "Zürich"},
		{"日本語", "日本語"},
		{"", "%"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"../x", "%2E%2E%2Fx"},
		{"a/b", "a%2Fb"},
		{"a.b", "a%2Eb"},
		{"\x00", "%00"},
		{"tab\there", "tab%09here"},
		{"del\x7f", "del%7F"},
		{"c1\u0085", "c1%C2%85"},
		{"-rf", "%2Drf"},
		{"a-b-", "a-b-"},
		{".hidden", "%2Ehidden"},
		{"%", "%25"},
		{"50%", "50%25"},
		{"%2E", "%252E"},
		{"bad\xffutf8", "bad%FFutf8"},
		{"back\\slash:colon", "back\\slash:colon"},
	}
	for _, tt := range tests {
		got := EncodeFSComponent(tt.in)
		if got != tt.want {
			t.Errorf("EncodeFSComponent(%q) = %q, want %q", tt.in, got, tt.want)
		}
		checkSafe(t, tt.in, got)
		back, err := DecodeFSComponent(got)
		if err != nil || back != tt.in {
			t.Errorf("DecodeFSComponent(%q) = %q, %v; want %q", got, back, err, tt.in)
		}
	}
}

func TestDecodeFSComponentRejects(t *testing.T) {
	for _, s := range []string{
		"",  // never produced
		".", // raw forbidden bytes
		"..",
		"a.b",
		"a/b",
		"-rf",
		"a\x00",
		"%2",   // short escape
		"%zz",  // not hex
		"%2e",  // lowercase hex is not canonical
		"%41",  // 'A' needs no escape
		"a%2D", // '-' is escaped only in first position
		"%%",
		"a\xff", // raw invalid UTF-8
	} {
		if got, err := DecodeFSComponent(s); err == nil {
			t.Errorf("DecodeFSComponent(%q) = %q, want an error", s, got)
		}
	}
}

// checkSafe asserts the rules every encoded component obeys.
func checkSafe(t *testing.T, in, enc string) {
	t.Helper()
	switch {
	case enc == "" || enc == "." || enc == "..":
		t.Fatalf("EncodeFSComponent(%q) = %q: reserved name", in, enc)
	case enc[0] == '.' || enc[0] == '-':
		t.Fatalf("EncodeFSComponent(%q) = %q: leading '.' or '-'", in, enc)
	case strings.ContainsAny(enc, "./\x00"):
		t.Fatalf("EncodeFSComponent(%q) = %q: holds '.', '/' or NUL", in, enc)
	case !utf8.ValidString(enc):
		t.Fatalf("EncodeFSComponent(%q) = %q: not UTF-8", in, enc)
	}
	for _, r := range enc {
		if unicode.IsControl(r) {
			t.Fatalf("EncodeFSComponent(%q) = %q: control character %U", in, enc, r)
		}
	}
}

func FuzzFSComponent(f *testing.F) {
	for _, s := range []string{"", ".", "..", "../x", "a/b", "\x00", "-rf", ".hidden", "%", "Zürich", "%2E", "a\xffb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := EncodeFSComponent(s)
		checkSafe(t, s, enc)
		back, err := DecodeFSComponent(enc)
		if err != nil || back != s {
			t.Fatalf("round trip %q -> %q -> %q, %v", s, enc, back, err)
		}
		// Decoding arbitrary input: whatever decodes must encode back to
		// exactly the input (one directory name per folder component).
		if dec, err := DecodeFSComponent(s); err == nil && EncodeFSComponent(dec) != s {
			t.Fatalf("DecodeFSComponent(%q) = %q, which encodes to %q", s, dec, EncodeFSComponent(dec))
		}
	})
}
