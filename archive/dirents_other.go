//go:build !linux

package archive

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// eachName calls fn with the name of each regular file in dir (os.ReadDir
// in chunks; Linux reads the entries without a value each: dirents_linux.go).
// A directory that does not exist has no names.
func eachName(dir string, fn func(name string) error) error {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	defer d.Close()
	for {
		ents, err := d.ReadDir(4096)
		for _, e := range ents {
			if e.Type().IsRegular() {
				if err := fn(e.Name()); err != nil {
					return err
				}
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
	}
}
