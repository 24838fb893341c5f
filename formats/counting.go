package formats

import "io"

// CountingReader counts the bytes read through it: the size of a message
// whose size is known only at its end (POP3), and what a sink consumed.
type CountingReader struct {
	R io.Reader
	N int64
}

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}
