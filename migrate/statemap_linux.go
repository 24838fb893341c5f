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
		dropMappedIn(db, tx)
		return nil
	})
}

// dropMappedIn is dropMapped inside a transaction already open (tx): a
// long read lets go of what it read as it goes (Folder, every
// mappedReadRoom bytes of a log). What the transaction still points to is
// mapped again when read: the pages are the file's, and unchanged.
//
// A ledger's load needs it: Folder read a 300,000-message folder's log in
// one transaction, and the process's resident set held 21-26 MB of the
// state file at the end of each side's load, where the log itself is
// about 13 MB: the folders' runs lie interleaved in the file (the workers
// write at once), and the kernel maps the pages around each page read
// (fault-around), most of them other folders'.
func dropMappedIn(db *bolt.DB, tx *bolt.Tx) {
	syscall.Syscall(syscall.SYS_MADVISE, db.Info().Data, uintptr(tx.Size()), syscall.MADV_DONTNEED)
}
