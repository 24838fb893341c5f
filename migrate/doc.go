// Package migrate is mailferry's engine: it copies the selected folders and
// messages of a Source into a Sink, exactly once, and can be resumed.
//
// A run goes in phases (run.go): connect and list both sides, plan the
// folders (plan.go: selection, mapping, special use), then one pass per
// folder over --jobs workers (folder.go: the no-op check, index the
// destination, list the source, decide, transfer and record, and the
// cutover: flags follow, deletions planned, moves made, cutover.go and
// moves.go), then --sync-deletions' deletions and --delete-source. The rules of what is copied, skipped or deletable are
// one pure, table-tested step (decide.go). The State (state.go, memstate.go)
// is the resume and dedup ledger, a cache of the truth that a rerun checks
// against the destination. Errors are classified in errors.go; the report
// and the Reporter interface (the engine never prints) in report.go;
// optional capabilities of an endpoint are found with As (capability.go).
//
// The endpoints live beside it: migrate/imap and migrate/pop3 (network),
// archive (Maildir and mbox), with what the two protocols share in
// migrate/mailconn. Imports point down: endpoints import migrate for its
// interfaces and errors, never the other way.
package migrate
