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

func TestDecodeMailboxUTF7(t *testing.T) {
	for _, s := range []string{"INBOX", "Entw&APw-rfe", "A&-B", "&ZeVnLIqe-", "~peter/mail/&U,BTFw-", "Priv&AOk-.Gr&APYA3w-e"} {
		got, err := DecodeMailboxUTF7(s)
		if err != nil || EncodeMailboxUTF7(got) != s {
			t.Errorf("DecodeMailboxUTF7(%q) = %q, %v", s, got, err)
		}
	}
	for _, s := range []string{
		"Privé",      // raw UTF-8
		"A&B",        // stray '&'
		"&AGEAYgBj-", // "abc": printable ASCII in a run
		"&AOk-&AOk-", // two runs side by side
		"&AO-",       // odd byte count
		"&2D0-",      // lone surrogate
		"tab\t",      // control character
	} {
		if got, err := DecodeMailboxUTF7(s); err == nil {
			t.Errorf("DecodeMailboxUTF7(%q) = %q, want an error", s, got)
		}
	}
}

func TestMaildirComponent(t *testing.T) {
	for in, want := range map[string]string{
		"Privé":   "Priv&AOk-",
		"Größe":   "Gr&APYA3w-e",
		"A&B":     "A&-B",
		"go.nuts": "go%2Enuts",
		"50%":     "50%25",
		"-rf":     "%2Drf",
		"a/b":     "a%2Fb",
		"tab\t":   "tab%09",
		"":        "%",
		"日本.語":    "&ZeVnLA-%2E&ip4-",
	} {
		got := EncodeMaildirComponent(in)
		if got != want {
			t.Errorf("EncodeMaildirComponent(%q) = %q, want %q", in, got, want)
		}
		if back, err := DecodeMaildirComponent(got); err != nil || back != in {
			t.Errorf("DecodeMaildirComponent(%q) = %q, %v; want %q", got, back, err, in)
		}
	}
	for _, s := range []string{"Privé", "a.b", "A&B", "%2e"} {
		if got, err := DecodeMaildirComponent(s); err == nil {
			t.Errorf("DecodeMaildirComponent(%q) = %q, want an error", s, got)
		}
	}
}
