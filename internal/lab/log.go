package lab

import (
	"fmt"
	"maps"
	"os"
	"slices"
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
func (l *Lab) SOAPActionCount(action string) int { return l.soapActions()[action] }

// SOAPRequestCount is how many SOAP control requests of any action
// miniupnpd has handled, counted from its log as SOAPActionCount counts
// one action: the load a client puts on the router.
func (l *Lab) SOAPRequestCount() int {
	n := 0
	for _, c := range l.soapActions() {
		n += c
	}
	return n
}

// soapActions counts the SOAPAction lines of miniupnpd's log by action.
func (l *Lab) soapActions() map[string]int {
	counts := map[string]int{}
	for _, line := range strings.Split(l.MiniupnpdLog(), "\n") {
		_, header, ok := strings.Cut(line, "SOAPAction: ")
		if !ok {
			continue
		}
		_, action, _ := strings.Cut(strings.Trim(header, `" `), "#")
		counts[action]++
	}
	return counts
}

// SOAPActions is how many SOAP requests of each action miniupnpd has
// handled, as "GetSpecificPortMappingEntry×12 GetExternalIPAddress×1",
// sorted by action, for test logs.
func (l *Lab) SOAPActions() string {
	counts := l.soapActions()
	var out []string
	for _, a := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, fmt.Sprintf("%s×%d", a, counts[a]))
	}
	return strings.Join(out, " ")
}
