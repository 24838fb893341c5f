package migrate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mailferry/mailferry/formats"
)

// State is the resume and dedup ledger: a cache of the truth, never the
// truth. Deleting it is always safe: the engine then re-indexes the
// destination from headers. OpenState gives the bbolt file kept per
// (source, destination) pair; NewMemState one in memory (a dry run, tests).
type State interface {
	// Folder loads one folder's record (empty if none).
	Folder(side Side, name string) (*FolderState, error)
	// Mark reads a folder's validity, UIDNEXT and message count without its
	// IDs (zero values if none): what a no-op rerun compares.
	Mark(side Side, name string) (validity, uidNext, messages uint32, err error)
	// SetMark records the validity, the UIDNEXT through which a folder's
	// record is complete and (destination side) how many messages it held.
	SetMark(side Side, name string, validity, uidNext, messages uint32) error
	// Reset forgets every ID of a folder and sets its validity.
	Reset(side Side, name string, validity uint32) error
	// Add writes records in one durable transaction.
	Add(recs []Record) error
	// Forget removes the entries recs name (Side, Folder, ID).
	Forget(recs []Record) error
	// ModSeq and SetModSeq read and record the source HIGHESTMODSEQ
	// through which a folder's flags were followed (cutover.go).
	ModSeq(side Side, name string) (uint64, error)
	SetModSeq(side Side, name string, modseq uint64) error
	// Begin returns when an earlier run that did not end cleanly last
	// stored something (zero if none), and marks this run as under way.
	Begin() (time.Time, error)
	// Finish says the run ended without error: nothing of it is in flight.
	Finish() error
	Close() error
}

// boltState is the State in a bbolt file.
//
// Layout: two top buckets, "src" and "dst"; under each, one bucket per folder
// name holding "validity", "uidnext" and "messages" (big-endian uint32) and
// a bucket "log" of ledger entries (ledger.go): per message ID its identity
// key, whether mailferry itself stored that message's exact bytes at the
// destination (the only messages --delete-source may remove) or matched it
// there by key, and where it stored it and with which flags. The log is
// only appended to (pages filled whole), one run of entries per folder and
// transaction, so a message costs well under 64 bytes on disk.
//   - src folder: the source messages handled (copied durably, or matched at
//     the destination), and the UIDNEXT through which the folder was complete.
//   - dst folder: the destination messages indexed, the UIDNEXT through
//     which that index was last true and how many messages the folder held
//     then (a destination that lost messages shows by its count).
//
// A "meta" bucket holds the layout's version: a file of another version (or
// one whose identity keys were computed by another normal form) is emptied
// on open, which costs one re-index of the destination and nothing else:
// that is the whole upgrade path from an older mailferry.
type boltState struct {
	db *bolt.DB
}

var _ State = (*boltState)(nil)

// Side names a top bucket of the state.
type Side string

// The two sides of the ledger.
const (
	SideSource Side = "src"
	SideDest   Side = "dst"
)

// FolderState is one folder's record: its mark and its ledger, an Entry
// per message ID (ledgermem.go).
type FolderState struct {
	Validity uint32
	UIDNext  uint32
	Messages uint32 // dst: the folder's message count when the mark was set
	led      ledgerMem

	modSeq uint64 // memState's ModSeq (boltState keeps it in the file)
}

func newFolderState(validity uint32) *FolderState {
	return &FolderState{Validity: validity}
}

// Record is one ledger entry: message ID in folder on side has key; Copied
// says mailferry stored these exact bytes at the destination itself.
type Record struct {
	Side   Side
	Folder string
	ID     string
	Key    formats.Key
	Copied bool
	// Dst is where mailferry stored the message (zero: unknown); Base, when
	// HasBase, the flags it last applied there (src side, cutover.go).
	Dst     DstID
	Base    []string
	HasBase bool
}

// stateVersion changes whenever the layout or the identity key's normal
// form (formats.KeyVersion) changes.
// Version 3: the append-only "log" of compact entries replaced the "ids"
// bucket of one 32-byte key per message. Version 4: an entry's ID is of
// one of four kinds (ledgerid.go: a hashed file name as its 12 bytes, hex
// digits two to a byte, like the run's previous hex ID), and a base of
// system flags alone is one byte.
var stateVersion = []byte{4, byte(formats.KeyVersion)}

