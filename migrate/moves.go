package migrate

import (
	"context"
	"strconv"

	"github.com/mailferry/mailferry/formats"
)

// Moves (--sync-deletions, cutover.go): a message moved from folder A to
// folder B at the source is new in B and gone from A. Before B's pass copies
// it, it looks for a message with the same identity key that mailferry
// stored at the destination for another source folder (the ledger's Dst)
// and whose source message is gone from that folder now (a header FETCH of
// its UID there answers nothing). Such a message is moved at the
// destination (UID MOVE, or UID COPY and UID EXPUNGE: DestMover) instead of
// being copied again; the ledgers follow (B gains it with the destination's
// new UID and A's base, A forgets it), and the end of the run does not
// delete it from A's destination folder. A message whose old copy is still
// at the source (a copy, not a move), or that the destination did not move,
// is copied as before. Only when nothing else is at stake: no --dry-run
// (which counts a copy and a deletion), no --since/--before, no --dedup
// account, no shared folders.

// moveCand is a message mailferry stored at the destination for one source
// folder: a candidate for a move into another.
type moveCand struct {
	srcKey string         // its source ledger folder
	src    formats.Folder // its source folder
	dst    []string       // the path of its destination folder
	id     string         // its source ID
	at     DstID          // where mailferry stored it
	base   []string
	has    bool // base is known
}

// movesOn says whether this pass may move instead of copying.
func (p *folderPass) movesOn() bool {
	e := p.e
	_, ok := As[DestMover](p.dst)
	return ok && e.opts.SyncDeletions && !e.opts.DryRun && !e.filtered() && e.opts.Dedup != DedupAccount &&
		len(p.d.copy) > 0 && p.dstF.Name != "" && p.dstF.UIDNext != 0 && !p.pf.Source.Shared
}

// moveInstead moves at the destination what this pass would copy but is
// there already for a source folder that lost it, and takes it out of the
// copies.
func (p *folderPass) moveInstead(ctx context.Context) error {
	if !p.movesOn() {
		return nil
	}
	if err := p.copyKeys(ctx); err != nil {
		return err
	}
	cands := p.e.claimMoves(p)
	if len(cands) == 0 {
		return nil
	}
	gone, err := p.goneAtSource(ctx, cands)
	if err != nil || len(gone) == 0 {
		p.e.unclaimMoves(cands)
		return err
	}
	moved, err := p.moveAtDest(ctx, gone)
	if err != nil {
		return err
	}
	return p.movedIn(moved)
}

// copyKeys reads the identity key of each message to copy that the
// decide step did not need.
func (p *folderPass) copyKeys(ctx context.Context) error {
	var want []formats.Message
	for _, m := range p.d.copy {
		if _, ok := p.keys[m.ID]; !ok {
			want = append(want, m)
		}
	}
	if len(want) == 0 {
		return nil
	}
	return p.src.Headers(ctx, p.pf.Source, want, func(m formats.Message, h []byte) error {
		p.keys[m.ID] = ledgerKey(formats.IdentityKey(h))
		return nil
	})
}

// claimMoves finds, for each message to copy, one unclaimed candidate of
// another source folder with its key (stored in a destination folder
// listed under the UIDVALIDITY recorded), and claims it.
func (e *engine) claimMoves(p *folderPass) map[string]*moveCand {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.moveIdx == nil {
		e.moveIdx, e.moveClaimed = e.indexMoves(), map[*moveCand]bool{}
	}
	out := map[string]*moveCand{}
	for _, m := range p.d.copy {
		k, ok := p.keys[m.ID]
		if !ok {
			continue
		}
		for _, c := range e.moveIdx[k] {
			f, listed := e.listedDest(c.dst)
			if c.srcKey == p.srcKey || e.moveClaimed[c] || !listed || f.Validity != c.at.Validity || f.Shared {
				continue
			}
			e.moveClaimed[c], out[m.ID] = true, c
			break
		}
	}
	return out
}

func (e *engine) unclaimMoves(cands map[string]*moveCand) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range cands {
		delete(e.moveClaimed, c)
	}
}

// indexMoves indexes by key every message the ledgers of the run's source
// folders record as stored by mailferry, with its destination UID.
// Called with e.mu held.
func (e *engine) indexMoves() map[formats.Key][]*moveCand {
	idx := map[formats.Key][]*moveCand{}
	for _, pf := range e.plan {
		key := ledgerFolder(pf)
		ss, err := e.state.Folder(SideSource, key)
		if err != nil {
			continue // a ledger that cannot be read offers no moves
		}
		for id, en := range ss.All() {
			if !en.Copied || en.Dst.UID == 0 {
				continue
			}
			idx[en.Key] = append(idx[en.Key], &moveCand{srcKey: key, src: pf.Source, dst: pf.Dest, id: id, at: en.Dst, base: en.Base, has: en.HasBase})
		}
	}
	return idx
}

