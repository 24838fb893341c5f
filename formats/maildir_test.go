package formats

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewUniqueName(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	tests := []struct {
		host string
		size int64
		want string
	}{
		{"mx.example.org", 1234, `1700000000.M123456P42Rdeadbeef.mx.example.org,S=1234`},
		{"mx.example.org", 0, `1700000000.M123456P42Rdeadbeef.mx.example.org,S=0`},
		{"mx.example.org", -1, `1700000000.M123456P42Rdeadbeef.mx.example.org`},
		{"a/b:c", 5, `1700000000.M123456P42Rdeadbeef.a\057b\072c,S=5`},
		{"back\\slash\nnl", 5, `1700000000.M123456P42Rdeadbeef.back\134slash\012nl,S=5`},
		{"", 5, `1700000000.M123456P42Rdeadbeef.localhost,S=5`},
		{"del\x7f", 5, `1700000000.M123456P42Rdeadbeef.del\177,S=5`},
		{"h\xc3\xa9", 5, "1700000000.M123456P42Rdeadbeef.h\xc3\xa9,S=5"},
	}
	for _, tt := range tests {
		got := NewUniqueName(now, 42, 0xdeadbeef, tt.host, tt.size)
		if got != tt.want {
			t.Errorf("NewUniqueName(host %q, size %d) = %q, want %q", tt.host, tt.size, got, tt.want)
		}
		if strings.ContainsAny(got, "/:") {
			t.Errorf("NewUniqueName(host %q) = %q holds '/' or ':'", tt.host, got)
		}
		u, flags, ok := ParseMaildirName(got)
		if !ok || u != got || flags != nil {
			t.Errorf("ParseMaildirName(%q) = %q, %v, %v", got, u, flags, ok)
		}
	}
}

func TestParseMaildirName(t *testing.T) {
	tests := []struct {
		name   string
		unique string
		flags  []string
		ok     bool
	}{
		{"123.M1P2R3.host,S=10", "123.M1P2R3.host,S=10", nil, true},
		{"123.x:2,", "123.x", nil, true},
		{"123.x:2,S", "123.x", []string{FlagSeen}, true},
		{"123.x:2,DFPRST", "123.x", []string{FlagDraft, FlagFlagged, "$Forwarded", FlagAnswered, FlagSeen, FlagDeleted}, true},
		{"123.x:2,TSRPFD", "123.x", []string{FlagDraft, FlagFlagged, "$Forwarded", FlagAnswered, FlagSeen, FlagDeleted}, true},
		{"123.x:2,Sab", "123.x", []string{FlagSeen}, true},    // Dovecot keyword letters ignored
		{"123.x:2,SSZ", "123.x", []string{FlagSeen}, true},    // repeats, unknown capitals ignored
		{"123.x:1,S", "123.x", nil, true},                     // experimental info: no flags
		{"123.x:2,S:junk", "123.x", []string{FlagSeen}, true}, // only the first ':' splits
		{"", "", nil, false},
		{".hidden", "", nil, false},
		{":2,S", "", nil, false},
		{"a/b:2,S", "", nil, false},
		{"a\x00b", "", nil, false},
	}
	for _, tt := range tests {
		u, flags, ok := ParseMaildirName(tt.name)
		if u != tt.unique || !slices.Equal(flags, tt.flags) || ok != tt.ok {
			t.Errorf("ParseMaildirName(%q) = %q, %q, %v; want %q, %q, %v",
				tt.name, u, flags, ok, tt.unique, tt.flags, tt.ok)
		}
	}
}

func TestFormatMaildirName(t *testing.T) {
	tests := []struct {
		flags []string
		want  string
	}{
		{nil, "u:2,"},
		{[]string{FlagSeen}, "u:2,S"},
		{[]string{FlagSeen, FlagAnswered, FlagFlagged}, "u:2,FRS"},
		{[]string{`\seen`, `\DELETED`, "$forwarded", `\draft`}, "u:2,DPST"},
		{[]string{"$Junk", "$Label1", `\Recent`, FlagSeen, FlagSeen}, "u:2,S"}, // keywords dropped
	}
	for _, tt := range tests {
		if got := FormatMaildirName("u", tt.flags); got != tt.want {
			t.Errorf("FormatMaildirName(u, %q) = %q, want %q", tt.flags, got, tt.want)
		}
	}
}

// Every subset of the representable flags survives Format then Parse.
func TestMaildirNameRoundTrip(t *testing.T) {
	unique := NewUniqueName(time.Now(), 1, 2, "h", 3)
	for mask := 0; mask < 1<<len(maildirLetters); mask++ {
		var flags []string
		for i, l := range maildirLetters {
			if mask&(1<<i) != 0 {
				flags = append(flags, l.flag)
			}
		}
		name := FormatMaildirName(unique, flags)
		u, got, ok := ParseMaildirName(name)
		if !ok || u != unique || !slices.Equal(got, flags) {
			t.Errorf("%q: got %q, %q, %v; want %q, %q", name, u, got, ok, unique, flags)
		}
	}
}

// FuzzMaildirName checks that a parsed name formats back to a name that
// parses to the same unique part and flags, and that Format never yields a
// name holding '/'.
func FuzzMaildirName(f *testing.F) {
	for _, s := range []string{"1.M2P3R4.host,S=5:2,S", "x:2,DFPRST", "x:2,ab", "x", ".x", "x:1,", "x:2,S:2,T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		u, flags, ok := ParseMaildirName(name)
		if !ok {
			return
		}
		if u == "" || strings.ContainsAny(u, ":/\x00") || u[0] == '.' {
			t.Fatalf("ParseMaildirName(%q) gave unique %q", name, u)
		}
		again := FormatMaildirName(u, flags)
		u2, flags2, ok2 := ParseMaildirName(again)
		if !ok2 || u2 != u || !slices.Equal(flags2, flags) {
			t.Fatalf("round trip %q -> %q: got %q, %q, %v; want %q, %q", name, again, u2, flags2, ok2, u, flags)
		}
		if FormatMaildirName(u2, flags2) != again {
			t.Fatalf("Format not stable for %q", again)
		}
	})
}
