package upnp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// pinholeRecords are the IPv6 pinholes portfwd opened on one gateway over
// UPnP: WANIPv6FirewallControl:1 has no action that lists pinholes, so the
// router's UniqueID for each is kept here, in its own file of the state
// directory per gateway (upnp-pinholes-<GatewayKey>.json), written
// atomically (forward.WriteFileAtomic) and read only as a regular file of
// bounded size (forward.OpenStateFile). Every pinhole recorded is
// portfwd's own: List reports the ones whose lease has not run out.
//
// The caller serialises access (pinholes.mu); the run lock keeps two
// portfwd processes from writing at once.
type pinholeRecords struct {
	path     string // "" keeps the records in memory only
	file     pinholeFile
	stamp    forward.Stamp // the file as last read or written (refresh)
	warnings []string
}

// pinholeFormat is the version of the file layout; a file of another
// version is set aside like a corrupt one.
const pinholeFormat = 1

// maxPinholeFile bounds the file read: one record is some 300 bytes, and
// a router holds at most a few hundred pinholes.
const maxPinholeFile = 4 << 20

// pinholeFile is the file's layout.
type pinholeFile struct {
	FormatVersion int             `json:"format_version"`
	Gateway       string          `json:"gateway"`
	Pinholes      []pinholeRecord `json:"pinholes"`
}

// pinholeRecord is one pinhole as the router granted it. ID 0 marks a
// port the router left open without a pinhole (its IPv6 firewall is off).
type pinholeRecord struct {
	forward.Mapping           // the key (tcp6/25565), the internal side, the owner tag, the lease granted
	ID              uint16    `json:"unique_id"`
	Expires         time.Time `json:"expires"`
}

// pinholePath is the records file of gateway gw in the state directory dir.
func pinholePath(dir string, gw netip.Addr) string {
	return filepath.Join(dir, "upnp-pinholes-"+GatewayKey(gw)+".json")
}

// openPinholeRecords reads the records at path; "" gives records in memory.
// A state directory that does not exist yet holds none (commands that only
// read do not create it); one that exists is trusted only as
// forward.PrepareStateDir allows.
// A file that cannot be parsed is set aside as path.corrupt with a
// warning, and an invalid record dropped with one; a file that is not a
// regular file, or is too large, is an error that says what to do.
func openPinholeRecords(path string, gw netip.Addr) (*pinholeRecords, error) {
	r := &pinholeRecords{path: path, file: pinholeFile{FormatVersion: pinholeFormat, Gateway: gw.String()}}
	if path == "" {
		return r, nil
	}
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		return r, nil // no state directory yet: nothing recorded; save creates it
	}
	if err := forward.PrepareStateDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return r, r.load()
}

// load reads the file into r, replacing what r held; no file is no
// records.
func (r *pinholeRecords) load() error {
	r.file.Pinholes = nil
	r.stamp = forward.StampOf(r.path)
	raw, err := readPinholeFile(r.path)
	if raw == nil || err != nil {
		return err
	}
	var f pinholeFile
	err = json.Unmarshal(raw, &f)
	if err == nil && f.FormatVersion != pinholeFormat {
		err = fmt.Errorf("format version %d, want %d", f.FormatVersion, pinholeFormat)
	}
	if err != nil {
		return r.setAside(err)
	}
	r.keepValid(f.Pinholes)
	return nil
}

// refresh reads the file again when another run changed it since r read
// or wrote it: a daemon keeps its IGD between passes, and a portfwd apply
// of another config on this host may have opened or closed pinholes in
// between (the run lock keeps them from doing so at once). A stat per
// call; the caller holds the run lock.
func (r *pinholeRecords) refresh() {
	if r.path == "" || forward.StampOf(r.path) == r.stamp {
		return
	}
	if err := r.load(); err != nil {
		r.warnings = append(r.warnings, err.Error())
	}
}

// readPinholeFile is the file's content, nil when there is none.
func readPinholeFile(path string) ([]byte, error) {
	raw, err := forward.ReadStateFile(path, maxPinholeFile)
	switch {
	case errors.Is(err, forward.ErrStateFileTooLarge):
		return nil, fmt.Errorf("the pinhole records %s are larger than portfwd ever writes, so they are not portfwd's; move the file out of the state directory (the pinholes it named lapse with their leases)", path)
	case err != nil:
		return nil, fmt.Errorf("reading the pinhole records %s: %w", path, err)
	}
	return raw, nil
}

