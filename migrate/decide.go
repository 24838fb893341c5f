package migrate

import "github.com/mailferry/mailferry/formats"

// The decide step: which source messages of a folder are copied, which are
// already at the destination, and which of those --delete-source may
// remove. It is pure (no I/O) so that the rules are table-tested
// (decide_test.go).
//
// The rules:
//   - The state is a cache, never the truth. A message the ledger records as
//     handled counts as at the destination only while the destination still
//     holds a message with its identity key; otherwise it is copied again.
//   - A message the ledger does not know is already there when the
//     destination holds its key (--dedup folder: in the destination folder,
//     one source message per destination copy; account: in any folder; off:
//     never).
//   - --delete-source may remove only messages whose exact bytes mailferry
//     itself stored at the destination (recorded as Copied in the ledger, or
//     copied in this pass). A match by key alone is a skip, never a
//     deletion: the destination may hold a different message with the same
//     key (a corrected statement, a re-sent draft).

// decision is the outcome of the decide step for one folder.
type decision struct {
	copy     []formats.Message // to transfer now, in source order
	bytes    int64             // their sizes added up (unknown sizes count 0)
	skipped  int               // already at the destination
	recopied int               // recorded as handled, missing at the destination
	// matched are ledger records for messages found at the destination by
	// key in this pass (not copied by mailferry).
	matched []Record
	// deletable are skipped messages whose bytes mailferry stored; keyOnly
	// are skipped messages that are at the destination by key only.
	deletable, keyOnly []formats.Message
	// claims maps a message ID to the occurrence of its key it claimed
	// (--dedup account), so that a failed copy can give the claim back.
	claims map[string]int
}

// accountView is the destination account as --dedup account sees it.
type accountView interface {
	// holds reports whether the destination holds at least n copies of k.
	holds(k formats.Key, n int) bool
	// claim reports whether the n-th copy of k is still missing, and if so
	// counts it as there.
	claim(k formats.Key, n int) bool
}

// decideLedger is the first half of the decide step: messages the ledger
// knows are sorted into still-there and to-copy-again. It returns the
// messages the ledger does not know, the keys of those to copy again (so
// that they need no header fetch), and avail less what the ledger used.
func decideLedger(msgs []formats.Message, ledger *FolderState, avail map[formats.Key]int,
	dedup Dedup, acct accountView, d *decision) (unknown []formats.Message, keys map[string]formats.Key, occ map[formats.Key]int) {
	keys = map[string]formats.Key{}
	occ = map[formats.Key]int{} // --dedup account: occurrences of a key in this folder
	for _, m := range msgs {
		k, ok := ledger.IDs[m.ID]
		if !ok {
			unknown = append(unknown, m)
			continue
		}
		there := false
		if dedup == DedupAccount {
			occ[k]++
			there = acct.holds(k, occ[k])
			occ[k]--
		} else if avail[k] > 0 {
			avail[k]--
			there = true
		}
		if !there {
			d.recopied++
			keys[m.ID] = k
			unknown = append(unknown, m)
			continue
		}
		occ[k]++
		d.skipped++
		if ledger.Copied[m.ID] {
			d.deletable = append(d.deletable, m)
		} else {
			d.keyOnly = append(d.keyOnly, m)
		}
	}
	return unknown, keys, occ
}

// needKeys says whether the identity keys of the unknown messages are
// needed: only when the destination could already hold some of them.
func needKeys(dedup Dedup, avail map[formats.Key]int) bool {
	switch dedup {
	case DedupAccount:
		return true
	case DedupFolder:
		for _, n := range avail {
			if n > 0 {
				return true
			}
		}
	}
	return false
}

// decideKeys is the second half: each unknown message is already there by
// its key, or is copied. keys holds what is known of their identity keys;
// srcKey names the source ledger folder for the records of matches.
func decideKeys(unknown []formats.Message, keys map[string]formats.Key, avail map[formats.Key]int,
	occ map[formats.Key]int, dedup Dedup, acct accountView, srcKey string, d *decision) {
	d.claims = map[string]int{}
	for _, m := range unknown {
		if k, ok := keys[m.ID]; ok {
			dup := false
			switch dedup {
			case DedupFolder:
				if avail[k] > 0 {
					avail[k]--
					dup = true
				}
			case DedupAccount:
				occ[k]++
				dup = !acct.claim(k, occ[k])
				if !dup {
					d.claims[m.ID] = occ[k]
				}
			}
			if dup {
				d.skipped++
				d.keyOnly = append(d.keyOnly, m)
				d.matched = append(d.matched, Record{Side: SideSource, Folder: srcKey, ID: m.ID, Key: k})
				continue
			}
		}
		d.copy = append(d.copy, m)
		d.bytes += max(m.Size, 0)
	}
}
