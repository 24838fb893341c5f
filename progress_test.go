package main

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// fakeTerm is a terminal of a fixed width, as far as a progress line
// needs one: it prints characters, wraps at the last column (deferred, as
// xterm does), and knows "\r", "\n" and ESC [ K / ESC [ 2K (clear to the end
// of the line / the whole line). It records every row it wrapped and every
// frame (a row's content whenever a write ends).
type fakeTerm struct {
	mu       sync.Mutex
	width    int
	rows     [][]rune
	row, col int
	pending  bool // the last column was written: the next character wraps
	wrapped  []int
	frames   []string
	unknown  []string // escape sequences it does not know
	rest     []byte   // an incomplete sequence or character
}

func newFakeTerm(width int) *fakeTerm { return &fakeTerm{width: width, rows: [][]rune{nil}} }

func (t *fakeTerm) Columns() int { return t.width }

func (t *fakeTerm) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := append(t.rest, p...)
	t.rest = nil
	for len(b) > 0 {
		switch c := b[0]; {
		case c == '\r':
			t.col, t.pending = 0, false
			b = b[1:]
		case c == '\n':
			t.newRow()
			b = b[1:]
		case c == 0x1b:
			end := 2
			for end < len(b) && (b[end] < 0x40 || b[end] > 0x7e) {
				end++
			}
			if len(b) < 2 || end >= len(b) {
				t.rest = b
				return len(p), nil
			}
			t.escape(string(b[:end+1]))
			b = b[end+1:]
		default:
			if !utf8.FullRune(b) {
				t.rest = b
				return len(p), nil
			}
			r, n := utf8.DecodeRune(b)
			t.put(r)
			b = b[n:]
		}
	}
	t.frames = append(t.frames, string(t.rows[t.row]))
	return len(p), nil
}

func (t *fakeTerm) newRow() {
	t.row++
	t.col, t.pending = 0, false
	if t.row == len(t.rows) {
		t.rows = append(t.rows, nil)
	}
}

func (t *fakeTerm) put(r rune) {
	if t.pending {
		t.newRow()
		t.wrapped = append(t.wrapped, t.row)
	}
	line := t.rows[t.row]
	for len(line) <= t.col {
		line = append(line, ' ')
	}
	line[t.col] = r
	t.rows[t.row] = line
	if t.col == t.width-1 {
		t.pending = true
	} else {
		t.col++
	}
}

func (t *fakeTerm) escape(seq string) {
	line := t.rows[t.row]
	switch seq {
	case "\x1b[K", "\x1b[0K":
		if t.col < len(line) {
			t.rows[t.row] = line[:t.col]
		}
		t.pending = false
	case "\x1b[2K":
		t.rows[t.row] = nil
		t.pending = false
	default:
		t.unknown = append(t.unknown, fmt.Sprintf("%q", seq))
	}
}

// screen is the rows, blanks at their ends cut, without the empty last row.
func (t *fakeTerm) screen() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, r := range t.rows {
		out = append(out, strings.TrimRight(string(r), " "))
	}
	if len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// The progress line fits the terminal at any width: no frame wraps, a
// warning and the summary after it leave no line of it behind, the folder
// name is shortened, columns are left out when narrow, the rate and ETA are
// not shown in the first frames, and the "^C" a terminal echoes for Ctrl-C
// goes with the line.
func TestProgressLineFitsTheTerminal(t *testing.T) {
	t.Parallel()
	for _, width := range []int{40, 60, 80, 200} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			t.Parallel()
			term := newFakeTerm(width)
			r := newTerminalReporter(term, "always", newVoiceLogger(term, slog.LevelInfo))
			const total = 400
			r.Planned(3, total)
			folder := "Archive/2023/Projects with a rather long name/Q4"
			r.FolderStarted(folder)
			for i := 0; i < total; i++ {
				if i == total/2 {
					r.Warn("INBOX: slow")
				}
				r.MessageCopied(folder, 2048)
				if i%40 == 0 {
					time.Sleep(15 * time.Millisecond) // a few frames, all within the first second
				}
			}
			frames := len(term.frames)
			term.Write([]byte("^C")) // the terminal's echo of Ctrl-C, at the end of the line
			r.finish()
			term.Write([]byte("FOLDER  DESTINATION  FOUND\nINBOX   INBOX        400\n"))

			if len(term.wrapped) > 0 || len(term.unknown) > 0 {
				t.Errorf("rows %v wrapped, unknown sequences %v", term.wrapped, term.unknown)
			}
			want := []string{"mailferry: warning: INBOX: slow", "FOLDER  DESTINATION  FOUND", "INBOX   INBOX        400"}
			if got := term.screen(); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("screen:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			bars := 0
			for _, f := range term.frames[:frames] {
				if !strings.Contains(f, "/400") {
					continue
				}
				bars++
				if n := utf8.RuneCountInString(f); n > width-3 {
					t.Errorf("a frame %d columns wide (room for ^C: %d): %q", n, width-3, f)
				}
				if strings.Contains(f, "msg/") || strings.Contains(f, "ETA") {
					t.Errorf("an early frame shows a rate or ETA: %q", f)
				}
				if strings.Contains(f, folder) {
					t.Errorf("the folder name is not shortened: %q", f)
				}
				if strings.HasPrefix(f, "..") && !strings.Contains(f, "name/Q4  ") {
					t.Errorf("the folder name does not keep its end: %q", f)
				}
				if width >= 60 && !strings.HasPrefix(f, "..") && !strings.HasPrefix(f, "[ ") {
					t.Errorf("no folder name at %d columns: %q", width, f)
				}
			}
			if bars < 2 {
				t.Errorf("%d frames drawn: %q", bars, term.frames)
			}
		})
	}
}

// The rate and ETA appear once they mean something (3 s and 20 messages
// after the first), and the columns of least use go first.
func TestProgressLineLayout(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newProgressLine(nil, nil, nil)
	p.first = start
	s := progressState{folder: "INBOX", done: 40, total: 1000, bytes: 3 << 20}
	for _, c := range []struct {
		after time.Duration
		done  int64
		avail int
		want  string
	}{
		{500 * time.Millisecond, 40, 80, "INBOX                     [>                             ]  40/1000  4%  3.0 MiB"},
		{10 * time.Second, 40, 80, "INBOX  [>                            ]  40/1000  4%  3.0 MiB  4 msg/s  ETA 4m00s"},
		{10 * time.Second, 400, 80, "INBOX  [==========>                 ]  400/1000  40%  3.0 MiB  40 msg/s  ETA 15s"},
		{10 * time.Second, 400, 40, "INBOX   400/1000  40%  3.0 MiB  40 msg/s"},
		{10 * time.Second, 400, 20, "INBOX  400/1000  40%"},
		{100 * time.Second, 10, 80, "INBOX  [                           ]  10/1000  1%  3.0 MiB  6 msg/min  ETA 2h45m"},
	} {
		s.done = c.done
		if got := p.layout(s, c.avail, start.Add(c.after)); got != c.want || len(got) > c.avail {
			t.Errorf("after %v, %d done, %d columns:\n got %q\nwant %q", c.after, c.done, c.avail, got, c.want)
		}
	}
}