// setAside renames an unreadable file out of the way.
func (r *pinholeRecords) setAside(why error) error {
	aside := r.path + ".corrupt"
	if err := os.Rename(r.path, aside); err != nil {
		return fmt.Errorf("setting aside the unreadable pinhole records %s (%v): %w", r.path, why, err)
	}
	r.warnings = append(r.warnings, fmt.Sprintf("pinhole records %s are unreadable (%v); set aside as %s, the pinholes they named are opened again", r.path, why, aside))
	return nil
}

// keepValid keeps the records portfwd could act on: an IPv6 key, an IPv6
// internal host, a port; one per key.
func (r *pinholeRecords) keepValid(recs []pinholeRecord) {
	for i, p := range recs {
		h := p.InternalHost
		switch {
		case p.Family != forward.IPv6 || !h.Is6() || h.Is4In6() || p.ExternalPort == 0 || p.InternalPort == 0:
			r.warnings = append(r.warnings, fmt.Sprintf("pinhole records %s: pinholes[%d] (%s) is not a pinhole portfwd opens; dropped", r.path, i, forward.Printable(p.Key.String())))
		case slices.ContainsFunc(r.file.Pinholes, func(q pinholeRecord) bool { return q.Key == p.Key }):
			r.warnings = append(r.warnings, fmt.Sprintf("pinhole records %s: %s recorded twice; the second dropped", r.path, p.Key))
		default:
			r.file.Pinholes = append(r.file.Pinholes, p)
		}
	}
}

// save writes the records atomically (nothing in memory-only records).
func (r *pinholeRecords) save() error {
	if r.path == "" {
		return nil
	}
	raw, err := json.MarshalIndent(r.file, "", "  ")
	if err != nil {
		return err
	}
	if err := forward.PrepareStateDir(filepath.Dir(r.path)); err != nil {
		return err
	}
	if err := forward.WriteFileAtomic(r.path, ".upnp-pinholes-*.tmp", append(raw, '\n')); err != nil {
		return fmt.Errorf("saving the pinhole records: %w", err)
	}
	r.stamp = forward.StampOf(r.path)
	return nil
}

// get is the record on k.
func (r *pinholeRecords) get(k forward.Key) (pinholeRecord, bool) {
	i := slices.IndexFunc(r.file.Pinholes, func(p pinholeRecord) bool { return p.Key == k })
	if i < 0 {
		return pinholeRecord{}, false
	}
	return r.file.Pinholes[i], true
}

// put records p, replacing the record on its key, and saves.
func (r *pinholeRecords) put(p pinholeRecord) error {
	r.file.Pinholes = slices.DeleteFunc(r.file.Pinholes, func(q pinholeRecord) bool { return q.Key == p.Key })
	r.file.Pinholes = append(r.file.Pinholes, p)
	slices.SortFunc(r.file.Pinholes, func(a, b pinholeRecord) int { return a.Key.Compare(b.Key) })
	return r.save()
}

// drop forgets the record on k and saves; no record is no change.
func (r *pinholeRecords) drop(k forward.Key) error {
	n := len(r.file.Pinholes)
	r.file.Pinholes = slices.DeleteFunc(r.file.Pinholes, func(q pinholeRecord) bool { return q.Key == k })
	if len(r.file.Pinholes) == n {
		return nil
	}
	return r.save()
}

// dropAll forgets every record and saves: the router lost a pinhole, so
// it restarted (or let leases run out), and its UniqueIDs now name other
// pinholes or none. The next pass opens each again with AddPinhole, which
// answers the current UniqueID for one the router still has.
func (r *pinholeRecords) dropAll() error {
	if len(r.file.Pinholes) == 0 {
		return nil
	}
	r.file.Pinholes = nil
	return r.save()
}

// live are the recorded pinholes whose lease has not run out at now, as
// List reports them: the lease is what is left.
func (r *pinholeRecords) live(now time.Time) []forward.Mapping {
	var out []forward.Mapping
	for _, p := range r.file.Pinholes {
		if left := p.Expires.Sub(now).Round(time.Second); left > 0 {
			m := p.Mapping
			m.Lease, m.Enabled = left, true
			out = append(out, m)
		}
	}
	return out
}
