package migrate

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/formats"
)

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
	// are skipped messages that are at the destination by key only. They
	// are listed only where listSkipped is set (--delete-source, the only
	// user): a rerun of a changed folder of 60,000 messages held 12 MB of
	// them, a fifth of its heap.
	deletable, keyOnly []formats.Message
	listSkipped        bool
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
// that they need no header fetch), and takes from avail what the ledger used.
//
// lost names messages whose copies the destination knows it lost
// (LostReporter): they are matched last, so that where several messages
// share an identity key the copies left are matched to the others first,
// and the one copied again is the one whose copy is gone. A name given
// wrongly costs nothing: its copy, still there, is matched all the same.
// The order changes which messages are copied again, never how many: with
// --dedup account too, where each is there while the account holds as many
// copies of its key as the folder's messages matched so far.
//
// same are the UIDs of messages listed as unchanged (ListChanged): each
// is taken as a message listed partly with its base flags, in UID order
// among msgs.
//
// Each message first claims the copy the ledger records it stored as, where
// the destination still holds it (avail.claimRecorded); those left take
// copies by key from the copies no message claimed so (destCopies).
func decideLedger(msgs []formats.Message, same []uint32, ledger *FolderState, lost map[string]bool, avail *destCopies,
	dedup Dedup, acct accountView, d *decision) (unknown []formats.Message, keys map[string]formats.Key, occ map[formats.Key]int) {
	keys = map[string]formats.Key{}
	occ = map[formats.Key]int{} // --dedup account: occurrences of a key in this folder
	if ledger.Len() == 0 {
		return msgs, keys, occ // all unknown: no copy of a long listing
	}
	var own bitSet // by position in the listing (inOrder): claimed its recorded copy
	if dedup != DedupAccount {
		own = claimOwn(msgs, same, ledger, lost, avail)
	}
	one := func(m formats.Message, en Entry, claimed bool) {
		k := en.Key
		there := false
		if dedup == DedupAccount {
			occ[k]++
			there = acct.holds(k, occ[k])
			occ[k]--
		} else {
			there = claimed || avail.take(k)
		}
		if !there {
			d.recopied++
			keys[m.ID] = k
			unknown = append(unknown, m)
			return
		}
		if dedup == DedupAccount {
			occ[k]++ // decideKeys counts on from here
		}
		d.skipped++
		switch {
		case !d.listSkipped:
		case en.Copied:
			d.deletable = append(d.deletable, m)
		default:
			d.keyOnly = append(d.keyOnly, m)
		}
	}
	var last []formats.Message
	i := 0
	inOrder(msgs, same, ledger, func(m formats.Message, en Entry, ok bool) {
		switch {
		case !ok:
			unknown = append(unknown, m)
		case lost[m.ID]:
			last = append(last, m)
		default:
			one(m, en, own.has(i))
		}
		i++
	})
	for _, m := range last {
		en, _ := ledger.Get(m.ID)
		one(m, en, false)
	}
	return unknown, keys, occ
}

// claimOwn has each message of the listing the ledger knows (but those
// named lost) claim the copy it was recorded as stored as (claimRecorded),
// and gives the positions of those that did, in inOrder's order (merged),
// without the messages inOrder makes for same.
func claimOwn(msgs []formats.Message, same []uint32, ledger *FolderState, lost map[string]bool, avail *destCopies) bitSet {
	var own bitSet
	at := 0
	merged(msgs, same, func(m *formats.Message, u uint32) {
		var en Entry
		var ok bool
		if m != nil {
			en, ok = ledger.Get(m.ID)
			ok = ok && !lost[m.ID]
		} else {
			en, ok = ledger.GetNum(u)
			ok = ok && (len(lost) == 0 || !lost[strconv.FormatUint(uint64(u), 10)])
		}
		if ok && avail.claimRecorded(en) {
			if own == nil {
				own = newBitSet(len(msgs) + len(same))
			}
			own.set(at)
		}
		at++
	})
	return own
}

// needKeys says whether the identity keys of the unknown messages are
// needed: only when the destination could already hold some of them.
func needKeys(dedup Dedup, avail *destCopies) bool {
	switch dedup {
	case DedupAccount:
		return true
	case DedupFolder:
		return avail.left()
	}
	return false
}

// decideKeys is the second half: each unknown message is already there by
// its key, or is copied. keys holds what is known of their identity keys;
// srcKey names the source ledger folder for the records of matches.
func decideKeys(unknown []formats.Message, keys map[string]formats.Key, avail *destCopies,
	occ map[formats.Key]int, dedup Dedup, acct accountView, srcKey string, d *decision) {
	d.claims = map[string]int{}
	// d.copy is unknown itself until a message is left out (a first
	// run copies a whole folder: no second list of it).
	aliased := true
	for i, m := range unknown {
		if k, ok := keys[m.ID]; ok {
			dup := false
			switch dedup {
			case DedupFolder:
				dup = avail.take(k)
			case DedupAccount:
				occ[k]++
				dup = !acct.claim(k, occ[k])
				if !dup {
					d.claims[m.ID] = occ[k]
				}
			}
			if dup {
				if aliased {
					d.copy, aliased = append(make([]formats.Message, 0, len(unknown)-1), unknown[:i]...), false
				}
				d.skipped++
				if d.listSkipped {
					d.keyOnly = append(d.keyOnly, m)
				}
				d.matched = append(d.matched, Record{Side: SideSource, Folder: srcKey, ID: m.ID, Key: k})
				continue
			}
		}
		if !aliased {
			d.copy = append(d.copy, m)
		}
		d.bytes += max(m.Size, 0)
	}
	if aliased {
		d.copy = unknown[:len(unknown):len(unknown)]
	}
}