// StatePath is the state file for a pair of endpoints (named without secrets).
func StatePath(dir, source, dest string) string {
	sum := sha256.Sum256([]byte(source + "\x00" + dest))
	return filepath.Join(dir, "mailferry-"+hex.EncodeToString(sum[:8])+".db")
}

// stateAllocSize is how far ahead of its data the file grows (bbolt's
// default, 16 MB, would be most of the file of a 200,000-message account).
const stateAllocSize = 128 << 10

// OpenState opens or creates the state file, readable by its owner only.
//
// A file of another layout is emptied (see boltState). One whose pages are
// not statePageSize's (a file made before 1 KB pages) is made again
// instead: bbolt keeps a file's page size for its life, and this layout's
// runs in 4 KB pages took up to half as much again. It is cut to nothing
// while this process still holds its lock, so the lock stays on the same
// file and whoever opens it next makes it afresh; when the earlier run
// stopped under way (Begin) is carried over. Where the cut fails (a system
// that cannot cut a mapped file), it is emptied in its own pages.
func OpenState(path string) (State, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	db, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	ready, running := checkState(db)
	if !ready && db.Info().PageSize != statePageSize {
		if os.Truncate(path, 0) == nil {
			db.Close()
			if db, err = openBolt(path); err != nil {
				return nil, err
			}
			ready, _ = checkState(db)
		}
	}
	if !ready {
		err = db.Update(func(tx *bolt.Tx) error {
			meta, err := tx.CreateBucketIfNotExists(metaBucket)
			if err != nil {
				return err
			}
			if string(meta.Get([]byte("version"))) != string(stateVersion) {
				// Another layout or key form: start the ledger afresh.
				for _, s := range []Side{SideSource, SideDest} {
					if tx.Bucket([]byte(s)) != nil {
						if err := tx.DeleteBucket([]byte(s)); err != nil {
							return err
						}
					}
				}
				if err := meta.Put([]byte("version"), stateVersion); err != nil {
					return err
				}
			}
			if running != nil && meta.Get([]byte("running")) == nil {
				if err := meta.Put([]byte("running"), running); err != nil {
					return err
				}
			}
			for _, s := range []Side{SideSource, SideDest} {
				if _, err := tx.CreateBucketIfNotExists([]byte(s)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state: %w", err)
	}
	return &boltState{db: db}, nil
}

func openBolt(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, PageSize: statePageSize})
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w (is another mailferry running on the same pair?)", path, err)
	}
	db.AllocSize = stateAllocSize
	return db, nil
}

// checkState says whether the file holds this layout (then it needs no
// write here), and gives its mark of a run under way (Begin), if any.
func checkState(db *bolt.DB) (ready bool, running []byte) {
	db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		ready = tx.Bucket([]byte(SideSource)) != nil && tx.Bucket([]byte(SideDest)) != nil &&
			meta != nil && string(meta.Get([]byte("version"))) == string(stateVersion)
		if meta != nil {
			running = slices.Clone(meta.Get([]byte("running")))
		}
		return nil
	})
	return ready, running
}

