package archive

import (
	"errors"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// renameNoReplace moves oldpath to newpath unless newpath exists (then
// fs.ErrExist, and both files stay as they were), with renameat2's
// RENAME_NOREPLACE. A file system that does not know the flag gets a plain
// rename(2).
//
// Not os.Rename: it first stats newpath (to refuse a directory there), a
// lookup that misses in a directory of 300,000 messages and cost 8.9 µs of
// every message's 122 in a million-message archive (pprof: 6.8% of the
// run's CPU); and it would replace a message already under that name.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		err = unix.Rename(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// tmpFile is a message file being written into tmp/, through its
// descriptor alone. Not an os.File: on Linux os.OpenFile offers every
// regular file to the netpoller, which refuses it, at the cost of four
// fcntl calls and an epoll_ctl, five system calls of the ten a stored
// message paid (open, those five, write, futimens, close, rename).
type tmpFile struct {
	fd   int
	name string
}

// createTmp creates path for writing, failing if it exists (O_EXCL).
func createTmp(path string) (*tmpFile, error) {
	fd, err := openFD(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &tmpFile{fd: fd, name: path}, nil
}

// openFD is open(2) with O_CLOEXEC, tried again after EINTR.
func openFD(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, mode)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// Write writes all of p, or returns why not.
func (f *tmpFile) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		w, err := unix.Write(f.fd, p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &os.PathError{Op: "write", Path: f.name, Err: err}
		}
		if w == 0 {
			return n, &os.PathError{Op: "write", Path: f.name, Err: io.ErrShortWrite}
		}
		n += w
	}
	return n, nil
}

// readFile is a file opened for reading through its descriptor alone,
// for the same reason as tmpFile: verify opens every message file of an
// archive, and an import or a rerun's dedup every one of a Maildir source.
type readFile struct {
	fd   int
	name string
}

// openRead opens path for reading.
func openRead(path string) (*readFile, error) {
	fd, err := openFD(path, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return &readFile{fd: fd, name: path}, nil
}

// Read reads up to len(p) bytes; io.EOF at the end of the file.
func (f *readFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(f.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: f.name, Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// Close closes the descriptor, once.
func (f *readFile) Close() error { return closeFD(&f.fd, f.name) }

// size is the file's length (fstat).
func (f *readFile) size() (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return 0, &os.PathError{Op: "fstat", Path: f.name, Err: err}
	}
	return st.Size, nil
}

// setTimes sets the file's access and modification times to t through its
// descriptor (utimensat with no path, as futimens(3) does): no lookup of
// its name. The change time becomes now, as with any utimes.
func (f *tmpFile) setTimes(t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	if err := futimens(f.fd, ts); err != nil {
		return &os.PathError{Op: "futimens", Path: f.name, Err: err}
	}
	return nil
}

// Close closes the descriptor, once.
func (f *tmpFile) Close() error { return closeFD(&f.fd, f.name) }

// closeFD closes *fd once and marks it closed (EINTR is not retried: on
// Linux the descriptor is gone either way).
func closeFD(fd *int, name string) error {
	if *fd < 0 {
		return os.ErrClosed
	}
	err := unix.Close(*fd)
	*fd = -1
	if err != nil {
		return &os.PathError{Op: "close", Path: name, Err: err}
	}
	return nil
}

// futimens is utimensat(fd, NULL, ts, 0): x/sys/unix's UtimesNanoAt always
// passes a path.
func futimens(fd int, ts []unix.Timespec) error {
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
		return e
	}
	return nil
}