// The cutover rules (flags follow and --sync-deletions, cutover.go), pure
// like the rest of the decide step:
//   - Flags follow: for a message at the destination that the ledger knows,
//     the destination's flags become dst ∪ (src − base) − (base − src),
//     where base is what mailferry last applied there: only what changed
//     at the source since is changed, so a flag the user set or removed at
//     the destination meanwhile wins. An unknown base counts as empty
//     (flags are then only added). \Deleted and \Recent are never followed.
//   - The destination copy is the UID mailferry stored the message as
//     (APPENDUID, same destination UIDVALIDITY, still holding the same
//     key), else a destination message with the same key that no other
//     source message maps to.
//   - --sync-deletions removes a destination message only when mailferry
//     stored it (Copied, with its UID recorded), the destination still
//     holds it under that UID with the same key, and the complete listing
//     of the source folder (same UIDVALIDITY) lacks the source message.

// flagPlan is the flags-follow outcome for one folder.
type flagPlan struct {
	changes []FlagChange // grouped by identical change, in source order
	records []Record     // the new bases, to record once applied
	updated int          // messages whose flags change at the destination
	// baseless are the destination IDs of messages with no recorded base
	// whose destination flags were not given (have): only added to.
	baseless []string
}

// decideFlags applies the flags-follow rule to msgs (the source listing)
// except those in skip (copied in this pass). dst is the destination
// folder's index (ID -> key) and dstValidity its UIDVALIDITY. A message
// with no recorded base (a state made afresh, a match mailferry did not
// store) gets the source flags its destination copy lacks, by have (the
// destination's flags by ID, where known): a copy that has them all is no
// change.
//
// same (the UIDs of messages listed as unchanged) need no change; they
// claim their copies as msgs do.
func decideFlags(msgs []formats.Message, same []uint32, ledger, dst *FolderState, dstValidity uint32,
	skip map[string]bool, srcKey string, have map[string][]string) flagPlan {
	var plan flagPlan
	var changed []formats.Message
	var entries []Entry // changed's, looked up once
	for _, m := range msgs {
		if en, ok := ledger.Get(m.ID); ok && !skip[m.ID] && !(en.HasBase && slices.Equal(m.Flags, en.Base)) {
			changed = append(changed, m) // not unchanged (a partial listing gives the base itself)
			entries = append(entries, en)
		}
	}
	where := mapToDest(changed, msgs, same, nil, ledger, dst, dstValidity)
	group := map[string]int{}
	for i, m := range changed {
		en := entries[i]
		uid, mapped := where[m.ID]
		if !mapped {
			continue
		}
		base, hasBase := en.Base, en.HasBase
		src := followFlags(m.Flags)
		if !hasBase {
			if cur, known := have[uid]; known {
				base = followFlags(cur) // only added to: nothing is removed without a base
			} else {
				plan.baseless = append(plan.baseless, uid)
			}
		}
		add, remove := flagDiff(src, base)
		if !hasBase {
			remove = nil
		}
		if len(add) == 0 && len(remove) == 0 && hasBase {
			continue
		}
		plan.records = append(plan.records, Record{Side: SideSource, Folder: srcKey, ID: m.ID, Key: en.Key,
			Copied: en.Copied, Dst: en.Dst, Base: src, HasBase: true})
		if len(add) == 0 && len(remove) == 0 {
			continue
		}
		plan.updated++
		g := strings.Join(add, "\x00") + "\x01" + strings.Join(remove, "\x00")
		i, ok := group[g]
		if !ok {
			i = len(plan.changes)
			group[g] = i
			plan.changes = append(plan.changes, FlagChange{Add: add, Remove: remove})
		}
		plan.changes[i].IDs = append(plan.changes[i].IDs, uid)
	}
	return plan
}

