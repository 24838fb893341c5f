package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/help/*.golden from the current help")

// Every command's --help is held in testdata/help/NAME.golden (go test
// -run TestHelpGolden -update rewrites them). Beyond the golden text: each
// has examples and exit codes, fits 80 columns, and offers only the flags
// that command takes.
func TestHelpGolden(t *testing.T) {
	t.Parallel()
	commands := []string{"", "migrate", "archive", "verify", "folders", "demo", "version"}
	for _, c := range commands {
		name := c
		if name == "" {
			name = "mailferry"
		}
		t.Run(name, func(t *testing.T) {
			setenv(t, "XDG_STATE_HOME", "/home/alice/.local/state")
			args := strings.Fields(c + " --help")
			code, out, errOut := mailferry(t, args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			golden := filepath.Join("testdata", "help", name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -run TestHelpGolden -update writes it)", err)
			}
			if out != string(want) {
				t.Errorf("%s --help differs from %s (-update rewrites it):\n%s", name, golden, out)
			}
			for _, section := range []string{"\nExamples:\n  mailferry ", "\nExit status:\n  0  "} {
				if !strings.Contains(out, section) {
					t.Errorf("no %q section", strings.TrimSpace(section))
				}
			}
			noTrailingBlanks(t, name, out)
			for _, l := range strings.Split(out, "\n") {
				if len([]rune(l)) > 80 {
					t.Errorf("a line wider than 80 columns: %q", l)
				}
			}
		})
	}
}

// Each command's help offers only what it takes: archive writes a local
// directory (no --dst-* flags, no --batch); folders names every kind of
// source; --state-dir names the default path as computed here.
func TestHelpFitsTheCommand(t *testing.T) {
	t.Parallel()
	setenv(t, "XDG_STATE_HOME", "/srv/xdg-state")
	_, archive, _ := mailferry(t, "archive", "--help")
	if m := regexp.MustCompile(`--dst-[a-z0-9-]+|--batch|--accounts|--shard`).FindAllString(archive, -1); len(m) > 0 {
		t.Errorf("archive --help offers %q", m)
	}
	if code, _, errOut := mailferry(t, "archive", "maildir:a", "b", "--dst-tls", "none"); code != 2 || !strings.Contains(errOut, "unknown flag --dst-tls") {
		t.Errorf("archive --dst-tls: exit %d, %q; want the usage error of an unknown flag", code, errOut)
	}
	_, folders, _ := mailferry(t, "folders", "--help")
	for _, w := range []string{"pop3://", "pop3s://", "maildir:", "mbox:"} {
		if !strings.Contains(folders, w) {
			t.Errorf("folders --help does not mention %s", w)
		}
	}
	for _, c := range []string{"migrate", "archive"} {
		_, out, _ := mailferry(t, c, "--help")
		flat := strings.Join(strings.Fields(out), " ")
		if !strings.Contains(flat, "here /srv/xdg-state/mailferry)") {
			t.Errorf("%s --help: --state-dir does not name /srv/xdg-state/mailferry:\n%s", c, out)
		}
	}
}
