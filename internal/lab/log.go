package lab

import (
	"os"
	"strings"
)

// MiniupnpdLog returns everything miniupnpd logged since the lab came up,
// across reboots.
func (l *Lab) MiniupnpdLog() string {
	b, err := os.ReadFile(l.path(logFile))
	if err != nil {
		return "(no miniupnpd log: " + err.Error() + ")"
	}
	return string(b)
}

// AddPortMappingCount is how many AddPortMapping SOAP actions miniupnpd has
// handled, successful or not, counted from its log. Tests use it to prove
// that a client does not re-add mappings that are already in place.
func (l *Lab) AddPortMappingCount() int { return l.SOAPActionCount("AddPortMapping") }

// SOAPActionCount is how many SOAP actions named action (AddPortMapping,
// DeletePortMapping, GetGenericPortMappingEntry, ...) miniupnpd has handled,
// for any service version. miniupnpd 2.3.1 logs the SOAPAction header of
// every control request at -d verbosity, before it checks anything, e.g.
//
//	miniupnpd[7199]: SOAPAction: urn:schemas-upnp-org:service:WANIPConnection:2#AddPortMapping
//
// so refused actions count too. (The "AddPortMapping: ext port ..." line
// is not used: secure mode refusals return before it is logged.)
func (l *Lab) SOAPActionCount(action string) int {
	n := 0
	for _, line := range strings.Split(l.MiniupnpdLog(), "\n") {
		_, header, ok := strings.Cut(line, "SOAPAction: ")
		if ok && strings.HasSuffix(strings.Trim(header, `" `), "#"+action) {
			n++
		}
	}
	return n
}
