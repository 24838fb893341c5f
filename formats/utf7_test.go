package formats

import "testing"

func TestEncodeMailboxUTF7(t *testing.T) {
	for in, want := range map[string]string{
		"INBOX":          "INBOX",
		"Entwürfe":       "Entw&APw-rfe",
		"Reisen/Zürich":  "Reisen/Z&APw-rich",
		"A&B":            "A&-B",
		"日本語":            "&ZeVnLIqe-",
		"~peter/mail/台北": "~peter/mail/&U,BTFw-",
	} {
		if got := EncodeMailboxUTF7(in); got != want {
			t.Errorf("EncodeMailboxUTF7(%q) = %q, want %q", in, got, want)
		}
	}
}
