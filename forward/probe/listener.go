package probe

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/portfwd/portfwd/forward"
)

// Binding is one socket listening on a port of this machine, with the
// process that owns it when portfwd is allowed to see it.
type Binding struct {
	Protocol forward.Protocol `json:"protocol"`
	// Local is the address as bound: 0.0.0.0:25565, 127.0.0.1:25565,
	// [::]:25565, or an IPv4-mapped address for a dual-stack socket.
	Local netip.AddrPort `json:"local"`
	// PID is 0 when the owner is not visible: another user's process
	// while portfwd is not root, or a process in another PID namespace.
	PID int `json:"pid,omitempty"`
	// Command is the owner's command line, arguments joined by spaces and
	// truncated for display; "" when unknown.
	Command string `json:"command,omitempty"`
	// Name is the owner's short name (/proc/<pid>/comm); "" when unknown.
	Name string `json:"name,omitempty"`
}

// Reachable reports whether b accepts traffic the router forwards to lan,
// this machine's LAN address: a wildcard bind or exactly lan, never
// loopback. An invalid lan means unknown, and only a wildcard qualifies.
func (b Binding) Reachable(lan netip.Addr) bool {
	a := b.Local.Addr().Unmap()
	lan = lan.Unmap().WithZone("")
	switch {
	case a.IsLoopback():
		return false
	case a.IsUnspecified():
		// 0.0.0.0 takes IPv4 only. On Linux :: takes IPv4 too unless the
		// server set IPV6_V6ONLY, which /proc/net does not show; the
		// default (net.ipv6.bindv6only=0) is dual-stack, so trust it.
		return a.Is6() || !lan.IsValid() || lan.Is4()
	}
	return lan.IsValid() && a == lan
}

// LocalReport is the local layer's verdict on one rule: OK when something
// reachable from the router is bound to the internal port.
type LocalReport struct {
	OK       bool      `json:"ok"`
	Message  string    `json:"message"`
	Fix      string    `json:"fix,omitempty"` // what to do, when not OK
	Bindings []Binding `json:"bindings"`
}

// DescribeLocal judges the bindings Bindings found for one rule's internal
// port, and says in one sentence what is wrong (Message) and what to do
// (Fix), or who serves the port. lan is the address the router forwards
// to.
func DescribeLocal(p forward.Protocol, port uint16, lan netip.Addr, bs []Binding) LocalReport {
	key := fmt.Sprintf("%s/%d", p, port)
	r := LocalReport{Bindings: bs}
	if len(bs) == 0 {
		r.Message, r.Fix = fmt.Sprintf("nothing is bound to %s on this machine", key), "start the server"
		return r
	}
	for _, b := range bs {
		if b.Reachable(lan) {
			r.OK = true
			r.Message = fmt.Sprintf("%s is served by %s", key, servedBy(b))
			return r
		}
	}
	r.Message, r.Fix = unreachableMessage(key, netip.AddrPortFrom(lan, port), bs)
	return r
}

// unreachableMessage explains bindings that exist but that the router's
// forwarded traffic cannot arrive at: loopback ones, ones on an address
// other than lan (a VPN or container interface, an old DHCP lease), or,
// for an IPv6 lan, IPv4 sockets; and what to do.
func unreachableMessage(key string, to netip.AddrPort, bs []Binding) (msg, fix string) {
	lan := to.Addr()
	fix = "make the server listen on 0.0.0.0"
	if forward.FamilyOf(lan) == forward.IPv6 {
		fix = "make the server listen on :: (every IPv4 and IPv6 address)"
	}
	if lan.IsValid() {
		fix += " or " + lan.Unmap().String()
	}
	where := fmt.Sprintf("%s is bound to %s only, by %s", key, boundAddrs(bs), owners(bs))
	switch {
	case forward.FamilyOf(lan) == forward.IPv6 && ipv4Only(bs) && !allLoopback(bs):
		return fmt.Sprintf("%s: an IPv4 socket takes no IPv6, so nothing arrives at %s", where, to), fix
	case allLoopback(bs):
		return where + ": the router cannot reach it", fix
	case forward.FamilyOf(lan) == forward.IPv6:
		return fmt.Sprintf("%s, not to %s, the address the router's pinhole opens: nothing from outside reaches it",
			where, lan), fix
	case lan.IsValid():
		return fmt.Sprintf("%s, not to %s, the LAN address the router forwards to: the router cannot reach it",
			where, lan.Unmap()), fix
	}
	return where + ": the router reaches it only if it forwards to that address", fix
}

// ipv4Only reports whether every binding is an IPv4 socket (0.0.0.0 or an
// IPv4 address), which takes no IPv6.
func ipv4Only(bs []Binding) bool {
	for _, b := range bs {
		if !b.Local.Addr().Is4() {
			return false
		}
	}
	return len(bs) > 0
}

// allLoopback reports whether every binding is on a loopback address.
func allLoopback(bs []Binding) bool {
	for _, b := range bs {
		if !b.Local.Addr().Unmap().IsLoopback() {
			return false
		}
	}
	return true
}

// boundAddrs lists the distinct addresses of bs, IPv4-mapped ones shown as
// the IPv4 address users recognise.
func boundAddrs(bs []Binding) string {
	var addrs []string
	for _, b := range bs {
		addrs = appendNew(addrs, b.Local.Addr().Unmap().String())
	}
	return joinAnd(addrs)
}

// owners names the distinct processes that own bs.
func owners(bs []Binding) string {
	var names []string
	for _, b := range bs {
		names = appendNew(names, owner(b))
	}
	return joinAnd(names)
}

// owner names b's process briefly: "java (pid 4242)".
func owner(b Binding) string {
	switch {
	case b.PID == 0:
		return "a process portfwd cannot see (run it as root to name it)"
	case b.Name == "":
		return fmt.Sprintf("pid %d", b.PID)
	}
	return fmt.Sprintf("%s (pid %d)", b.Name, b.PID)
}

// servedBy names b's process with its command line, which tells apart two
// servers of the same program: "java (pid 4242, /usr/bin/java -jar server.jar)".
func servedBy(b Binding) string {
	if b.PID == 0 || b.Command == "" {
		return owner(b)
	}
	if b.Name == "" {
		return fmt.Sprintf("pid %d (%s)", b.PID, b.Command)
	}
	return fmt.Sprintf("%s (pid %d, %s)", b.Name, b.PID, b.Command)
}

// appendNew appends s to list unless it is already there.
func appendNew(list []string, s string) []string {
	for _, have := range list {
		if have == s {
			return list
		}
	}
	return append(list, s)
}

// joinAnd joins items as prose: "a", "a and b", "a, b and c".
func joinAnd(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
