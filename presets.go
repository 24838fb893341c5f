package main

// Provider presets (--preset). A preset only fills in flags the user did not
// give (cobra's Flags().Changed): whatever is on the command line wins. What
// each one does, and why, is examples/presets.md.
//
// gmail:
//   - --dedup account: Gmail shows each label as a folder, so a message with
//     three labels is three folder entries, and "[Gmail]/All Mail" holds every
//     message once more. With account dedup each message arrives once, in
//     the first folder met: INBOX, then the special-use folders, then the
//     labels, and All Mail last (the engine's plan order), so that All Mail
//     at the destination keeps only what had no other label (archived mail).
//     --dedup folder gives a copy per label folder instead (and All Mail a
//     copy of everything).
//   - "[Gmail]/Starred" (\Flagged) and "[Gmail]/Important" are left out: they
//     are views, every message in them is in another folder too, and copying
//     them would only make copies. An --include that names one of them
//     exactly (--include '[Gmail]/Starred') brings it back; a pattern such
//     as --include '[Gmail]/*' does not.
//   - Folders of the [Gmail]/ (or [Google Mail]/) tree that the server lists
//     without a special-use attribute get it from their English name (Sent
//     Mail, Drafts, Spam, Trash or Bin, All Mail), so that they map to the
//     destination's Sent, Drafts, Junk and Trash whatever those are called.
//     Gmail sends the attributes itself, also for localised names; then they
//     are used as they are.
//
// office365:
//   - --jobs 2: Exchange Online throttles per mailbox, and more connections
//     mostly earn more "server busy" answers (which the engine retries with
//     backoff). --max-messages-per-second stays unset; set it if the tenant
//     still throttles.
//   - --max-message-size 150MiB: no Exchange Online mailbox accepts a larger
//     message, so it is not sent at all; it is named in the report and the
//     run exits 3. Mailboxes accept only 36 MB by default (MaxReceiveSize):
//     raise that before migrating (Set-Mailbox -MaxReceiveSize 150MB), or the
//     server refuses the messages in between, and each is named in the report
//     just the same. The cap is not lowered to 36 MB because a raised limit
//     would then refuse messages the server would take.

import (
	"fmt"
	"strings"

	"github.com/mailferry/mailferry/migrate"
)

// presetDefaults are the flags each preset sets, in flag syntax, applied in
// this order when the user did not give them.
var presetDefaults = map[string][][2]string{
	"gmail":     {{"dedup", "account"}},
	"office365": {{"jobs", "2"}, {"max-message-size", "150MiB"}},
}

// applyPreset fills in the preset's flags the user did not give, once, and
// says on stderr what it set.
func (f *copyFlags) applyPreset(env *environment) error {
	if f.presetApplied || f.preset == "" {
		return nil
	}
	defaults, ok := presetDefaults[f.preset]
	if !ok {
		return &usageError{fmt.Errorf("--preset must be gmail or office365, not %q", f.preset)}
	}
	f.presetApplied = true
	var set []string
	for _, d := range defaults {
		fl := f.cmd.Flags().Lookup(d[0])
		if fl == nil || fl.Changed {
			continue
		}
		if err := f.cmd.Flags().Set(d[0], d[1]); err != nil {
			return fmt.Errorf("--preset %s: --%s %s: %w", f.preset, d[0], d[1], err)
		}
		set = append(set, "--"+d[0]+" "+d[1])
	}
	msg := "mailferry: --preset " + f.preset + ": "
	if len(set) > 0 {
		msg += strings.Join(set, " ")
	} else {
		msg += "every flag it sets was given"
	}
	if f.preset == "gmail" {
		msg += "; [Gmail]/Starred and [Gmail]/Important are left out (every message in them is in another folder too)"
	}
	fmt.Fprintln(env.stderr, msg)
	return nil
}

// presetSource returns what the preset puts around each opened source.
func (f *copyFlags) presetSource() func(migrate.Source) migrate.Source {
	if f.preset != "gmail" {
		return func(s migrate.Source) migrate.Source { return s }
	}
	include := f.include
	return func(s migrate.Source) migrate.Source { return migrate.GmailSource(s, include) }
}
