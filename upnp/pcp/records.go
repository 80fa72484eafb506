package pcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
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
// Records takes no file lock: the caller holds the run lock
// (forward.LockRun) around every run that changes a gateway. Backends that
// share one Records serialise their calls on it, so it may be shared.
type Records struct {
	mu       sync.Mutex
	dir      string // "" for MemoryRecords: nothing is written
	file     recordsFile
	warnings []string
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
}

// entry is one mapping portfwd made, as the gateway granted it.
type entry struct {
	forward.Mapping           // as requested: the key, the internal side, the owner tag
	GrantedPort     uint16    `json:"granted_port"` // the external port the gateway gave
	Expires         time.Time `json:"expires"`      // when the granted lifetime runs out
	Nonce           string    `json:"nonce,omitempty"`
}

// OpenRecords reads the records in the state directory dir, creating dir.
// A missing file is empty records. A file that cannot be parsed, or is of
// another format version, is set aside as state.json.corrupt and reported
// by Warnings; the backends then rebuild from what the gateway confirms.
func OpenRecords(dir string) (*Records, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
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

// read loads the file. What cannot be parsed is set aside with a warning;
// a file that cannot be read at all is an error, since it could not be
// replaced either.
func (r *Records) read() error {
	raw, err := os.ReadFile(r.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading state file: %w", err)
	}
	var f recordsFile
	err = json.Unmarshal(raw, &f)
	if err == nil && f.FormatVersion != recordsFormat {
		err = fmt.Errorf("format version %d, want %d", f.FormatVersion, recordsFormat)
	}
	if err != nil {
		return r.setAside(err)
	}
	f.Gateways = slices.DeleteFunc(f.Gateways, func(g *gatewayRecord) bool { return g == nil })
	r.file = f
	return nil
}

// setAside renames an unreadable file out of the way, so that the next
// save does not destroy what a person may want to look at.
func (r *Records) setAside(why error) error {
	aside := r.path() + ".corrupt"
	if err := os.Rename(r.path(), aside); err != nil {
		return fmt.Errorf("setting aside the unreadable state file %s (%v): %w", r.path(), why, err)
	}
	r.warnings = append(r.warnings, fmt.Sprintf(
		"state file %s is unreadable (%v); set aside as %s, rebuilding from the gateway", r.path(), why, aside))
	return nil
}

// Warnings returns the problems found while opening, for the user, and
// forgets them.
func (r *Records) Warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.warnings
	r.warnings = nil
	return w
}

// Save writes the records atomically: a temp file in the same directory,
// fsynced, renamed over the old one, and the directory fsynced.
func (r *Records) Save() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.save()
}

// save is Save with r.mu held.
func (r *Records) save() error {
	if r.dir == "" {
		return nil // MemoryRecords
	}
	raw, err := json.MarshalIndent(r.file, "", "  ")
	if err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	if err := writeAtomic(r.dir, r.path(), append(raw, '\n')); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	return nil
}

// writeAtomic replaces path with data by way of a temp file in dir.
func writeAtomic(dir, path string, data []byte) error {
	tmp, err := os.CreateTemp(dir, ".state-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename; cleans up after a failure
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		syncDir(dir)
	}
	return err
}

// syncDir makes a rename durable; where a directory cannot be synced it is
// skipped, the rename itself is still atomic.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// gateway is the record of gateway gw speaking protocol, created empty on
// first use. r.mu must be held.
func (r *Records) gateway(protocol string, gw netip.Addr) *gatewayRecord {
	for _, g := range r.file.Gateways {
		if g.Protocol == protocol && g.Gateway == gw.String() {
			return g
		}
	}
	g := &gatewayRecord{Protocol: protocol, Gateway: gw.String()}
	r.file.Gateways = append(r.file.Gateways, g)
	return g
}

// put records e, replacing any record on the same key.
func (g *gatewayRecord) put(e entry) {
	g.drop(e.Key)
	g.Entries = append(g.Entries, e)
	slices.SortFunc(g.Entries, func(a, b entry) int { return a.Key.Compare(b.Key) })
}

// drop forgets the record on k.
func (g *gatewayRecord) drop(k forward.Key) {
	g.Entries = slices.DeleteFunc(g.Entries, func(e entry) bool { return e.Key == k })
}

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
	g.Entries = slices.DeleteFunc(g.Entries, func(e entry) bool { return !e.Expires.After(now) })
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
