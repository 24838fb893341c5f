package migrate

import (
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// dropMapped lets go of the state file's pages this process has mapped.
// bbolt reads the file through a shared read-only mapping, and every page
// a lookup touched stayed in the process's resident set: at a million
// messages, 15 MB of a 49 MB file by the end of a first copy, a third of
// its peak RSS, although the process needs none of it after the
// transaction. MADV_DONTNEED takes the pages out of the mapping; they stay
// in the kernel's page cache, and the next read maps them again (a minor
// fault, no I/O). bbolt writes with pwrite, never through the mapping, so
// nothing is lost. It runs after each write (Add) and after each folder's
// ledger is loaded (Folder): a delta pass over a 300,000-message folder
// reads about 13 MB of the file for its two sides.
//
// The read transaction is what makes it safe: bbolt remaps the file only
// under a lock that waits for every open transaction, so db.Info().Data is
// the start of the current mapping, at least tx.Size() bytes long, for as
// long as the transaction is open.
func dropMapped(db *bolt.DB) {
	db.View(func(tx *bolt.Tx) error {
		syscall.Syscall(syscall.SYS_MADVISE, db.Info().Data, uintptr(tx.Size()), syscall.MADV_DONTNEED)
		return nil
	})
}
