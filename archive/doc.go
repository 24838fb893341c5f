// Package archive holds mailferry's local stores, Maildir++ and mbox, each
// usable as a source and as a sink of a migration, together with the
// hash-chained integrity manifest (MANIFEST.jsonl, SHA256SUMS) and Verify.
//
// archive imports formats and the standard library, never migrate: the
// engine's Source and Sink interfaces are written in formats and standard
// types, so the stores here satisfy them as they are.
package archive
