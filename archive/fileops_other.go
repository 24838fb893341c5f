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

// tmpFile is a message file being written into tmp/.
type tmpFile struct{ *os.File }

// createTmp creates path for writing, failing if it exists (O_EXCL).
func createTmp(path string) (*tmpFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &tmpFile{f}, nil
}

// setTimes sets the file's access and modification times to t.
func (f *tmpFile) setTimes(t time.Time) error {
	return os.Chtimes(f.Name(), t, t)
}

// readFile is a file opened for reading.
type readFile struct{ *os.File }

// openRead opens path for reading.
func openRead(path string) (*readFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &readFile{f}, nil
}

// size is the file's length.
func (f *readFile) size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
