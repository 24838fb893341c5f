package archive

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// Records after a message's entry (the cutover, migrate/cutover.go). An
// archive keeps every message as it was archived and never deletes one;
// what happens to it at the source later is appended to the manifest as a
// record line in the same hash chain (nothing is rewritten):
//
//	"record": "flags"  the source changed the message's flags; "flags" holds
//	                   them all now. A Maildir file is renamed as a mail
//	                   program would (same unique name, new info suffix) and
//	                   "file" names it; SHA256SUMS is rewritten to match. An
//	                   mbox file is append-only: its message, Status and
//	                   X-Status headers included, stays as written, and the
//	                   manifest is the truth for its flags (as it already is
//	                   for keywords in Maildir).
//	"record": "gone"   the message is no longer at the source (expunged or
//	                   moved away); the archive keeps it.
//
// A record's "of" is the seq of the message's entry; its file, offset,
// size, sha256 and destination are the message's. Verify follows flags
// records to the file a message lives in now and counts both kinds.

// Record kinds.
const (
	RecordFlags = "flags"
	RecordGone  = "gone"
)

// flagSetter is a Store that can change a stored message's flags in place
// (Maildir renames the file).
type flagSetter interface {
	SetFlags(folder formats.Folder, id string, flags []string) (file string, err error)
}

// UpdateFlags applies flag changes to archived messages of folder (by
// destination ID) and appends a flags record for each message whose flags
// it changed.
func (w *Writer) UpdateFlags(ctx context.Context, folder formats.Folder, changes []formats.FlagChange) error {
	var recs []ManifestEntry
	renamed := false
	for _, ch := range changes {
		for _, id := range ch.IDs {
			if err := ctx.Err(); err != nil {
				return err
			}
			e, meta, err := w.entryOf(folder, id)
			if err != nil {
				return err
			}
			flags := changedFlags(meta.flags, ch.Add, ch.Remove)
			if slices.Equal(flags, changedFlags(meta.flags, nil, nil)) {
				continue
			}
			if fs, ok := w.st.(flagSetter); ok {
				file, err := fs.SetFlags(folder, id, flags)
				if err != nil {
					return err
				}
				renamed = renamed || file != e.File
				e.File = file
			}
			e.Record, e.Flags = RecordFlags, flags
			recs = append(recs, e)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if err := w.log.append(recs); err != nil {
		return err
	}
	if !renamed {
		return nil
	}
	w.log.mu.Lock()
	defer w.log.mu.Unlock()
	return w.log.rebuildSums()
}

// RecordGone appends a gone record for each archived message of folder
// (by destination ID) whose source message is gone.
func (w *Writer) RecordGone(ctx context.Context, folder formats.Folder, ids []string) error {
	var recs []ManifestEntry
	for _, id := range ids {
		e, _, err := w.entryOf(folder, id)
		if err != nil {
			return err
		}
		e.Record = RecordGone
		recs = append(recs, e)
	}
	if len(recs) == 0 {
		return nil
	}
	return w.log.append(recs)
}

// entryOf is a record line for the live entry of a message of folder,
// without its kind, and the flags and date the manifest has for it now.
func (w *Writer) entryOf(folder formats.Folder, id string) (ManifestEntry, entryMeta, error) {
	l := w.log
	l.mu.Lock()
	defer l.mu.Unlock()
	k, _, err := l.loadFolder(folder.Path)
	if err != nil {
		return ManifestEntry{}, entryMeta{}, err
	}
	if err := l.loadOverlay(); err != nil {
		return ManifestEntry{}, entryMeta{}, err
	}
	var le *liveEntry
	for _, x := range l.ledger.byFolder[k] {
		if x.destID == id && !x.superseded {
			le = x
		}
	}
	if le == nil {
		return ManifestEntry{}, entryMeta{}, fmt.Errorf("manifest: %s: message %s is not in the manifest", formats.DisplayName(folder.Path), id)
	}
	meta := l.overlay[destKey(folder.Path, id)]
	e := ManifestEntry{Of: le.seq, File: le.file, Size: le.size, SHA256: le.sha, Flags: meta.flags,
		DestFolder: folder.Path, DestID: id}
	if le.offset >= 0 {
		off := le.offset
		e.Offset = &off
	}
	if !meta.date.IsZero() {
		e.Date = meta.date.UTC().Format(time.RFC3339)
	}
	return e, meta, nil
}

// changedFlags is flags with add added and remove removed (case-blind),
// sorted.
func changedFlags(flags, add, remove []string) []string {
	out := []string{}
	for _, f := range flags {
		if !slices.ContainsFunc(remove, func(r string) bool { return strings.EqualFold(r, f) }) {
			out = append(out, f)
		}
	}
	for _, f := range add {
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, f) }) {
			out = append(out, f)
		}
	}
	out = formats.CleanFlags(out)
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return out
}

// keywordDeclarer is a Store whose files declare the keywords their
// messages carry (mbox: Dovecot's X-IMAPbase line).
type keywordDeclarer interface {
	DeclareKeywords(folder formats.Folder, keywords []string)
}

// DeclareKeywords tells a store that declares keywords (mbox) those of the
// messages about to be stored into folder.
func (w *Writer) DeclareKeywords(folder formats.Folder, keywords []string) {
	if d, ok := w.st.(keywordDeclarer); ok {
		d.DeclareKeywords(folder, keywords)
	}
}

// DestFlags returns the flags the manifest holds for the messages of
// folder at ids (destination IDs): what the archive shows for them. A
// message the manifest does not list is left out.
func (w *Writer) DestFlags(ctx context.Context, folder formats.Folder, ids []string) (map[string][]string, error) {
	l := w.log
	l.mu.Lock()
	defer l.mu.Unlock()
	k, _, err := l.loadFolder(folder.Path)
	if err != nil {
		return nil, err
	}
	if err := l.loadOverlay(); err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	out := make(map[string][]string, len(ids))
	for _, x := range l.ledger.byFolder[k] {
		if want[x.destID] && !x.superseded {
			out[x.destID] = l.overlay[destKey(folder.Path, x.destID)].flags
		}
	}
	return out, ctx.Err()
}
