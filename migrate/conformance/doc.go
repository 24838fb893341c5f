// Package conformance is a test suite that every migrate.Source and
// migrate.Sink implementation runs, in the manner of rclone's fstests and
// restic's backend tests: it checks what the interfaces' doc comments in
// migrate/endpoint.go promise, and nothing an implementation merely happens
// to do.
//
// An implementation's test file calls TestSource with a SourceHarness (how
// to make a fresh endpoint seeded with given folders, through the real
// server or the real files) and TestSink with a SinkHarness (how to make an
// empty destination and read it back in a new session). Each harness says
// what its endpoint keeps of a message besides the bytes (Keeps) and how it
// serves the bytes it was given (Served: Dovecot turns bare LF into CRLF).
//
// What is checked, by SHA-256 of the bytes and by formats.IdentityKey:
//
//   - Source: Folders lists parents before children, every parent of a
//     folder included (NoSelect where it holds nothing of its own), no
//     duplicates. List returns each message once, in ascending order of
//     the stable IDs, with the served size (or -1), the flags and internal
//     date the endpoint keeps; an empty folder gives no messages and no
//     error. Headers gives each message's header block. Fetch yields
//     exactly the served bytes (m.Size of them, or until EOF for -1), passes
//     each asked-for message once and no other, skips a message that
//     vanished after List without error, and returns fn's error. A Deleter
//     removes exactly the messages given and nothing else.
//   - Sink: Ensure creates missing parents, returns the path it was given
//     and is idempotent. Store takes exactly size bytes (or until EOF for
//     -1) and returns an ID (through Commit for a Committer); after Store,
//     Commit or Flush as the sink requires, a new session sees every
//     message: Index reports each stored ID with the identity key of the
//     bytes, and only IDs that known reports false; List and Fetch give the
//     same bytes under the same ID, with flags and date where kept.
//
// The standard message set (Messages) holds a CRLF message, one without a
// final newline, one with raw UTF-8 in its header, one with bare LF line
// endings and no Message-ID, and one of 300 KB, larger than the IMAP
// appender's spool threshold, so that the streamed path is covered.
package conformance