// goneAtSource keeps the candidates whose source message is no longer in
// its source folder (a header FETCH of it answers nothing), asked on a
// connection of its own (the pass's keeps its folder selected). A folder
// that cannot be read keeps its candidates out: they are copied.
func (p *folderPass) goneAtSource(ctx context.Context, cands map[string]*moveCand) (map[string]*moveCand, error) {
	src, err := p.e.openSource(ctx)
	if err != nil {
		return nil, ctx.Err() // no moves: the messages are copied
	}
	defer src.Close()
	byFolder := map[string][]string{} // source folder name -> message IDs to copy
	for id, c := range cands {
		byFolder[c.src.Name] = append(byFolder[c.src.Name], id)
	}
	gone := map[string]*moveCand{}
	for _, ids := range byFolder {
		folder := cands[ids[0]].src
		var msgs []formats.Message
		for _, id := range ids {
			c := cands[id]
			u, _ := strconv.ParseUint(c.id, 10, 32)
			msgs = append(msgs, formats.Message{ID: c.id, UID: uint32(u)})
		}
		present := map[string]bool{}
		err := src.Headers(ctx, folder, msgs, func(m formats.Message, _ []byte) error {
			present[m.ID] = true
			return nil
		})
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			continue
		}
		for _, id := range ids {
			if !present[cands[id].id] {
				gone[id] = cands[id]
			}
		}
	}
	return gone, nil
}

// moved is one message moved at the destination: the source message of
// this pass, the candidate it was, and its new destination ID ("" when the
// destination did not say).
type moved struct {
	id    string
	c     *moveCand
	newID string
}

// moveAtDest moves the candidates' destination messages into this pass's
// destination folder, one command per folder they are in.
func (p *folderPass) moveAtDest(ctx context.Context, gone map[string]*moveCand) ([]moved, error) {
	mv, _ := As[DestMover](p.dst)
	byFolder := map[string][]string{}
	for id, c := range gone {
		f, _ := p.e.listedDest(c.dst)
		byFolder[f.Name] = append(byFolder[f.Name], id)
	}
	var out []moved
	for _, ids := range byFolder {
		from, _ := p.e.listedDest(gone[ids[0]].dst)
		var uids []string
		for _, id := range ids {
			uids = append(uids, strconv.FormatUint(uint64(gone[id].at.UID), 10))
		}
		newIDs, err := mv.MoveDest(ctx, from, p.dstF, uids)
		if err != nil {
			return out, err
		}
		for i, id := range ids {
			if n, ok := newIDs[uids[i]]; ok {
				out = append(out, moved{id: id, c: gone[id], newID: n})
			} else {
				p.e.unclaimMoves(map[string]*moveCand{id: gone[id]})
			}
		}
	}
	return out, nil
}

// movedIn records the moves: this pass's ledger and destination index gain
// the messages, the old folders' forget them, the end of the run does not
// delete them, and they are no longer copied.
func (p *folderPass) movedIn(ms []moved) error {
	e := p.e
	var add, forget []Record
	done := map[string]bool{}
	for _, m := range ms {
		k := p.keys[m.id]
		from, _ := e.listedDest(m.c.dst)
		forget = append(forget, Record{Side: SideSource, Folder: m.c.srcKey, ID: m.c.id},
			Record{Side: SideDest, Folder: from.Name, ID: strconv.FormatUint(uint64(m.c.at.UID), 10)})
		r := Record{Side: SideSource, Folder: p.srcKey, ID: m.id, Key: k, Copied: true,
			Dst: dstID(p.dstF, m.newID), Base: m.c.base, HasBase: m.c.has}
		add = append(add, r)
		p.ss.Put(r)
		if r.Dst.UID != 0 {
			rd := Record{Side: SideDest, Folder: p.dstF.Name, ID: m.newID, Key: k}
			p.ds.Put(rd)
			add = append(add, rd)
		}
		done[m.id] = true
		e.noteMovedAway(from.Name, m.c.at.UID)
	}
	if err := e.state.Forget(forget); err != nil {
		return err
	}
	if err := e.add(add); err != nil {
		return err
	}
	copies := p.d.copy[:0]
	p.d.bytes = 0
	for _, m := range p.d.copy {
		if !done[m.ID] {
			copies = append(copies, m)
			p.d.bytes += max(m.Size, 0)
		}
	}
	p.d.copy = copies
	p.fr.Skipped += len(ms)
	p.fr.MovedAtDestination += len(ms)
	return nil
}

// noteMovedAway records that the message with this UID left destination
// folder name by a move: the end of the run does not delete it there.
func (e *engine) noteMovedAway(name string, uid uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.movedAway == nil {
		e.movedAway = map[string]map[string]bool{}
	}
	if e.movedAway[name] == nil {
		e.movedAway[name] = map[string]bool{}
	}
	e.movedAway[name][strconv.FormatUint(uint64(uid), 10)] = true
}

// notMovedAway is uids less those moved out of destination folder name.
func (e *engine) notMovedAway(name string, uids []string) []string {
	var out []string
	for _, u := range uids {
		if !e.movedAway[name][u] {
			out = append(out, u)
		}
	}
	return out
}
