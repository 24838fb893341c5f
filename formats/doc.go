// Package formats holds the byte-level codecs and value types that the rest of
// mailferry builds on: message metadata, the message identity key, folder-name
// mapping, Maildir file names and mboxrd framing.
//
// It imports only the standard library and does no I/O policy of its own
// (no files are opened, no network is touched): every codec works on
// io.Reader, io.Writer or byte slices so that it can be table-tested and fuzzed.
package formats