// Close gives back the room the file grew ahead of its data (up to
// stateAllocSize: a quarter of the state of a 5,000-message account) and
// closes it. The cut is made while the file is still locked, under a read
// transaction, so no write is under way and no page past the data is in
// use; the next write grows the file again.
func (s *boltState) Close() error {
	s.db.View(func(tx *bolt.Tx) error {
		f, err := os.OpenFile(s.db.Path(), os.O_WRONLY, 0)
		if err != nil {
			return nil // the room stays: no harm
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Size() > tx.Size() {
			f.Truncate(tx.Size())
		}
		return nil
	})
	return s.db.Close()
}

// mappedReadRoom is how many bytes of a log Folder reads between two
// drops of the pages it mapped (dropMappedIn).
var mappedReadRoom = 256 << 10

// afterRun, where set (tests), is called after each run Folder reads.
var afterRun func()

// Folder loads one folder's record (empty if none).
func (s *boltState) Folder(side Side, name string) (*FolderState, error) {
	fs := newFolderState(0)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(side)).Bucket([]byte(name))
		if b == nil {
			return nil
		}
		fs.Validity = getU32(b, "validity")
		fs.UIDNext = getU32(b, "uidnext")
		fs.Messages = getU32(b, "messages")
		fs.led.grow(int(fs.Messages)) // about as many entries as messages
		if log := b.Bucket(logBucket); log != nil {
			kw := loadKeywords(b).names
			fs.led.beginLoad() // names sorted once, at the end (ledgermem.go)
			defer fs.led.seal()
			read := 0
			return log.ForEach(func(_, v []byte) error {
				if read += len(v); read >= mappedReadRoom {
					dropMappedIn(s.db, tx) // statemap_linux.go
					read = 0
				}
				_, err := decodeRun(fs, v, kw)
				if afterRun != nil {
					afterRun()
				}
				return err
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	dropMapped(s.db) // the log just read, a large folder's 13 MB for both sides
	return fs, nil
}

// Reset forgets every ID of a folder and sets its validity (a changed
// UIDVALIDITY, or an index found stale).
func (s *boltState) Reset(side Side, name string, validity uint32) error {
	return s.update(func(tx *bolt.Tx) error {
		top := tx.Bucket([]byte(side))
		if top.Bucket([]byte(name)) != nil {
			if err := top.DeleteBucket([]byte(name)); err != nil {
				return err
			}
		}
		b, err := top.CreateBucket([]byte(name))
		if err != nil {
			return err
		}
		return putU32(b, "validity", validity)
	})
}

// Mark reads a folder's validity, UIDNEXT and message count without its
// IDs (zero values if none): what a no-op rerun compares.
func (s *boltState) Mark(side Side, name string) (validity, uidNext, messages uint32, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(side)).Bucket([]byte(name)); b != nil {
			validity, uidNext, messages = getU32(b, "validity"), getU32(b, "uidnext"), getU32(b, "messages")
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("state: %w", err)
	}
	return validity, uidNext, messages, err
}

// SetMark records the validity, the UIDNEXT through which a folder's record
// is complete and (destination side) how many messages the folder held.
func (s *boltState) SetMark(side Side, name string, validity, uidNext, messages uint32) error {
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket([]byte(side)).CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		if err := putU32(b, "validity", validity); err != nil {
			return err
		}
		if err := putU32(b, "messages", messages); err != nil {
			return err
		}
		return putU32(b, "uidnext", uidNext)
	})
}

// Add writes records in one durable transaction.
func (s *boltState) Add(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	err := s.update(func(tx *bolt.Tx) error {
		if err := touch(tx); err != nil {
			return err
		}
		return appendRuns(tx, recs, false)
	})
	if err == nil {
		dropMapped(s.db) // statemap_linux.go
	}
	return err
}

var logBucket = []byte("log")

// appendRuns appends the entries recs make to the log of each folder they
// name (forget entries when forget, which creates no folder): to the log's
// last run while it has room (lastRun), then in new runs of at most runRoom
// bytes.
func appendRuns(tx *bolt.Tx, recs []Record, forget bool) error {
	type run struct {
		b   *bolt.Bucket
		kw  *keywordTable
		seq []byte // the key buf is stored under: the last run's, or nil for the next sequence number
		buf []byte
		c   runCoder
	}
	var runs []*run
	byFolder := map[[2]string]*run{}
	for _, r := range recs {
		f := [2]string{string(r.Side), r.Folder}
		cur := byFolder[f]
		if cur == nil {
			top := tx.Bucket([]byte(r.Side))
			b := top.Bucket([]byte(r.Folder))
			if b == nil && !forget {
				var err error
				if b, err = top.CreateBucket([]byte(r.Folder)); err != nil {
					return err
				}
			}
			cur = &run{b: b}
			if b != nil {
				cur.kw = loadKeywords(b)
				cur.seq, cur.buf, cur.c = lastRun(b, cur.kw)
			}
			byFolder[f] = cur
			runs = append(runs, cur)
		}
		if cur.b == nil {
			continue
		}
		mark := len(cur.buf)
		cur.buf = appendEntry(cur.buf, &cur.c, r, cur.kw, forget)
		if len(cur.buf) > runRoom && mark > 0 {
			// The entry goes past the room of a page: the run ends before
			// it, and it begins the next (written again, from a new coder).
			if err := putRun(cur.b, cur.seq, cur.buf[:mark:mark]); err != nil {
				return err
			}
			cur.seq, cur.c = nil, runCoder{}
			cur.buf = appendEntry(nil, &cur.c, r, cur.kw, forget) // bbolt keeps the old value until the commit
		}
	}
	for _, r := range runs {
		if len(r.buf) > 0 {
			if err := putRun(r.b, r.seq, r.buf); err != nil {
				return err
			}
		}
		if r.kw != nil {
			if err := r.kw.save(r.b); err != nil {
				return err
			}
		}
	}
	return nil
}

