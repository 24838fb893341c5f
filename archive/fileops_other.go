//go:build !linux

package archive

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// renameNoReplace moves oldpath to newpath unless newpath exists (then
// fs.ErrExist). Elsewhere than Linux the check and the rename are two
// steps (fileops_linux.go makes them one).
func renameNoReplace(oldpath, newpath string) error {
	if _, err := os.Lstat(newpath); err == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(oldpath, newpath)
}

// setFileTimes sets f's access and modification times to t.
func setFileTimes(f *os.File, t time.Time) error {
	return os.Chtimes(f.Name(), t, t)
}