// mapToDest finds the destination copy of each message of want that the
// ledger knows: the recorded UID where it still holds the key, else a
// destination message with the same key (lowest UID first) that no message
// of all and same (the listing want is part of), then of after, claims by
// its recorded UID.
func mapToDest(want, all []formats.Message, same []uint32, after []formats.Message, ledger, dst *FolderState, dstValidity uint32) map[string]string {
	where := make(map[string]string, len(want))
	for _, m := range want {
		en, _ := ledger.Get(m.ID)
		if id, ok := recordedDest(en, dst, dstValidity); ok {
			where[m.ID] = id
		}
	}
	if len(where) == len(want) {
		return where // none is left to find by key
	}
	each := func(fn func(m formats.Message, en Entry, ok bool)) {
		inOrder(all, same, ledger, fn)
		for _, m := range after {
			en, ok := ledger.Get(m.ID)
			fn(m, en, ok)
		}
	}
	claimed := make(map[string]bool, len(all)+len(same)+len(after))
	each(func(_ formats.Message, en Entry, _ bool) {
		if id, ok := recordedDest(en, dst, dstValidity); ok {
			claimed[id] = true
		}
	})
	byKey := map[formats.Key][]string{}
	for id, en := range dst.All() {
		if k := en.Key; !claimed[id] {
			byKey[k] = append(byKey[k], id)
		}
	}
	for _, ids := range byKey {
		sort.Slice(ids, func(i, j int) bool { return len(ids[i]) < len(ids[j]) || len(ids[i]) == len(ids[j]) && ids[i] < ids[j] })
	}
	// The messages of all, same and after are given their copies in that
	// order, whichever of them want names.
	wanted := make(map[string]bool, len(want))
	for _, m := range want {
		wanted[m.ID] = true
	}
	each(func(m formats.Message, en Entry, ok bool) {
		k := en.Key
		if !ok || len(byKey[k]) == 0 {
			return
		}
		if _, recorded := recordedDest(en, dst, dstValidity); recorded {
			return
		}
		if wanted[m.ID] {
			where[m.ID] = byKey[k][0]
		}
		byKey[k] = byKey[k][1:]
	})
	return where
}

// recordedDest is the UID mailferry recorded storing a message (its ledger
// entry en; zero if none) as, if the destination folder (same UIDVALIDITY)
// still holds it with the same key.
func recordedDest(en Entry, dst *FolderState, dstValidity uint32) (string, bool) {
	if !holdsRecorded(en, dst, dstValidity) {
		return "", false
	}
	return strconv.FormatUint(uint64(en.Dst.UID), 10), true
}

// holdsRecorded is recordedDest's answer without the UID's decimal form.
func holdsRecorded(en Entry, dst *FolderState, dstValidity uint32) bool {
	if en.Dst.UID == 0 || en.Dst.Validity != dstValidity {
		return false
	}
	k, ok := dst.KeyNum(en.Dst.UID)
	return ok && k == en.Key
}

// decideDeletions returns the destination UIDs --sync-deletions removes:
// messages mailferry stored, still there as stored, whose source message
// the complete listing msgs lacks; and the ledger entries to forget once
// they are gone.
func decideDeletions(msgs []formats.Message, same []uint32, ledger, dst *FolderState, dstValidity uint32) (uids []string, gone []string) {
	listed := listedIDs(msgs, same)
	for id, en := range ledger.All() {
		if listed.has(id) || !en.Copied {
			continue
		}
		if uid, ok := recordedDest(en, dst, dstValidity); ok {
			uids = append(uids, uid)
			gone = append(gone, id)
		}
	}
	sort.Slice(uids, func(i, j int) bool {
		return len(uids[i]) < len(uids[j]) || len(uids[i]) == len(uids[j]) && uids[i] < uids[j]
	})
	sort.Strings(gone)
	return uids, gone
}

// decideGone returns the messages mailferry copied whose source message
// the complete listing (msgs and same) lacks, sorted, and where each one's
// copy is at the destination (mapToDest, the gone ones after the listing).
func decideGone(msgs []formats.Message, same []uint32, ledger, dst *FolderState, dstValidity uint32) (gone []string, where map[string]string) {
	listed := listedIDs(msgs, same)
	var lacking []formats.Message
	for id, en := range ledger.All() {
		if !listed.has(id) && en.Copied {
			gone = append(gone, id)
			lacking = append(lacking, formats.Message{ID: id})
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	sort.Strings(gone)
	return gone, mapToDest(lacking, msgs, same, lacking, ledger, dst, dstValidity)
}

// inOrder calls fn with each message of msgs and of same (UIDs of messages
// listed as unchanged, each given as listed partly: its base flags from
// ledger, Size -1), merged in ascending UID order (msgs in their own order
// where they have no UIDs), and with its ledger entry, looked up once (ok:
// the ledger knows it).
func inOrder(msgs []formats.Message, same []uint32, ledger *FolderState, fn func(m formats.Message, en Entry, ok bool)) {
	merged(msgs, same, func(m *formats.Message, u uint32) {
		if m != nil {
			en, ok := ledger.Get(m.ID)
			fn(*m, en, ok)
			return
		}
		en, ok := ledger.GetNum(u)
		fn(formats.Message{ID: strconv.FormatUint(uint64(u), 10), UID: u, Size: -1, Flags: en.Base}, en, ok)
	})
}

// merged is inOrder's order, the one rule both it and claimOwn walk: fn
// gets each message of msgs (m) and each UID of same (m nil, u), the UIDs
// of same among msgs in ascending order.
func merged(msgs []formats.Message, same []uint32, fn func(m *formats.Message, u uint32)) {
	i := 0
	for _, u := range same {
		for ; i < len(msgs) && msgs[i].UID < u; i++ {
			fn(&msgs[i], 0)
		}
		fn(nil, u)
	}
	for ; i < len(msgs); i++ {
		fn(&msgs[i], 0)
	}
}
