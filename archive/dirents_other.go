//go:build !linux

package archive

import "io/fs"

// eachName calls fn with the name of each regular file in dir (eachEntry,
// a thousand entries at a time; Linux reads the entries without a value
// each: dirents_linux.go). A directory that does not exist has no names.
func eachName(dir string, fn func(name string) error) error {
	return eachEntry(dir, func(e fs.DirEntry) error {
		if e.Type().IsRegular() {
			return fn(e.Name())
		}
		return nil
	})
}
