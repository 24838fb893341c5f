package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"
)

// eachName calls fn with the name of each regular file in dir, reading
// the directory with getdents64 straight into one buffer: no value per
// entry (os.ReadDir makes a DirEntry and a string of each), which made
// most of a million-message archive's no-op rerun. The name passed to fn
// is valid only during the call. A directory that does not exist has no
// names.
func eachName(dir string, fn func(name string) error) error {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("maildir: open %s: %w", dir, err)
	}
	defer syscall.Close(fd)
	buf := make([]byte, 256<<10)
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("maildir: read %s: %w", dir, err)
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8,
		// name NUL-terminated, padded to reclen.
		for off := 0; off+19 <= n; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen < 19 || off+reclen > n {
				return fmt.Errorf("maildir: read %s: a directory entry of %d bytes", dir, reclen)
			}
			typ := buf[off+18]
			name := buf[off+19 : off+reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			off += reclen
			if len(name) == 0 {
				continue
			}
			s := unsafe.String(&name[0], len(name))
			switch typ {
			case syscall.DT_REG:
			case syscall.DT_UNKNOWN: // the file system does not say: ask
				fi, err := os.Lstat(filepath.Join(dir, s))
				if errors.Is(err, fs.ErrNotExist) {
					continue // renamed or removed since
				}
				if err != nil {
					return fmt.Errorf("maildir: %w", err)
				}
				if !fi.Mode().IsRegular() {
					continue
				}
			default:
				continue
			}
			if err := fn(s); err != nil {
				return err
			}
		}
	}
}
