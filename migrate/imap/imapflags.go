package imap

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// The IMAP side of the cutover (cutover.go): HIGHESTMODSEQ in the folder
// listing, flag changes at the destination, removing exactly the messages
// mailferry copied there, and moving them between folders.

var (
	_ migrate.FlagUpdater = (*IMAP)(nil)
	_ migrate.DestDeleter = (*IMAP)(nil)
	_ migrate.DestMover   = (*IMAP)(nil)
)

// statusOptions is what Folders asks of STATUS (or LIST-STATUS): with
// CONDSTORE also HIGHESTMODSEQ, so that a folder whose flags did not change
// keeps the no-op shortcut.
func (m *IMAP) statusOptions() *imap.StatusOptions {
	return &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true,
		HighestModSeq: m.caps.Has(imap.CapCondStore)}
}

// UpdateFlags applies changes with UID STORE +FLAGS.SILENT and
// -FLAGS.SILENT, one command per change and direction (UIDs grouped, at most
// 1000 per command). Flags the folder's PERMANENTFLAGS do not allow are
// left out: the server would not keep them.
func (m *IMAP) UpdateFlags(ctx context.Context, folder formats.Folder, changes []migrate.FlagChange) (err error) {
	if len(changes) == 0 {
		return nil
	}
	if m.writing != folder.Name {
		m.selected = "" // a fresh SELECT: its PERMANENTFLAGS (PrepareWrite's is fresh)
	}
	sd, err := m.sel(folder.Name, false)
	if err != nil {
		return err
	}
	if sd == nil {
		m.selected = ""
		if sd, err = m.sel(folder.Name, false); err != nil {
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	defer func() {
		if err == nil && m.writing != folder.Name { // else EndWrite leaves it
			err = m.leaveReadWrite(folder.Name)
		}
	}()
	allowed := permanent(sd.PermanentFlags)
	var sent []closer // every STORE goes out at once: one round trip
	defer func() {
		if werr := closeAll(sent); werr != nil && err == nil {
			err = m.wrap("uid store flags in "+folder.Name, werr)
		}
	}()
	for _, ch := range changes {
		for _, op := range []struct {
			op    imap.StoreFlagsOp
			flags []string
		}{{imap.StoreFlagsAdd, ch.Add}, {imap.StoreFlagsDel, ch.Remove}} {
			var flags []imap.Flag
			for _, f := range op.flags {
				if allowed(f) {
					flags = append(flags, imap.Flag(f))
				}
			}
			if len(flags) == 0 {
				continue
			}
			cmds, err := m.storeUIDs(ch.IDs, &imap.StoreFlags{Op: op.op, Silent: true, Flags: flags})
			sent = append(sent, cmds...)
			if err != nil {
				return m.wrap("uid store flags in "+folder.Name, err)
			}
		}
	}
	return nil
}

// leaveReadWrite ends a read-write selection at once, as permanentFlags
// does (imapquirks.go: mailutils loses messages APPENDed by a session that
// has the folder selected read-write): deselect (imapwrite.go).
func (m *IMAP) leaveReadWrite(folder string) error {
	if err := m.deselect(); err != nil {
		return m.wrap("unselect "+folder, err)
	}
	return nil
}

// storeUIDs sends one UID STORE per 1000 IDs, without waiting for the
// answers (closeAll).
func (m *IMAP) storeUIDs(ids []string, store *imap.StoreFlags) ([]closer, error) {
	sets, err := uidChunks(ids)
	if err != nil {
		return nil, err
	}
	cmds := make([]closer, len(sets))
	for i, set := range sets {
		cmds[i] = m.c.Store(set, store, nil)
	}
	return cmds, nil
}

// closer is a command sent whose answers are still to be read.
type closer interface{ Close() error }

// closeAll reads the answers of commands sent together, each by a
// goroutine of its own (a server may interleave the answers, and the
// client cannot read on while one waits to be taken: ListChanged), and
// returns the first error.
func closeAll(cmds []closer) error {
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, c := range cmds {
		wg.Go(func() { errs[i] = c.Close() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// uidChunks parses ids (UIDs in decimal) into sets of at most 1000, one
// command each.
func uidChunks(ids []string) ([]imap.UIDSet, error) {
	var sets []imap.UIDSet
	for start := 0; start < len(ids); start += 1000 {
		var set imap.UIDSet
		for _, id := range ids[start:min(start+1000, len(ids))] {
			u, err := strconv.ParseUint(id, 10, 32)
			if err != nil || u == 0 {
				return nil, fmt.Errorf("not a UID: %q", id)
			}
			set.AddNum(imap.UID(u))
		}
		sets = append(sets, set)
	}
	return sets, nil
}

// permanent says which flags a folder keeps: those PERMANENTFLAGS lists,
// any keyword when it lists \*, everything when the server sent none
// (RFC 3501: then all flags are permanent).
func permanent(perm []imap.Flag) func(string) bool {
	if len(perm) == 0 {
		return func(string) bool { return true }
	}
	ok := map[string]bool{}
	anyKeyword := false
	for _, f := range perm {
		if f == imap.FlagWildcard {
			anyKeyword = true
		}
		ok[strings.ToLower(string(f))] = true
	}
	return func(f string) bool {
		return ok[strings.ToLower(f)] || anyKeyword && !strings.HasPrefix(f, `\`)
	}
}

// DeleteDest removes the messages with these UIDs from a destination
// folder: UID STORE +FLAGS.SILENT (\Deleted), then UID EXPUNGE of exactly
// those UIDs. Without UIDPLUS it only marks them and says so (marksOnly): a
// plain EXPUNGE would also remove what someone else marked.
func (m *IMAP) DeleteDest(ctx context.Context, folder formats.Folder, ids []string) (marksOnly bool, err error) {
	msgs := make([]formats.Message, 0, len(ids))
	for _, id := range ids {
		u, err := strconv.ParseUint(id, 10, 32)
		if err != nil || u == 0 {
			return false, fmt.Errorf("imap: %s: not a UID: %q", m.cfg, id)
		}
		msgs = append(msgs, formats.Message{ID: id, UID: uint32(u)})
	}
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	if err := m.Delete(ctx, folder, msgs); err != nil {
		return false, err
	}
	return !m.caps.Has(imap.CapUIDPlus), nil
}

// MoveDest moves the messages with these UIDs from one folder into another:
// UID MOVE (RFC 6851) where the server has it, else UID COPY and then
// UID STORE \Deleted and UID EXPUNGE of exactly the copied UIDs. Both need
// UIDPLUS: its COPYUID answer says which messages moved and their new UIDs
// (without it nothing is moved, and the engine copies instead). A server
// that moved without a COPYUID gets every UID mapped to "" (moved, new UID
// unknown).
func (m *IMAP) MoveDest(ctx context.Context, from, to formats.Folder, ids []string) (map[string]string, error) {
	if len(ids) == 0 || !m.caps.Has(imap.CapUIDPlus) || from.Shared || to.Shared || m.sharedName(from.Name) || m.sharedName(to.Name) {
		return nil, nil
	}
	var set imap.UIDSet
	for _, id := range ids {
		u, err := strconv.ParseUint(id, 10, 32)
		if err != nil || u == 0 {
			return nil, fmt.Errorf("imap: %s: not a UID: %q", m.cfg, id)
		}
		set.AddNum(imap.UID(u))
	}
	m.selected = ""
	if _, err := m.sel(from.Name, false); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	src, dst, err := m.moveOrCopy(set, to.Name)
	if err != nil {
		return nil, m.wrap("uid move from "+from.Name+" to "+to.Name, err)
	}
	if err := m.leaveReadWrite(from.Name); err != nil {
		return nil, err
	}
	return movedUIDs(ids, src, dst), nil
}

// moveOrCopy is UID MOVE, or UID COPY and the expunge of what was copied;
// it returns COPYUID's source and destination UIDs (nil without one).
func (m *IMAP) moveOrCopy(set imap.UIDSet, to string) (src, dst []imap.UID, err error) {
	if m.caps.Has(imap.CapMove) {
		data, err := m.c.Move(set, to).Wait()
		if err != nil {
			return nil, nil, err
		}
		src, dst = uidsOf(data.SourceUIDs), uidsOf(data.DestUIDs)
		return src, dst, nil
	}
	data, err := m.c.Copy(set, to).Wait()
	if err != nil {
		return nil, nil, err
	}
	src, dst = uidsOf(data.SourceUIDs), uidsOf(data.DestUIDs)
	if len(src) == 0 {
		return nil, nil, fmt.Errorf("UID COPY answered no COPYUID: the originals are left in place")
	}
	var copied imap.UIDSet
	copied.AddNum(src...)
	if err := m.c.Store(copied, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return nil, nil, err
	}
	if err := m.c.UIDExpunge(copied).Close(); err != nil {
		return nil, nil, err
	}
	return src, dst, nil
}

func uidsOf(s imap.NumSet) []imap.UID {
	set, ok := s.(imap.UIDSet)
	if !ok {
		return nil
	}
	uids, _ := set.Nums()
	return uids
}

// movedUIDs maps each moved ID to its new UID from COPYUID's two lists (in
// the same order); without them, every ID to "".
func movedUIDs(ids []string, src, dst []imap.UID) map[string]string {
	out := map[string]string{}
	if len(src) == 0 || len(src) != len(dst) {
		for _, id := range ids {
			out[id] = ""
		}
		return out
	}
	for i, u := range src {
		out[strconv.FormatUint(uint64(u), 10)] = strconv.FormatUint(uint64(dst[i]), 10)
	}
	return out
}

var _ migrate.FlagReader = (*IMAP)(nil)

// DestFlags fetches the flags of the messages at ids (UIDs) of folder:
// one UID FETCH (FLAGS) per thousand (migrate.FlagReader).
func (m *IMAP) DestFlags(ctx context.Context, folder formats.Folder, ids []string) (map[string][]string, error) {
	if _, err := m.sel(folder.Name, true); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	sets, err := uidChunks(ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(ids))
	for _, set := range sets {
		msgs, err := m.c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			return nil, m.wrap("uid fetch flags in "+folder.Name, err)
		}
		for _, msg := range msgs {
			out[strconv.FormatUint(uint64(msg.UID), 10)] = flagStrings(msg.Flags)
		}
	}
	return out, nil
}
