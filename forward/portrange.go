package forward

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of ports, First <= Last. A single port has
// First == Last. The zero value is "no ports" and is never valid in a rule.
type PortRange struct{ First, Last uint16 }

// Len is the number of ports in r.
func (r PortRange) Len() int {
	if r.First == 0 || r.Last < r.First {
		return 0
	}
	return int(r.Last) - int(r.First) + 1
}

// String renders r as "25565" or "2456-2457", the form ParsePortRange reads.
func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Overlaps reports whether r and o share at least one port.
func (r PortRange) Overlaps(o PortRange) bool {
	return r.First <= o.Last && o.First <= r.Last
}

// Contains reports whether port p lies in r.
func (r PortRange) Contains(p uint16) bool { return r.First <= p && p <= r.Last }

// ParsePortRange reads "25565" or "2456-2457". Ports must lie in 1-65535 and a
// range must not be reversed.
func ParsePortRange(s string) (PortRange, error) {
	s = strings.TrimSpace(s)
	lo, hi, isRange := strings.Cut(s, "-")
	first, err := parsePort(s, lo)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{first, first}, nil
	}
	last, err := parsePort(s, hi)
	if err != nil {
		return PortRange{}, err
	}
	if last < first {
		return PortRange{}, fmt.Errorf("reversed range %q: write %d-%d", s, last, first)
	}
	return PortRange{first, last}, nil
}

// parsePort reads one port of the text whole (for the error message).
func parsePort(whole, s string) (uint16, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseUint(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) || err == nil && (n == 0 || n > 65535) {
		return 0, fmt.Errorf("port %s is out of range 1-65535", s)
	}
	if err != nil {
		return 0, fmt.Errorf("invalid port %q: want a number 1-65535 or a range like 2456-2457", whole)
	}
	return uint16(n), nil
}
