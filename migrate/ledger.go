package migrate

import (
	"encoding/binary"
	"errors"
	"sort"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mailferry/mailferry/formats"
)

// The ledger entry of one message, as the state keeps it on disk (an "ids"
// value, state.go):
//
//	32 bytes  identity key
//	1 byte    bits: 1 Copied, 2 base flags known, 4 destination UID known
//	[bits&4]  uvarint destination UIDVALIDITY, uvarint destination UID
//	[bits&2]  1 byte system flags (\Seen 1, \Answered 2, \Flagged 4,
//	          \Draft 8), uvarint n, n uvarint indexes into the folder's
//	          keyword table (its "keywords" value: names joined by NUL)
//
// An entry of the first layout (33 bytes: key and a Copied byte of 0 or 1)
// reads the same: no base, no destination UID. So files written before flags
// follow keep their ledger; their messages start with an empty base (flags
// are then only added, never removed, until the base is recorded).
const (
	entryCopied = 1 << 0
	entryBase   = 1 << 1
	entryDst    = 1 << 2
)

// DstID is where mailferry stored a message: the destination folder's
// UIDVALIDITY and the UID APPENDUID gave.
type DstID struct {
	Validity, UID uint32
}

// sysFlags are the system flags the base keeps as bits; \Deleted and
// \Recent are never followed.
var sysFlags = [...]string{formats.FlagSeen, formats.FlagAnswered, formats.FlagFlagged, formats.FlagDraft}

// followFlags is the set of flags that flags follow compares: canonical
// spelling, no \Recent or \Deleted (deletions are --sync-deletions'
// business), no duplicates (keywords compared case-insensitively), sorted.
func followFlags(flags []string) []string {
	out := []string{}
	for _, f := range formats.CleanFlags(flags) {
		if f != formats.FlagDeleted {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i]) < strings.ToLower(out[j]) })
	return out
}

// flagDiff returns src - base and base - src.
func flagDiff(src, base []string) (add, remove []string) {
	in := func(set []string, f string) bool {
		for _, x := range set {
			if strings.EqualFold(x, f) {
				return true
			}
		}
		return false
	}
	for _, f := range src {
		if !in(base, f) {
			add = append(add, f)
		}
	}
	for _, f := range base {
		if !in(src, f) {
			remove = append(remove, f)
		}
	}
	return add, remove
}

// keywordTable is one folder's keyword names, indexed by position.
type keywordTable struct {
	names []string
	index map[string]int
	grown bool
}

func loadKeywords(b *bolt.Bucket) *keywordTable {
	t := &keywordTable{index: map[string]int{}}
	if v := b.Get([]byte("keywords")); len(v) > 0 {
		t.names = strings.Split(string(v), "\x00")
	}
	for i, n := range t.names {
		t.index[strings.ToLower(n)] = i
	}
	return t
}

func (t *keywordTable) id(name string) int {
	if i, ok := t.index[strings.ToLower(name)]; ok {
		return i
	}
	t.names = append(t.names, name)
	t.index[strings.ToLower(name)] = len(t.names) - 1
	t.grown = true
	return len(t.names) - 1
}

func (t *keywordTable) save(b *bolt.Bucket) error {
	if !t.grown {
		return nil
	}
	t.grown = false
	return b.Put([]byte("keywords"), []byte(strings.Join(t.names, "\x00")))
}

// encodeEntry is r's "ids" value.
func encodeEntry(r Record, kw *keywordTable) []byte {
	v := make([]byte, 0, len(r.Key)+16)
	v = append(v, r.Key[:]...)
	bits := byte(0)
	if r.Copied {
		bits |= entryCopied
	}
	if r.HasBase {
		bits |= entryBase
	}
	if r.Dst.UID != 0 {
		bits |= entryDst
	}
	v = append(v, bits)
	if r.Dst.UID != 0 {
		v = binary.AppendUvarint(v, uint64(r.Dst.Validity))
		v = binary.AppendUvarint(v, uint64(r.Dst.UID))
	}
	if r.HasBase {
		var sys byte
		var kws []uint64
		for _, f := range followFlags(r.Base) {
			bit := -1
			for i, s := range sysFlags {
				if f == s {
					bit = i
				}
			}
			if bit >= 0 {
				sys |= 1 << bit
			} else {
				kws = append(kws, uint64(kw.id(f)))
			}
		}
		v = append(v, sys)
		v = binary.AppendUvarint(v, uint64(len(kws)))
		for _, k := range kws {
			v = binary.AppendUvarint(v, k)
		}
	}
	return v
}

var errEntry = errors.New("state: a damaged ledger entry")

// decodeEntry reads an "ids" value into fs under id.
func decodeEntry(fs *FolderState, id string, v []byte, kw []string) error {
	var key formats.Key
	if len(v) < len(key) {
		return errEntry
	}
	copy(key[:], v)
	fs.IDs[id] = key
	v = v[len(key):]
	if len(v) == 0 {
		return nil
	}
	bits := v[0]
	v = v[1:]
	if bits&entryCopied != 0 {
		fs.Copied[id] = true
	}
	next := func() uint64 {
		x, n := binary.Uvarint(v)
		if n <= 0 {
			v = nil
			return 0
		}
		v = v[n:]
		return x
	}
	if bits&entryDst != 0 {
		validity, uid := next(), next()
		fs.Dst[id] = DstID{Validity: uint32(validity), UID: uint32(uid)}
	}
	if bits&entryBase != 0 {
		if len(v) == 0 {
			return errEntry
		}
		sys := v[0]
		v = v[1:]
		base := []string{}
		for i, s := range sysFlags {
			if sys&(1<<i) != 0 {
				base = append(base, s)
			}
		}
		for n := next(); n > 0; n-- {
			i := next()
			if i >= uint64(len(kw)) {
				return errEntry
			}
			base = append(base, kw[i])
		}
		fs.Base[id] = followFlags(base)
	}
	return nil
}

// ModSeq reads the HIGHESTMODSEQ through which a folder's flags were
// followed (0 if none).
func (s *boltState) ModSeq(side Side, name string) (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(side)).Bucket([]byte(name)); b != nil {
			if x := b.Get([]byte("modseq")); len(x) == 8 {
				v = binary.BigEndian.Uint64(x)
			}
		}
		return nil
	})
	return v, err
}

// SetModSeq records the HIGHESTMODSEQ through which a folder's flags were
// followed.
func (s *boltState) SetModSeq(side Side, name string, modseq uint64) error {
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket([]byte(side)).CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		return b.Put([]byte("modseq"), binary.BigEndian.AppendUint64(nil, modseq))
	})
}

// Forget removes the entries of recs (Side, Folder and ID) in one
// transaction.
func (s *boltState) Forget(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		for _, r := range recs {
			b := tx.Bucket([]byte(r.Side)).Bucket([]byte(r.Folder))
			if b == nil {
				continue
			}
			if ids := b.Bucket([]byte("ids")); ids != nil {
				if err := ids.Delete([]byte(r.ID)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
