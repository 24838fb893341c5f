package archive

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A message file's descriptor is not inherited by a program mailferry
// starts (os.OpenFile sets O_CLOEXEC; createTmp must too).
func TestTmpFileCloseOnExec(t *testing.T) {
	f, err := createTmp(filepath.Join(t.TempDir(), "m"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.FcntlInt(uintptr(f.fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Error("the descriptor lacks FD_CLOEXEC")
	}
}
