package pcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// maxRecordsSize bounds the state file portfwd reads. A home's records
// are a few kilobytes: one entry is some 450 bytes, and a home router
// holds tens of mappings, rarely hundreds. Even every port of a gateway,
// TCP and UDP (131,070 entries), stays under 60 MB. A larger file is not
// portfwd's, and reading it whole — a link to /dev/zero never ends — could
// exhaust memory.
const maxRecordsSize = 64 << 20

// read loads the file. What cannot be parsed is set aside with a warning,
// and records that could not be acted on are dropped with one; a file
// that cannot be read at all, or must not be, is an error, since it could
// not be replaced either.
func (r *Records) read() error {
	raw, err := r.readFile()
	if raw == nil || err != nil {
		return err
	}
	var f struct {
		FormatVersion int               `json:"format_version"`
		Gateways      []json.RawMessage `json:"gateways"`
	}
	err = json.Unmarshal(raw, &f)
	if err == nil && f.FormatVersion != recordsFormat {
		err = fmt.Errorf("format version %d, want %d", f.FormatVersion, recordsFormat)
	}
	if err != nil {
		return r.setAside(err)
	}
	r.file.Gateways = r.keepValid(f.Gateways)
	return nil
}

// readFile returns the file's content, or nil when there is none. It is
// opened only as a regular file (forward.OpenStateFile: a named pipe would
// hang the run with the lock held) and read only up to maxRecordsSize.
func (r *Records) readFile() ([]byte, error) {
	raw, err := forward.ReadStateFile(r.path(), maxRecordsSize)
	switch {
	case errors.Is(err, forward.ErrStateFileTooLarge):
		return nil, fmt.Errorf("state file %s is larger than the %d MiB portfwd ever writes, so it is not portfwd's records; "+
			"move it out of the state directory, and portfwd rebuilds its records from the gateway", r.path(), maxRecordsSize>>20)
	case err != nil:
		return nil, fmt.Errorf("reading state file %s: %w", r.path(), err)
	}
	return raw, nil
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

// gatewayAsRead is a gatewayRecord as read: its entries each on its own,
// so that one that cannot be decoded is dropped alone. Its Entries hide
// the embedded record's (encoding/json takes the shallower field).
type gatewayAsRead struct {
	gatewayRecord
	Entries []json.RawMessage `json:"entries"`
}

// keepValid decodes each gateway's record and keeps the valid ones with
// their valid entries. A record portfwd could not act on — a protocol it
// does not speak, a port 0, an address that does not parse — would fail
// every later run (a delete it cannot send, exit 3 forever), so it is
// dropped with a warning, and the file is written without it at the next
// save. The mapping it described, if any, lapses on the gateway when its
// lease runs out.
func (r *Records) keepValid(raws []json.RawMessage) []*gatewayRecord {
	var out []*gatewayRecord
	seen := make(map[[2]string]bool) // protocol, gateway
	for i, raw := range raws {
		if string(raw) == "null" {
			continue // an older portfwd's empty slot
		}
		where := fmt.Sprintf("gateways[%d]", i)
		var g gatewayAsRead
		err := json.Unmarshal(raw, &g)
		if err == nil {
			err = checkGateway(&g.gatewayRecord, seen)
		}
		if err != nil {
			r.dropped(where, err)
			continue
		}
		rec := &g.gatewayRecord
		seen[[2]string{rec.Protocol, rec.Gateway}] = true
		rec.Entries = r.keepValidEntries(where, g.Entries, gatewayFamily(rec.Gateway))
		if rec.External != "" && !parses(rec.External) {
			r.dropped(where+".external", fmt.Errorf("%q is not an address", rec.External))
			rec.External = ""
		}
		out = append(out, rec)
	}
	return out
}

// keepValidEntries decodes the entries of the gateway record at where, a
// gateway of family fam, and keeps the valid ones.
func (r *Records) keepValidEntries(where string, raws []json.RawMessage, fam forward.Family) []entry {
	var out []entry
	seen := make(map[forward.Key]bool)
	for i, raw := range raws {
		var e entry
		err := json.Unmarshal(raw, &e)
		if err == nil {
			err = checkEntry(e, seen)
		}
		if err == nil {
			err = checkFamily(e, fam)
		}
		if err != nil {
			r.dropped(fmt.Sprintf("%s.entries[%d]", where, i), err)
			continue
		}
		seen[e.Key] = true
		out = append(out, e)
	}
	return out
}

// dropped notes a record dropped while reading: a warning, and a change
// the next save writes.
func (r *Records) dropped(where string, why error) {
	r.changed = true
	r.warnings = append(r.warnings, fmt.Sprintf("state file %s: dropped %s, which portfwd cannot act on (%v); "+
		"a mapping it recorded lapses on the gateway when its lease runs out", r.path(), where, why))
}

// checkGateway says what is wrong with g, a gateway's record read after
// those whose protocol and gateway are in seen. (A map, not a walk over
// what was kept: the file may be large, and checking it must stay linear.)
func checkGateway(g *gatewayRecord, seen map[[2]string]bool) error {
	switch {
	case g.Protocol != natpmpFacts.name && g.Protocol != pcpFacts.name:
		return fmt.Errorf("protocol %q, want %q or %q", g.Protocol, natpmpFacts.name, pcpFacts.name)
	case !parses(g.Gateway):
		return fmt.Errorf("gateway %q is not an address", g.Gateway)
	}
	if seen[[2]string{g.Protocol, g.Gateway}] {
		return fmt.Errorf("a second record of %s gateway %s", g.Protocol, g.Gateway)
	}
	return nil
}

// checkEntry says what is wrong with e, an entry read after those whose
// keys are in seen:
// what every request about it needs (RFC 6886 §3.3, RFC 6887 §11.1: a
// protocol of the two, an internal port — 0 would mean all of them — and
// an external one) and what the planner needs (one record per key).
func checkEntry(e entry, seen map[forward.Key]bool) error {
	switch {
	case e.Protocol != forward.TCP && e.Protocol != forward.UDP:
		return fmt.Errorf("protocol %q, want tcp or udp", e.Protocol)
	case e.ExternalPort == 0 || e.InternalPort == 0 || e.GrantedPort == 0:
		return fmt.Errorf("%s: a port 0 (external %d, internal %d, granted %d)", e.Key, e.ExternalPort, e.InternalPort, e.GrantedPort)
	case !e.InternalHost.IsValid():
		return fmt.Errorf("%s: no internal host", e.Key)
	}
	if seen[e.Key] {
		return fmt.Errorf("a second record of %s", e.Key)
	}
	return nil
}

// gatewayFamily is the family of the gateway record's address gw, which
// checkGateway has checked: a PCP server on its IPv6 address holds the
// pinholes, one on its IPv4 address the forwards.
func gatewayFamily(gw string) forward.Family {
	a, _ := netip.ParseAddr(gw)
	return forward.FamilyOf(a)
}

// checkFamily says what is wrong with e, recorded for a gateway of family
// fam: a forward held by the IPv6 server, or a pinhole by the IPv4 one,
// would be asked of the wrong server; a pinhole opens to an IPv6
// address.
func checkFamily(e entry, fam forward.Family) error {
	switch {
	case e.Family != fam:
		return fmt.Errorf("%s: recorded for an %s gateway", e.Key, fam)
	case e.Family == forward.IPv6 && forward.FamilyOf(e.InternalHost) != forward.IPv6:
		return fmt.Errorf("%s: internal host %v is not an IPv6 address", e.Key, e.InternalHost)
	}
	return nil
}

// parses reports whether s is an IP address.
func parses(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// staleTempAge is how old a temp file of tempPattern must be before
// removeStaleTemps takes it for one a killed save left. A save lives for a
// write and an fsync, milliseconds; a minute is beyond any on a working
// disk, and runs hold the run lock besides.
const staleTempAge = time.Minute

// removeStaleTemps removes the temp files a save killed between creating
// and renaming left in dir (kill -9 skips the deferred remove): only
// regular files named as a save names them (tempPattern), older than
// staleTempAge.
// It is best effort; a file it cannot remove is left.
func removeStaleTemps(dir string, now time.Time) {
	names, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, d := range names {
		if !isTempName(d.Name()) {
			continue
		}
		path := filepath.Join(dir, d.Name())
		if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && now.Sub(fi.ModTime()) > staleTempAge {
			_ = os.Remove(path)
		}
	}
}

// isTempName reports whether name is one os.CreateTemp makes of
// tempPattern: its prefix, digits, its suffix.
func isTempName(name string) bool {
	prefix, suffix, _ := strings.Cut(tempPattern, "*")
	if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, suffix) || len(name) <= len(prefix)+len(suffix) {
		return false
	}
	return strings.Trim(name[len(prefix):len(name)-len(suffix)], "0123456789") == ""
}
