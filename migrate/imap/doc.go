// Package imap is the IMAP endpoint of a migration: one type, IMAP, that is
// both a migrate.Source and a migrate.Sink (and a Deleter, Committer,
// Prober, FolderNamer).
//
// The session runs on go-imap v2's client (imap.go: dialing, login, LIST
// with special use and status, the streaming UID FETCH of bodies, STORE and
// UID EXPUNGE, CREATE). The APPEND path is our own (multiappend.go):
// MULTIAPPEND with LITERAL+ batches and pipelined streamed APPENDs, which
// go-imap does not have. Personal, other users' and shared namespaces are in
// namespace.go; what particular servers do differently (an unquoted name in
// a STATUS reply, PERMANENTFLAGS without keywords, over-quota answers
// without a code, a CREATE refused for a folder that exists) is handled in
// imapquirks.go; OAuth2 login in oauth.go (the mechanisms themselves are in
// package mailconn, shared with POP3). The cutover's side: flag changes,
// deletions and moves at the destination (imapflags.go), a changed folder
// listed by its CONDSTORE changes (imapchanged.go), IDLE for --watch
// (imapidle.go).
package imap
