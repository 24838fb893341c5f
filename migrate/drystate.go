package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A dry run reads the state file of earlier runs, so that it can say what
// flags follow and --sync-deletions would change (both need the ledger),
// and writes nothing: dryState drops every write. A missing file, or one of
// another layout, gives an empty state in memory as before.
type dryState struct{ State }

func openDryState(path string) (State, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return NewMemState(), nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w (is another mailferry running on the same pair?)", path, err)
	}
	ok := false
	db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		ok = tx.Bucket([]byte(SideSource)) != nil && tx.Bucket([]byte(SideDest)) != nil &&
			meta != nil && string(meta.Get([]byte("version"))) == string(stateVersion)
		return nil
	})
	if !ok {
		db.Close()
		return NewMemState(), nil
	}
	return dryState{&boltState{db: db}}, nil
}

func (dryState) SetMark(Side, string, uint32, uint32, uint32) error { return nil }
func (dryState) Reset(Side, string, uint32) error                   { return nil }
func (dryState) Add([]Record) error                                 { return nil }
func (dryState) Forget([]Record) error                              { return nil }
func (dryState) SetModSeq(Side, string, uint64) error               { return nil }
func (dryState) Begin() (time.Time, error)                          { return time.Time{}, nil }
func (dryState) Finish() error                                      { return nil }
