package dovecottest

// Shared folders (Options.Sharing): Dovecot's ACL plugin, an other users'
// namespace and a public namespace, as a server with shared folders has
// them (Cyrus's user.owner.Folder, Exchange's public folders).
//
// What Dovecot 2.3.19 does with this configuration, pinned by
// TestSharing:
//
//   - NAMESPACE answers (("" "/")) (("shared/" "/")) (("Public/" "/")): the
//     other users' namespace is announced by the part of its prefix before
//     %u.
//   - A folder the owner grants with SETACL (Server.Share) is listed to the
//     grantee as "shared/<owner>/<folder>", its parents "shared" and
//     "shared/<owner>" as \Noselect (\HasChildren). The listing comes from
//     the shared mailbox dictionary (acl_shared_dict), which SETACL keeps;
//     a dovecot-acl file written by hand would not show in LIST.
//   - The public folders are listed as "Public/<folder>", "Public" itself as
//     \Noselect.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// SharedPrefix is the other users' namespace prefix of owner's folders on
// a server with Options.Sharing: "shared/alice/" ('/' server).
func (s *Server) SharedPrefix(owner string) string {
	d := string(s.Separator)
	return "shared" + d + owner + d
}

// PublicPrefix is the public namespace's prefix on a server with
// Options.Sharing: "Public/" ('/' server).
func (s *Server) PublicPrefix() string { return "Public" + string(s.Separator) }

// sharingConfig writes the ACL plugin's settings and the two namespaces.
func (s *Server) sharingConfig(p func(format string, args ...any)) {
	mail := filepath.Join(s.Dir, "mail")
	p("plugin {\n  acl = vfile\n  acl_shared_dict = file:%s\n}", filepath.Join(s.Dir, "shared", "shared-mailboxes.db"))
	// The owner's own maildir, its indexes shared (every user is the same
	// system user here, so file permissions never get in the way).
	p("namespace shared {\n  type = shared\n  separator = %c\n  prefix = shared%c%%%%u%c\n"+
		"  location = maildir:%s/%%%%u:LAYOUT=fs\n  subscriptions = no\n  list = children\n}",
		s.Separator, s.Separator, s.Separator, mail)
	p("namespace public {\n  type = public\n  separator = %c\n  prefix = Public%c\n"+
		"  location = maildir:%s:LAYOUT=fs\n  subscriptions = no\n  list = children\n}",
		s.Separator, s.Separator, filepath.Join(s.Dir, "public"))
}

// makeSharing creates DIR/shared for the shared mailbox dictionary (the
// mail processes write it), DIR/public and each public folder as an empty
// Maildir (LAYOUT=fs: a directory per level) whose dovecot-acl gives
// everyone every right.
func makeSharing(dir string, sep rune, folders []string, uid, gid int) error {
	root := filepath.Join(dir, "public")
	mk := func(path string) error {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return err
		}
		return os.Chown(path, uid, gid)
	}
	if err := mk(filepath.Join(dir, "shared")); err != nil {
		return err
	}
	if err := mk(root); err != nil {
		return err
	}
	for _, f := range folders {
		parts := strings.Split(f, string(sep))
		path := root
		for _, part := range parts {
			path = filepath.Join(path, part)
			if err := mk(path); err != nil {
				return err
			}
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := mk(filepath.Join(path, sub)); err != nil {
				return err
			}
		}
		acl := filepath.Join(path, "dovecot-acl")
		if err := os.WriteFile(acl, []byte("anyone lrwstipekxa\n"), 0o644); err != nil {
			return err
		}
		if err := os.Chown(acl, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// Share grants grantee rights (RFC 4314 letters, e.g. "lr", or
// "lrwstipekxa" for all) on owner's folder (the owner's spelling, e.g.
// "Team"), with SETACL as the owner. The grantee then sees it as
// SharedPrefix(owner)+folder. Needs Options.Sharing.
func (s *Server) Share(t testing.TB, owner, folder, grantee, rights string) {
	t.Helper()
	var rs imap.RightSet
	for _, r := range rights {
		rs = append(rs, imap.Right(r))
	}
	s.withClient(t, owner, func(c *imapclient.Client) error {
		if err := c.SetACL(folder, imap.RightsIdentifier(grantee), imap.RightModificationReplace, rs).Wait(); err != nil {
			return fmt.Errorf("SETACL %q %s %s as %s: %w", folder, grantee, rights, owner, err)
		}
		return nil
	})
	// SETACL answers OK even when the shared mailbox dictionary could not
	// be written, and then the grantee's LIST does not show the folder.
	want := s.SharedPrefix(owner) + folder
	for _, f := range s.Folders(t, grantee) {
		if f.Mailbox == want {
			return
		}
	}
	t.Fatalf("dovecottest: %s shared %q with %s, who does not see %q; log tail:\n%s", owner, folder, grantee, want, s.LogTail(10))
}
