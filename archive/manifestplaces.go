package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// folderPlaces says where in MANIFEST.jsonl the lines of each destination
// folder are, so that loading a folder's entries (loadFolder) reads only
// its lines. Without it every folder a run looked at read the whole
// manifest: a first copy of a million messages in 12 folders read it 12
// times as it grew (3.4 s of the run's CPU), and an account of a thousand
// folders would read it a thousand times.
//
// It is built by the first loadFolder of a process, in one pass over the
// manifest (on a first copy, an empty one), and kept up to date by append;
// it lives as long as the open manifest and is never written anywhere.
// Its size grows with the number of appended batches, not of messages:
// the lines of one batch of one folder are one span.
type folderPlaces struct {
	upTo  int64             // the manifest's length it covers
	spans map[string][]span // by folderKey, in file order
	// loose are the lines whose destination folder could not be read
	// without decoding them: every folder's load reads them too.
	loose []span
	// keys caches folderKey of each dest_folder as the lines spell it.
	keys map[string]string
}

// span is the byte range [start, end) of whole lines of the manifest.
type span struct{ start, end int64 }

// add records that the line at [start, end) is one of folder k's (k == ""
// for a loose line).
func (p *folderPlaces) add(k string, start, end int64) {
	if k == "" {
		p.loose = extendSpans(p.loose, start, end)
		return
	}
	p.spans[k] = extendSpans(p.spans[k], start, end)
}

// extendSpans adds [start, end) at the end of list, merged with the last
// span when they touch.
func extendSpans(list []span, start, end int64) []span {
	if n := len(list); n > 0 && list[n-1].end == start {
		list[n-1].end = end
		return list
	}
	return append(list, span{start, end})
}

// keyOf returns the folderKey of a manifest line's dest_folder, or "" when
// the line does not spell one the way json.Marshal does.
func (p *folderPlaces) keyOf(line []byte) string {
	raw := destFolderJSON(line)
	if raw == nil {
		return ""
	}
	if k, ok := p.keys[string(raw)]; ok {
		return k
	}
	var path []string
	if err := json.Unmarshal(raw, &path); err != nil || len(path) == 0 {
		return ""
	}
	k := folderKey(path)
	p.keys[string(raw)] = k
	return k
}

// destFolderJSON returns the JSON array after a line's "dest_folder" key,
// or nil. The key cannot occur inside a string value: there each quote is
// escaped, so the first `"dest_folder":[` is the key itself.
func destFolderJSON(line []byte) []byte {
	const key = `"dest_folder":[`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return nil
	}
	start := i + len(key) - 1
	inString, escaped := false, false
	for j := start + 1; j < len(line); j++ {
		c := line[j]
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && c == ']':
			return line[start : j+1]
		}
	}
	return nil
}

// buildPlaces reads the whole manifest once into a new folderPlaces.
// Callers hold l.mu.
func (l *manifestLog) buildPlaces() (*folderPlaces, error) {
	p := &folderPlaces{spans: map[string][]span{}, keys: map[string]string{}}
	err := eachLine(l.f, 0, l.size, func(off int64, line []byte) error {
		p.add(p.keyOf(line), off, off+int64(len(line)))
		p.upTo = off + int64(len(line))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// placesFor returns the spans to read for folder k, in file order: its own
// and the loose lines. Callers hold l.mu.
func (p *folderPlaces) placesFor(k string) []span {
	own := p.spans[k]
	if len(p.loose) == 0 {
		return own
	}
	out := make([]span, 0, len(own)+len(p.loose))
	i, j := 0, 0
	for i < len(own) || j < len(p.loose) {
		if j == len(p.loose) || (i < len(own) && own[i].start < p.loose[j].start) {
			out = append(out, own[i])
			i++
		} else {
			out = append(out, p.loose[j])
			j++
		}
	}
	return out
}

// scanSpans is scan over the lines of spans only.
// Callers hold l.mu.
func (l *manifestLog) scanSpans(spans []span, fn func(line []byte, e *ManifestEntry) error) error {
	for _, s := range spans {
		err := eachLine(l.f, s.start, s.end, func(off int64, line []byte) error {
			return decodeLine(line, fn, func() string { return fmt.Sprintf("the line at byte %d", off) })
		})
		if err != nil {
			return err
		}
	}
	return nil
}
