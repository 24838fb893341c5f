package pop3

// utf8 sends UTF8 (RFC 6856) when CAPA offers it, before the login (the
// command belongs to the AUTHORIZATION state). A server that offers UTF8
// may serve a message with 8-bit bytes in its header otherwise as something
// else: Courier replaces every such message by a "Cannot display Unicode
// content" notice, which would be archived in its place (and, with
// --delete-source, the original deleted). UTF8 changes nothing for a
// message in ASCII. A -ERR answer is not fatal: the session goes on as
// before, since the same message then comes as the server serves it to any
// client.
func (p *POP3) utf8() error {
	if _, ok := p.caps["UTF8"]; !ok {
		return nil
	}
	if _, _, err := p.cmd("UTF8"); err != nil {
		return p.dialErr("UTF8", err)
	}
	return nil
}