// statePageSize is the state file's page (bbolt's default is the system's,
// 4 KB). A folder's ledger costs a page for its bucket and, once its log
// outgrows a page, one more for the log's branch, on each side; at 1 KB
// those fixed costs are a quarter, and the page a transaction rewrites is
// too. A file made with another page size keeps its own.
const statePageSize = 1024

// runRoom bounds a run of entries: the room a page has for one value (its
// header and the leaf element's are 16 bytes each, the 8-byte sequence
// number is the key), so that no run spills onto overflow pages of its
// own. (bbolt splits a leaf only past four values, so the log's last leaf
// may span up to four pages.) An entry longer than that alone (a very long
// POP3 UIDL with many keywords) makes a run of its own, on overflow pages.
const runRoom = statePageSize - 16 - 16 - 8

// lastRun gives the last run of a folder's log when it has room for more
// entries: its key, a copy of its bytes, and the coder as it stands after
// them, so that entries appended to it read as if they had been written
// with it. Runs written in small batches (large messages, several folders)
// would otherwise each fill part of a page and pay a leaf element, a key and
// a first entry written from nothing. A run that does not decode is left as
// it is, and Folder reports it.
func lastRun(b *bolt.Bucket, kw *keywordTable) (seq, buf []byte, c runCoder) {
	log := b.Bucket(logBucket)
	if log == nil {
		return nil, nil, runCoder{}
	}
	k, v := log.Cursor().Last()
	if k == nil || len(v) >= runRoom {
		return nil, nil, runCoder{}
	}
	c, err := decodeRun(newFolderState(0), v, kw.names)
	if err != nil {
		return nil, nil, runCoder{}
	}
	return slices.Clone(k), append(make([]byte, 0, runRoom+64), v...), c
}

// putRun stores a run in a folder's log under seq, or under the next
// sequence number when seq is nil.
func putRun(b *bolt.Bucket, seq, run []byte) error {
	log, err := b.CreateBucketIfNotExists(logBucket)
	if err != nil {
		return err
	}
	log.FillPercent = 1 // only ever appended to
	if seq == nil {
		n, err := log.NextSequence()
		if err != nil {
			return err
		}
		seq = binary.BigEndian.AppendUint64(nil, n)
	}
	return log.Put(seq, run)
}

func (s *boltState) update(fn func(tx *bolt.Tx) error) error {
	if err := s.db.Update(fn); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

func getU32(b *bolt.Bucket, k string) uint32 {
	v := b.Get([]byte(k))
	if len(v) != 4 {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

func putU32(b *bolt.Bucket, k string, v uint32) error {
	var buf [4]byte
	binary.BigEndian.PutUint32(buf[:], v)
	return b.Put([]byte(k), buf[:])
}

// A run that died (SIGKILL, power) may have left APPENDs in flight that the
// server finishes after the client is gone: a new run that indexed the
// destination at once would miss them and copy them again. So the state
// records when a run last stored anything, until it ends without error;
// the next run first waits until that moment is Settle in the past.
const Settle = 3 * time.Second

var metaBucket = []byte("meta")

func touch(tx *bolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return err
	}
	v, _ := time.Now().MarshalBinary()
	return b.Put([]byte("running"), v)
}

// Begin returns when an earlier run that did not end cleanly last stored
// something (zero if none), and marks this run as under way.
func (s *boltState) Begin() (time.Time, error) {
	var last time.Time
	s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(metaBucket); b != nil {
			if v := b.Get([]byte("running")); v != nil {
				last.UnmarshalBinary(v)
			}
		}
		return nil
	})
	return last, s.update(touch)
}

// Finish says the run ended without error: nothing of it is in flight.
func (s *boltState) Finish() error {
	return s.update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(metaBucket); b != nil {
			return b.Delete([]byte("running"))
		}
		return nil
	})
}
