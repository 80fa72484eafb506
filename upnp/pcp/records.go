package pcp

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// Records is portfwd's record of the mappings it made over NAT-PMP and PCP,
// per gateway and protocol: neither protocol can list a gateway's mappings,
// so List answers from here. They live in one JSON file, state.json in the
// state directory, and every save replaces the file atomically (temp file,
// fsync, rename, directory fsync): a run killed at any point leaves the old
// file or the new one, never half of either.
//
// A run that changes nothing writes nothing: the backends save only when
// something that matters changed (changed), so plan, status and check
// leave the file as it was.
//
// The state directory is trusted only as forward.PrepareStateDir allows,
// and the file is read only as a regular file of bounded size
// (readFile); a record in it that portfwd could not act on is dropped
// with a warning (keepValid), never left to fail every later run.
//
// Records takes no file lock: the caller holds the run lock
// (forward.LockRun) around every run that changes a gateway. Backends that
// share one Records serialise their calls on it, so it may be shared.
type Records struct {
	mu       sync.Mutex
	dir      string // "" for MemoryRecords: nothing is written
	file     recordsFile
	warnings []string
	// changed: records were dropped while reading; the file is written
	// without them at the next save.
	changed bool
}

// recordsName is the file's name in the state directory. It and the layout
// below are those the state file had when it lived in package forward, so
// a file written by an older portfwd is read after an upgrade.
const recordsName = "state.json"

// recordsFormat is the version of the file layout; a file of another
// version is set aside like a corrupt one.
const recordsFormat = 1

// recordsFile is the file's layout.
type recordsFile struct {
	FormatVersion int              `json:"format_version"`
	Gateways      []*gatewayRecord `json:"gateways"`
}

// gatewayRecord is what portfwd knows of one gateway speaking one protocol.
type gatewayRecord struct {
	Protocol string    `json:"protocol"` // "natpmp" or "pcp"
	Gateway  string    `json:"gateway"`  // the gateway's LAN address
	Epoch    uint32    `json:"epoch"`    // the gateway's epoch time, as last reported
	EpochAt  time.Time `json:"epoch_at"` // when it was reported; zero: never
	Entries  []entry   `json:"entries"`
	// External is the gateway's external address as a mapping's answer
	// last reported it, for PCP, which has no request that asks for it
	// alone (RFC 6887 §11.1); empty when unknown.
	External string `json:"external,omitempty"`

	// changed: something that matters changed since the record was read
	// or written (see Backend.observe for when an epoch does).
	changed bool
}

// entry is one mapping portfwd made, as the gateway granted it.
type entry struct {
	forward.Mapping           // as requested: the key, the internal side, the owner tag
	GrantedPort     uint16    `json:"granted_port"` // the external port the gateway gave
	Expires         time.Time `json:"expires"`      // when the granted lifetime runs out
	Nonce           string    `json:"nonce,omitempty"`
}

// OpenRecords reads the records in the state directory dir, creating dir;
// a directory other users can write is refused (forward.PrepareStateDir).
// A missing file is empty records. A file that cannot be parsed, or is of
// another format version, is set aside as state.json.corrupt and reported
// by Warnings; the backends then rebuild from what the gateway confirms.
// A record portfwd could not act on is dropped, and reported too. A file
// that is not a regular file, or is larger than portfwd ever writes, is
// refused: the error says what to do. Temp files a killed save left
// behind are removed.
func OpenRecords(dir string) (*Records, error) {
	if err := forward.PrepareStateDir(dir); err != nil {
		return nil, err
	}
	removeStaleTemps(dir, time.Now())
	r := &Records{dir: dir, file: recordsFile{FormatVersion: recordsFormat}}
	if err := r.read(); err != nil {
		return nil, err
	}
	return r, nil
}

// MemoryRecords are records kept in memory only: Save writes nothing.
// Auto detection opens every protocol at once on trial, each on records of
// its own, so the probes never write (or share) the file.
func MemoryRecords() *Records {
	return &Records{file: recordsFile{FormatVersion: recordsFormat}}
}

// path is the file's path.
func (r *Records) path() string { return filepath.Join(r.dir, recordsName) }

