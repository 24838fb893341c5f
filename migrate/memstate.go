package migrate

import (
	"sync"
	"time"
)

// memState is a State held in memory: a dry run's, and tests'.
type memState struct {
	mu      sync.Mutex
	folders map[Side]map[string]*FolderState
	running time.Time
}

var _ State = (*memState)(nil)

// NewMemState returns an empty State that lives as long as the value.
func NewMemState() State {
	return &memState{folders: map[Side]map[string]*FolderState{SideSource: {}, SideDest: {}}}
}

func (s *memState) get(side Side, name string) *FolderState {
	fs := s.folders[side][name]
	if fs == nil {
		fs = newFolderState(0)
		s.folders[side][name] = fs
	}
	return fs
}

func (s *memState) Folder(side Side, name string) (*FolderState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(side, name).clone(), nil
}

func (s *memState) Mark(side Side, name string) (uint32, uint32, uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.get(side, name)
	return fs.Validity, fs.UIDNext, fs.Messages, nil
}

func (s *memState) SetMark(side Side, name string, validity, uidNext, messages uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.get(side, name)
	fs.Validity, fs.UIDNext, fs.Messages = validity, uidNext, messages
	return nil
}

func (s *memState) Reset(side Side, name string, validity uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.folders[side][name] = newFolderState(validity)
	return nil
}

func (s *memState) Add(recs []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.get(r.Side, r.Folder).Put(r)
	}
	if len(recs) > 0 {
		s.running = time.Now()
	}
	return nil
}

func (s *memState) Begin() (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.running
	s.running = time.Now()
	return last, nil
}

func (s *memState) Finish() error {
	s.mu.Lock()
	s.running = time.Time{}
	s.mu.Unlock()
	return nil
}

func (s *memState) Close() error { return nil }

func (s *memState) Forget(recs []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.get(r.Side, r.Folder).Forget(r.ID)
	}
	return nil
}

func (s *memState) ModSeq(side Side, name string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(side, name).modSeq, nil
}

func (s *memState) SetModSeq(side Side, name string, modseq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.get(side, name).modSeq = modseq
	return nil
}
