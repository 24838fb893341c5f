// Package corpus finds the shared test corpus of real and broken mail, for
// tests only. It is looked for in one way everywhere: $MAILFERRY_SHARED/corpus
// when that is set, else ../shared/corpus beside the repository (the
// directory holding go.mod); never by an absolute path. A test that needs it
// calls Require, which skips with the reason when it is absent.
package corpus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the corpus subdirectory name (e.g. "dev", "mbox-dev").
func Dir(name string) (string, error) {
	var root string
	if s := os.Getenv("MAILFERRY_SHARED"); s != "" {
		root = s
	} else {
		repo, err := repoRoot()
		if err != nil {
			return "", err
		}
		root = filepath.Join(repo, "..", "shared")
	}
	dir := filepath.Join(root, "corpus", name)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", fmt.Errorf("no shared corpus at %s (set MAILFERRY_SHARED or put shared/ beside the repository)", dir)
	}
	return dir, nil
}

// Require returns the corpus subdirectory name, or skips the test saying why.
func Require(t testing.TB, name string) string {
	t.Helper()
	dir, err := Dir(name)
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	return dir
}

// repoRoot is the nearest directory upwards from the working directory (a
// test's package directory) that holds go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Files returns the names and bytes of every file in the corpus
// subdirectory name, in name order, or skips the test saying why.
func Files(t testing.TB, name string) (names []string, bodies [][]byte) {
	t.Helper()
	dir := Require(t, name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, e.Name())
		bodies = append(bodies, b)
	}
	return names, bodies
}