// Warnings returns the problems found while opening, for the user, and
// forgets them.
func (r *Records) Warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.warnings
	r.warnings = nil
	return w
}

// Save writes the records atomically, changed or not: a temp file in the
// same directory, fsynced, renamed over the old one, and the directory
// fsynced.
func (r *Records) Save() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.write()
}

// saveChanged writes the records when something that matters changed
// since they were read or last written, and otherwise leaves the file
// alone, so that a run that changes nothing writes nothing. r.mu must be
// held.
func (r *Records) saveChanged() error {
	if !r.dirty() {
		return nil
	}
	return r.write()
}

// dirty reports whether anything changed that the file does not hold yet.
func (r *Records) dirty() bool {
	return r.changed || slices.ContainsFunc(r.file.Gateways, func(g *gatewayRecord) bool { return g.changed })
}

// write is Save with r.mu held.
func (r *Records) write() error {
	if r.dir == "" {
		return nil // MemoryRecords
	}
	raw, err := json.MarshalIndent(r.file, "", "  ")
	if err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	if err := forward.WriteFileAtomic(r.path(), tempPattern, append(raw, '\n')); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	r.changed = false
	for _, g := range r.file.Gateways {
		g.changed = false
	}
	return nil
}

// tempPattern names the temp files of a save (os.CreateTemp puts digits
// for the star); removeStaleTemps removes the ones a killed run left.
const tempPattern = ".state-*.json"

// gateway is the record of gateway gw speaking protocol, created empty on
// first use. r.mu must be held.
func (r *Records) gateway(protocol string, gw netip.Addr) *gatewayRecord {
	if g := r.lookup(protocol, gw); g != nil {
		return g
	}
	g := &gatewayRecord{Protocol: protocol, Gateway: gw.String()}
	r.file.Gateways = append(r.file.Gateways, g)
	return g
}

// lookup is the record of gateway gw speaking protocol, or nil: unlike
// gateway, it makes none. r.mu must be held.
func (r *Records) lookup(protocol string, gw netip.Addr) *gatewayRecord {
	for _, g := range r.file.Gateways {
		if g.Protocol == protocol && g.Gateway == gw.String() {
			return g
		}
	}
	return nil
}

// put records e, replacing any record on the same key.
func (g *gatewayRecord) put(e entry) {
	g.drop(e.Key)
	g.Entries = append(g.Entries, e)
	slices.SortFunc(g.Entries, func(a, b entry) int { return a.Key.Compare(b.Key) })
	g.changed = true
}

// drop forgets the record on k.
func (g *gatewayRecord) drop(k forward.Key) {
	g.forget(func(e entry) bool { return e.Key == k })
}

// forget drops the records gone says are, noting a change if there were
// any.
func (g *gatewayRecord) forget(gone func(entry) bool) {
	n := len(g.Entries)
	if g.Entries = slices.DeleteFunc(g.Entries, gone); len(g.Entries) != n {
		g.changed = true
	}
}

// holds reports whether the record holds anything a restart of the
// gateway would take away: mappings, or the external address.
func (g *gatewayRecord) holds() bool { return len(g.Entries) > 0 || g.External != "" }

// find returns the record on k.
func (g *gatewayRecord) find(k forward.Key) (entry, bool) {
	i := slices.IndexFunc(g.Entries, func(e entry) bool { return e.Key == k })
	if i < 0 {
		return entry{}, false
	}
	return g.Entries[i], true
}

// prune forgets the records whose lifetime ran out by now.
func (g *gatewayRecord) prune(now time.Time) {
	g.forget(func(e entry) bool { return !e.Expires.After(now) })
}

// live lists the records not yet expired at now, as observed mappings
// whose Lease is the time left.
func (g *gatewayRecord) live(now time.Time) []forward.Mapping {
	var out []forward.Mapping
	for _, e := range g.Entries {
		left := e.Expires.Sub(now).Truncate(time.Second)
		if left < time.Second { // expired; a zero Lease would read as permanent
			continue
		}
		m := e.Mapping
		m.Lease, m.Enabled = left, true
		m.AnyExternal = false // a request's flag; listed mappings are observed
		out = append(out, m)
	}
	return out
}
