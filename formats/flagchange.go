package formats

// FlagChange is one group of messages at a destination that get the same
// flags added and removed (the cutover's flags follow): IDs are the
// destination's own (IMAP UIDs in decimal, Maildir unique names, mbox
// offsets).
type FlagChange struct {
	Add, Remove []string
	IDs         []string
}
