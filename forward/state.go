package forward

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// State is portfwd's record of the mappings it made on gateways whose
// protocol cannot list them (NAT-PMP, PCP). It lives in one JSON file in a
// state directory, held under a lock from Open to Close so two runs cannot
// interleave, and every Save replaces the file atomically (temp file,
// fsync, rename): a run killed at any point leaves the old file or the new
// one, never half of either.
//
// A missing file is an empty state. A corrupt one is set aside (renamed
// with a .corrupt suffix) and reported in Warnings; the backends then
// rebuild what they need from what the gateway confirms.
type State struct {
	Dir      string
	Warnings []string // problems found while opening, for the user

	data   stateFile
	unlock func() error
}

// stateFormat is the version of the file layout; another version is set
// aside like a corrupt file.
const stateFormat = 1

type stateFile struct {
	FormatVersion int            `json:"format_version"`
	Gateways      []GatewayState `json:"gateways"`
}

// GatewayState is what portfwd knows of one gateway speaking one protocol.
type GatewayState struct {
	Protocol string     `json:"protocol"` // "natpmp" or "pcp"
	Gateway  string     `json:"gateway"`  // the gateway's LAN address
	Epoch    uint32     `json:"epoch"`    // seconds since the gateway's epoch began, as last reported
	EpochAt  time.Time  `json:"epoch_at"` // when that was reported
	Entries  []Recorded `json:"entries"`
	// External is the gateway's external address as a mapping's answer
	// last reported it, for protocols with no request that asks for it
	// alone (PCP, RFC 6887 §11.1); empty when unknown.
	External string `json:"external,omitempty"`
}

// Recorded is one mapping portfwd made, as the gateway granted it.
type Recorded struct {
	Mapping               // as requested: the key, the internal side, the owner tag
	GrantedPort uint16    `json:"granted_port"` // the external port the gateway gave
	Expires     time.Time `json:"expires"`      // when the granted lifetime runs out
	Nonce       string    `json:"nonce,omitempty"`
}

// OpenState locks dir (waiting up to wait for another portfwd to finish)
// and reads its state file.
func OpenState(dir string, wait time.Duration) (*State, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	unlock, err := flockWait(filepath.Join(dir, lockName), wait)
	if err != nil {
		return nil, err
	}
	s := &State{Dir: dir, unlock: unlock, data: stateFile{FormatVersion: stateFormat}}
	s.read()
	return s, nil
}

// MemoryState is a State kept in memory only, with no file and no lock:
// Save does nothing. Gateway auto detection probes each protocol with one
// of its own, so probes running at once never share (or write) the file.
func MemoryState() *State { return &State{data: stateFile{FormatVersion: stateFormat}} }

func (s *State) path() string { return filepath.Join(s.Dir, "state.json") }

// read loads the file; anything unreadable is set aside with a warning.
func (s *State) read() {
	raw, err := os.ReadFile(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var f stateFile
	if err == nil {
		err = json.Unmarshal(raw, &f)
	}
	if err == nil && f.FormatVersion != stateFormat {
		err = fmt.Errorf("format version %d, want %d", f.FormatVersion, stateFormat)
	}
	if err != nil {
		aside := s.path() + ".corrupt"
		_ = os.Rename(s.path(), aside)
		s.Warnings = append(s.Warnings, fmt.Sprintf("state file %s is unreadable (%v); set aside as %s, rebuilding from the gateway", s.path(), err, aside))
		return
	}
	s.data = f
}

// Gateway is the record of gateway gw speaking protocol, created empty on
// first use.
func (s *State) Gateway(protocol string, gw netip.Addr) *GatewayState {
	for i := range s.data.Gateways {
		g := &s.data.Gateways[i]
		if g.Protocol == protocol && g.Gateway == gw.String() {
			return g
		}
	}
	s.data.Gateways = append(s.data.Gateways, GatewayState{Protocol: protocol, Gateway: gw.String()})
	return &s.data.Gateways[len(s.data.Gateways)-1]
}

// Save writes the state atomically: a temp file in the same directory,
// fsynced, renamed over the old one, and the directory fsynced.
func (s *State) Save() error {
	if s.Dir == "" {
		return nil // a MemoryState
	}
	raw, err := json.MarshalIndent(s.data, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.Dir, ".state-*.json")
	if err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; cleans up after a failure
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("saving state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path()); err != nil {
		return fmt.Errorf("saving state: %w", err)
	}
	syncDir(s.Dir)
	return nil
}

// Close releases the lock. The state must not be used afterwards.
func (s *State) Close() error {
	if s.unlock == nil {
		return nil
	}
	err := s.unlock()
	s.unlock = nil
	return err
}

// syncDir makes a rename durable; where directories cannot be synced it is
// skipped, the rename itself is still atomic.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Put records m as granted, replacing any record with the same key.
func (g *GatewayState) Put(r Recorded) {
	g.Drop(r.Key)
	g.Entries = append(g.Entries, r)
	slices.SortFunc(g.Entries, func(a, b Recorded) int { return a.Key.Compare(b.Key) })
}

// Drop forgets the record on k.
func (g *GatewayState) Drop(k Key) {
	g.Entries = slices.DeleteFunc(g.Entries, func(r Recorded) bool { return r.Key == k })
}

// Find returns the record on k.
func (g *GatewayState) Find(k Key) (Recorded, bool) {
	for _, r := range g.Entries {
		if r.Key == k {
			return r, true
		}
	}
	return Recorded{}, false
}

// Live lists the records not yet expired at now, as mappings whose Lease
// is the time left.
func (g *GatewayState) Live(now time.Time) []Mapping {
	var out []Mapping
	for _, r := range g.Entries {
		left := r.Expires.Sub(now).Truncate(time.Second)
		if left < time.Second { // expired; a zero Lease would read as permanent
			continue
		}
		m := r.Mapping
		m.Lease, m.Enabled = left, true
		m.AnyExternal = false // a request's flag; listed mappings are observed
		out = append(out, m)
	}
	return out
}

// Restarted observes epoch like Observe and, when the gateway lost its
// state, forgets every record of it (those mappings are gone too) and
// returns the sentence that tells the user; else "".
func (g *GatewayState) Restarted(protocol string, epoch uint32, now time.Time) string {
	before := g.Epoch
	if !g.Observe(epoch, now) {
		return ""
	}
	g.Entries, g.External = nil, ""
	return fmt.Sprintf("the gateway restarted (%s epoch went from %d to %d): every mapping will be re-created", protocol, before, epoch)
}

// Observe notes an epoch the gateway reported now and reports whether the
// gateway lost its state since the last one: an epoch that went backwards,
// or advanced clearly less than the time that passed (RFC 6886 §3.6, RFC
// 6887 §8.5). The first observation loses nothing.
func (g *GatewayState) Observe(epoch uint32, now time.Time) (lost bool) {
	if !g.EpochAt.IsZero() {
		elapsed := now.Sub(g.EpochAt).Seconds()
		expected := float64(g.Epoch) + elapsed*7/8 - 2 // RFC 6886 allows clocks to run 1/8 slow
		lost = epoch < g.Epoch || float64(epoch) < expected
	}
	g.Epoch, g.EpochAt = epoch, now
	return lost
}
