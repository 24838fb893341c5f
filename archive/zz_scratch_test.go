package archive

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/mailferry/mailferry/formats"
)

func TestZZScratch(t *testing.T) {
	a := ioBuildMboxArchive(t)
	s, root := ioServeWithDovecot(t, a.dir)
	defer exec.Command("cp", "-a", root, "/tmp/mbx/dove").Run()
	c := s.Client(t, "alice")
	folder := os.Getenv("FOLDER")
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	var ss imap.SeqSet
	n := uint32(53)
	fmt.Sscan(os.Getenv("N"), &n)
	ss.AddRange(n-1, n+1)
	msgs, err := c.Fetch(ss, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		for _, b := range m.BodySection {
			os.WriteFile(filepath.Join("/tmp/mbx", fmt.Sprintf("got-%d", m.SeqNum)), b.Bytes, 0o644)
		}
	}
	es := a.byFile()
	for f, e := range es {
		if formats.DisplayName(e[0].DestFolder) == folder {
			data, _ := os.ReadFile(filepath.Join(a.dir, f))
			os.WriteFile("/tmp/mbx/file", data, 0o644)
			for i := int(n) - 2; i <= int(n); i++ {
				os.WriteFile(fmt.Sprintf("/tmp/mbx/src-%d", i+1), a.source[e[i].SHA256], 0o644)
			}
		}
	}
}
