package migrate

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

// The message a dead connection is charged with is the first not delivered
// after the last delivered one; one the source skipped earlier is not it.
func TestSourceDiedChargesTheNextMessage(t *testing.T) {
	for _, c := range []struct {
		delivered []string
		want      string
	}{
		{nil, "1"},
		{[]string{"1", "2"}, "3"},
		{[]string{"1", "3"}, "4"}, // 2 skipped by the source (expunged meanwhile)
		{[]string{"1", "2", "3", "4"}, ""},
	} {
		d := decision{copy: []formats.Message{{ID: "1"}, {ID: "2"}, {ID: "3"}, {ID: "4"}}}
		tr := &transfer{d: &d, delivered: map[string]bool{}}
		for _, id := range c.delivered {
			tr.delivered[id] = true
		}
		p := &folderPass{}
		p.sourceDied(tr, errors.New("EOF"))
		if p.died != c.want {
			t.Errorf("delivered %v: charged %q, want %q", c.delivered, p.died, c.want)
		}
	}
}

// Only two deaths in a row at one message leave it out.
func TestPoisonNeedsTwoDeathsInARow(t *testing.T) {
	for _, c := range []struct {
		died []string // "" a pass that did not die at a message
		want []string
	}{
		{[]string{"3"}, nil},
		{[]string{"3", "3"}, []string{"3"}},
		{[]string{"3", "", "3"}, nil},
		{[]string{"3", "4", "4"}, []string{"4"}},
		{[]string{"3", "3", "5", "5"}, []string{"3", "5"}},
	} {
		var s poison
		for _, id := range c.died {
			s.after(&folderPass{died: id, diedErr: errors.New("EOF")})
		}
		if got := slices.Sorted(maps.Keys(s.out)); !slices.Equal(got, c.want) {
			t.Errorf("died %q: left out %v, want %v", c.died, got, c.want)
		}
	}
}
