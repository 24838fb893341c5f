package migrate

import (
	"encoding/json"
	"os"
	"time"
)

// Reporter receives progress events from the engine, which never prints.
// Methods may be called from several goroutines at once.
type Reporter interface {
	// Planned gives, once before copying starts, how many messages the
	// selected source folders hold (as the source counts them; 0 when it
	// cannot tell cheaply).
	Planned(folders, messages int)
	// FolderPlanned says a folder will copy n messages of bytes in total.
	FolderPlanned(folder string, n int, bytes int64)
	// FolderStarted says copying into folder begins.
	FolderStarted(folder string)
	// MessageCopied says one message of size bytes is durably at the destination.
	MessageCopied(folder string, bytes int64)
	// MessageFailed says one message could not be copied; the run goes on.
	MessageFailed(f Failure)
	// FolderDone gives a folder's final counts.
	FolderDone(r FolderReport)
	// Warn says something a user should know that is not a failure.
	Warn(msg string)
}

// NopReporter ignores every event.
type NopReporter struct{}

func (NopReporter) Planned(int, int)                 {}
func (NopReporter) FolderPlanned(string, int, int64) {}
func (NopReporter) FolderStarted(string)             {}
func (NopReporter) MessageCopied(string, int64)      {}
func (NopReporter) MessageFailed(Failure)            {}
func (NopReporter) FolderDone(FolderReport)          {}
func (NopReporter) Warn(string)                      {}

// Counts are the numbers of one folder or of the whole run.
type Counts struct {
	Found   int   `json:"found"`
	Copied  int   `json:"copied"`
	Skipped int   `json:"skipped"`
	Failed  int   `json:"failed"`
	Bytes   int64 `json:"bytes"`
	// DeletedAtSource counts what --delete-source removed (in a dry run:
	// would remove).
	DeletedAtSource int `json:"deleted_at_source"`
	// FlagsUpdated counts messages whose flags were changed at the
	// destination to follow the source (in a dry run: would be).
	FlagsUpdated int `json:"flags_updated"`
	// DeletedAtDestination counts what --sync-deletions removed at the
	// destination (in a dry run: would remove).
	DeletedAtDestination int `json:"deleted_at_destination"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Found += o.Found
	c.Copied += o.Copied
	c.Skipped += o.Skipped
	c.Failed += o.Failed
	c.Bytes += o.Bytes
	c.DeletedAtSource += o.DeletedAtSource
	c.FlagsUpdated += o.FlagsUpdated
	c.DeletedAtDestination += o.DeletedAtDestination
}

// FolderReport is one folder's line of the report.
type FolderReport struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Counts
	// Note says what a user should know about this folder (a renamed
	// component, a changed UIDVALIDITY, a re-index).
	Note string `json:"note,omitempty"`

	failures []Failure  // this pass's, kept by the engine once the folder ends
	kept     []Failure  // messages --delete-source leaves at the source
	pass     *passTally // what this pass sent, for the folder's counts (counts.go)
}

// Failure names one message that was not copied.
type Failure struct {
	Folder    string `json:"folder"`
	UID       uint32 `json:"uid,omitempty"`
	ID        string `json:"id,omitempty"`
	MessageID string `json:"message_id,omitempty"`
	Error     string `json:"error"`
}

// Report is the run report (--report FILE), as CLI.md gives it.
type Report struct {
	Source          string         `json:"source"`
	Destination     string         `json:"destination"`
	Started         time.Time      `json:"started"`
	DurationSeconds float64        `json:"duration_seconds"`
	DryRun          bool           `json:"dry_run,omitempty"`
	Folders         []FolderReport `json:"folders"`
	Totals          Counts         `json:"totals"`
	Failures        []Failure      `json:"failures"`
	// Kept names the messages --delete-source left at the source, each
	// with the reason (in "error").
	Kept []Failure `json:"kept_at_source,omitempty"`
	// MarkedOnly says the source could only mark deleted messages
	// \Deleted (no UIDPLUS): they are still there until expunged.
	MarkedOnly bool `json:"deleted_marked_only,omitempty"`
	// DestMarkedOnly says the destination could only mark what
	// --sync-deletions removes \Deleted (no UIDPLUS).
	DestMarkedOnly bool `json:"destination_deleted_marked_only,omitempty"`
	// Warnings are what a local source had to guess reading a tree another
	// program wrote (a folder name in no known encoding, a mixed layout),
	// each once, as printed ("mailferry: warning: ...").
	Warnings []string `json:"warnings,omitempty"`
	// Error is the error that stopped the run, if one did.
	Error string `json:"error,omitempty"`
}

// WriteFile writes the report as indented JSON, readable by its owner only.
func (r *Report) WriteFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}
