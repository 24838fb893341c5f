package migrate

import (
	"bufio"
	"bytes"
	"fmt"
	"testing"
	"time"
)

func TestParseAppendUIDs(t *testing.T) {
	tests := []struct {
		text string
		n    int
		want string
	}{
		{"[APPENDUID 38505 3955] APPEND completed", 1, "[3955]"},
		{"[APPENDUID 1 5:8] ok", 4, "[5 6 7 8]"},
		{"[APPENDUID 1 5,7,9:10] ok", 4, "[5 7 9 10]"},
		{"[APPENDUID 1 8:5] ok", 4, "[8 7 6 5]"},
		{"[APPENDUID 1 5:8] ok", 3, "[]"}, // count mismatch: unknown
		{"Append completed.", 1, "[]"},
		{"[APPENDUID 1 x] ok", 1, "[]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(parseAppendUIDs(tt.text, tt.n)); got != tt.want {
			t.Errorf("parseAppendUIDs(%q, %d) = %s, want %s", tt.text, tt.n, got, tt.want)
		}
	}
}

func TestWriteAppendItem(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	date := time.Date(2024, 2, 3, 4, 5, 6, 0, time.FixedZone("", 2*3600))
	writeAppendItem(w, []string{`\Seen`, `\Recent`, `$Forwarded`, `bad flag`, `(x`}, date, []byte("abc"), true)
	w.Flush()
	want := " (\\Seen $Forwarded) \"03-Feb-2024 04:05:06 +0200\" {3+}\r\nabc"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	// A NUL byte: a literal8 where the server has BINARY, else a literal.
	for binary, head := range map[bool]string{true: "~{3+}", false: " {3+}"} {
		b.Reset()
		writeAppendItem(w, nil, time.Time{}, []byte("a\x00b"), binary)
		w.Flush()
		if !bytes.Contains(b.Bytes(), []byte(head)) {
			t.Errorf("binary=%v: %q lacks %q", binary, b.String(), head)
		}
	}
	if q := quoteIMAP(`a"b\c`); q != `"a\"b\\c"` {
		t.Errorf("quoteIMAP = %s", q)
	}
}
