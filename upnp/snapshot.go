package upnp

import (
	"sync"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// snapshotTTL is how long what List saw stands in for asking the router
// again. An apply lists and then adds within a second or two; a longer gap
// means the table may have changed under us.
const snapshotTTL = 5 * time.Second

// snapshot is the port-mapping table as the last List saw it, kept up to
// date by this IGD's own Add and Delete. Add decides from it whether a
// mapping may be replaced without a GetSpecificPortMappingEntry, one
// request fewer per Add.
type snapshot struct {
	mu    sync.Mutex
	at    time.Time // zero: no snapshot
	byKey map[forward.Key]forward.Mapping
}

// remember replaces the snapshot with a fresh listing.
func (s *snapshot) remember(ms []forward.Mapping) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = time.Now()
	s.byKey = make(map[forward.Key]forward.Mapping, len(ms))
	for _, m := range ms {
		s.byKey[m.Key] = m
	}
}

// lookup returns the mapping on k and whether it is present; known is false
// when there is no fresh snapshot, and the router must be asked.
func (s *snapshot) lookup(k forward.Key) (m forward.Mapping, present, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at.IsZero() || time.Since(s.at) > snapshotTTL {
		return forward.Mapping{}, false, false
	}
	m, present = s.byKey[k]
	return m, present, true
}

// set records a mapping this IGD installed.
func (s *snapshot) set(m forward.Mapping) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.at.IsZero() {
		s.byKey[m.Key] = m
	}
}

// drop records that k is gone.
func (s *snapshot) drop(k forward.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byKey, k)
}

// forget discards the snapshot: after a failed Add the router's state on
// the key is not known.
func (s *snapshot) forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at, s.byKey = time.Time{}, nil
}
