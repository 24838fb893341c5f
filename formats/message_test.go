package formats

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// UnreadableErr finds the error of an Unreadable and of a struct embedding
// one (the IMAP source's, which adds Size); any other body has none.
func TestUnreadableErr(t *testing.T) {
	type sized struct{ Unreadable }
	cause := errors.New("permission denied")
	for _, c := range []struct {
		body io.Reader
		want error
	}{
		{Unreadable{Err: cause}, cause},
		{sized{Unreadable{Err: cause}}, cause},
		{strings.NewReader("x"), nil},
	} {
		if got := UnreadableErr(c.body); got != c.want {
			t.Errorf("UnreadableErr(%T) = %v, want %v", c.body, got, c.want)
		}
	}
}
