package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

// mutt 2.2 reads our Maildir archive in batch mode (issue 12, "mutt in
// batch mode" for both archives): each folder (mutt -f on INBOX's
// directory and on each Maildir++ subfolder, as its names are on disk)
// holds every message of the source, byte for byte, and mutt's read,
// replied, flagged and deleted patterns match the messages with \Seen,
// \Answered, \Flagged and \Deleted (the info letters S, R, F, T). mutt
// reads no keyword letters (dovecot-keywords is Dovecot's) and has no
// pattern for a draft. Checked on the messages with a well-formed header
// of their own without Status lines (mutt rewrites a malformed header, and
// adds a message's own Status flags to the file name's).
func TestInteropMuttReadsMaildirArchive(t *testing.T) {
	t.Parallel()
	mutt := ioNeed(t, "mutt", "mutt")
	dir := filepath.Join(t.TempDir(), "archive")
	imBuildArchive(t, dir)
	bodies, flags, _ := imSample(t)
	letters := map[string]string{"read": formats.FlagSeen, "replied": formats.FlagAnswered, "flagged": formats.FlagFlagged, "deleted": formats.FlagDeleted}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	for fi, p := range imFolders {
		path := dir
		if !formats.IsInbox(p) {
			enc := make([]string, len(p))
			for j, c := range p {
				enc[j] = formats.EncodeMaildirComponent(c)
			}
			path = filepath.Join(dir, "."+strings.Join(enc, "."))
		}
		got := ioMutt(t, mutt, path, map[string]string{"all": "~A", "read": "~R", "replied": "~Q", "flagged": "~F", "deleted": "~D"})
		seen := map[string]map[string]int{}
		for name, msgs := range got {
			seen[name] = map[string]int{}
			for _, m := range msgs {
				seen[name][sum(m)]++
			}
		}
		want, checked := 0, 0
		for i, b := range bodies {
			if i%len(imFolders) != fi {
				continue
			}
			want++
			if !ioPlainHeader(b) {
				continue
			}
			checked++
			k := sum(muttPiped(b))
			if seen["all"][k] == 0 {
				t.Errorf("%s: message %d: mutt does not show it with the source's bytes", path, i)
				continue
			}
			for name, flag := range letters {
				if has := slices.Contains(flags[i], flag); (seen[name][k] > 0) != has {
					t.Errorf("%s: message %d: mutt's %s is %v, want %v", path, i, name, !has, has)
				}
			}
		}
		if len(got["all"]) != want || checked < want/3 {
			t.Errorf("%s: mutt reads %d messages, the folder holds %d (%d checked)", path, len(got["all"]), want, checked)
		}
	}
}

// muttPiped is a message of our Maildir (src, the file's bytes) as mutt
// pipes it: mutt writes the blank line that ends the header as LF.
func muttPiped(src []byte) []byte {
	h := formats.HeaderBlock(src)
	if rest, ok := bytes.CutPrefix(src[len(h):], []byte("\r\n")); ok && len(h) < len(src) {
		return append(append(slices.Clone(h), '\n'), rest...)
	}
	return src
}
