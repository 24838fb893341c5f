package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var tmuxSockets atomic.Int64

// tmuxSession runs command in a detached tmux session of the given size on
// a tmux server of its own (its own socket), which it stops at the end.
type tmuxSession struct {
	t      *testing.T
	socket string
}

func newTmux(t *testing.T, width int, command string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is not installed (scripts/test installs it as root)")
		}
		t.Skip("tmux is not installed: the progress line is not tried on a real terminal (apt-get install tmux)")
	}
	s := &tmuxSession{t: t, socket: fmt.Sprintf("mailferry-test-%d-%d", os.Getpid(), tmuxSockets.Add(1))}
	s.run("-f", "/dev/null", "new-session", "-d", "-x", fmt.Sprint(width), "-y", "50", "-s", "t",
		"env TERM=xterm "+command+"; echo END-OF-RUN; sleep 60")
	t.Cleanup(func() { exec.Command("tmux", "-L", s.socket, "kill-server").Run() })
	return s
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", s.socket}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// capture is the whole screen and scrollback; joined joins the rows that a
// wrapped line took.
func (s *tmuxSession) capture(joined bool) []string {
	args := []string{"capture-pane", "-p", "-t", "t", "-S", "-"}
	if joined {
		args = append(args, "-J")
	}
	return strings.Split(strings.TrimRight(s.run(args...), "\n"), "\n")
}

// waitFor polls the screen until re matches it.
func (s *tmuxSession) waitFor(re *regexp.Regexp, within time.Duration) bool {
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if re.MatchString(strings.Join(s.capture(false), "\n")) {
			return true
		}
	}
	return false
}

var progressRemnant = regexp.MustCompile(`\d+/\d{3,}|ETA \d|\[[= >]{4,}\]`)

// mailferry demo on a real terminal (tmux) at 60, 80 and 200 columns: no
// progress line is left behind or wrapped, only the demo's own output; at
// 200 columns nothing wraps at all (narrower, the summary table's rows
// wrap, as a table does).
func TestProgressOnARealTerminal(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds a binary and runs the demo in tmux")
	}
	bin := binary(t)
	for _, width := range []int{60, 80, 200} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			t.Parallel()
			s := newTmux(t, width, bin+" demo --messages 1500")
			if !s.waitFor(regexp.MustCompile(`(?m)^END-OF-RUN$`), 90*time.Second) {
				t.Fatalf("the demo did not end:\n%s", strings.Join(s.capture(false), "\n"))
			}
			rows, lines := s.capture(false), s.capture(true)
			screen := strings.Join(rows, "\n")
			if width >= 200 && len(rows) != len(lines) {
				t.Errorf("%d rows hold %d lines: some wrapped:\n%s", len(rows), len(lines), screen)
			}
			table := regexp.MustCompile(`^(FOLDER|total|\S.*  \d+  )`)
			for _, l := range lines {
				if progressRemnant.MatchString(l) {
					t.Errorf("a progress line was left behind: %q\n%s", l, screen)
				}
				if len([]rune(l)) > width && !table.MatchString(l) {
					t.Errorf("a line that is not a table row wrapped: %q", l)
				}
			}
			if strings.Count(screen, "\nFOLDER ") != 2 || !strings.Contains(screen, "\nChecked: ") {
				t.Errorf("not the demo's output:\n%s", screen)
			}
		})
	}
}

// Ctrl-C during a run on a real terminal: the summary that follows starts
// on a clean line, with no "^C" or "C" before its header.
func TestProgressCtrlCOnARealTerminal(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds a binary and runs the demo in tmux")
	}
	s := newTmux(t, 80, binary(t)+" demo --messages 4000")
	if !s.waitFor(regexp.MustCompile(`[1-9]\d*/4000`), 90*time.Second) {
		t.Fatalf("no progress line:\n%s", strings.Join(s.capture(false), "\n"))
	}
	s.run("send-keys", "-t", "t", "C-c")
	if !s.waitFor(regexp.MustCompile(`(?m)^END-OF-RUN$`), 60*time.Second) {
		t.Fatalf("the demo did not stop:\n%s", strings.Join(s.capture(false), "\n"))
	}
	rows := s.capture(false)
	screen := strings.Join(rows, "\n")
	header := false
	for _, l := range rows {
		if strings.Contains(l, "FOLDER ") {
			header = true
			if !strings.HasPrefix(l, "FOLDER  ") {
				t.Errorf("the table header does not start its line: %q\n%s", l, screen)
			}
		}
		if progressRemnant.MatchString(l) || strings.Contains(l, "^C") {
			t.Errorf("left behind: %q\n%s", l, screen)
		}
	}
	if !header || !strings.Contains(screen, "mailferry: interrupted") {
		t.Errorf("no summary and no interruption message:\n%s", screen)
	}
}
