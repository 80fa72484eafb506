// Package firewall is the iptables backend: portfwd running on the Linux
// router itself, writing its port forwards as iptables rules through
// github.com/coreos/go-iptables.
//
// Ownership is by chain, as DESIGN.md asks. portfwd writes only into its own
// chains, each reached by one jump from a built-in chain:
//
//	filter FORWARD      -j PORTFWD-FORWARD                          ACCEPT per mapping
//	nat    PREROUTING   -i <wan> -j PORTFWD-PREROUTING              DNAT per mapping
//	nat    PREROUTING   ! -i <wan> -m addrtype --dst-type LOCAL
//	                    -j PORTFWD-HAIRPIN                          DNAT per hairpin mapping
//	nat    POSTROUTING  -j PORTFWD-POSTROUTING                      MASQUERADE per hairpin mapping
//
// The hairpin pair exists only once a mapping asks for hairpin: LAN clients
// reaching the forward through the router's public address. Its DNAT
// matches LAN traffic to any of the router's own addresses, so a new WAN
// address from the ISP needs no rewrite; its MASQUERADE, limited to the
// internal host's own subnet and to DNATed connections, makes the host
// answer through the router instead of straight back to a client that
// expects the public address.
//
// Every rule also carries -m comment --comment pf:<config>:<rule> (forward.Tag),
// which List reads back as the mapping's Description. The ACCEPT and
// MASQUERADE rules match the connection's original destination port
// (conntrack --ctorigdstport), so two mappings to the same internal port
// keep separate rules and deleting one leaves the other.
//
// Writes are minimal: nothing is ever flushed and re-added, Delete removes
// only the rules of the one mapping, and Teardown the jumps and chains and
// nothing else. List reads the chains involved once (a view); Add and
// Delete work from that view and keep it current, so a pass reads nothing
// more. A pass through forward.Apply writes all its changes with one
// iptables-restore --noflush (the Firewall is a forward.Batcher): the same
// rules Add and Delete would write with an iptables call each, staged as
// the lines of one script, run by the xtables multi-binary the iptables
// command is (so the flavour is the same), or else by the iptables-restore
// beside it. If the script fails, Apply makes the changes one at a time. A mapping whose jump
// or ACCEPT rule has gone is listed disabled, so the next apply mends it.
// Foreign DNAT rules in nat PREROUTING are listed as foreign mappings, so
// Add over one is a *forward.ConflictError.
//
// iptables rules have no lease: every mapping is permanent. Every tagged
// rule in portfwd's chains is this router's portfwd's, whichever LAN host
// it forwards to (Properties.Local).
//
// IPv6 mappings are pinholes, written with ip6tables of the same flavour
// when there is one (Properties.IPv6; tables.go, pinhole.go): an ACCEPT
// per pinhole in ip6tables' filter PORTFWD-FORWARD, one jump first in
// FORWARD, no NAT and no hairpin. Each family has its own view and its own
// -restore: a pass with both is one iptables-restore and one
// ip6tables-restore, and Teardown removes portfwd's chains from both.
//
// On the router, the backend also knows which LAN hosts the router can
// reach (its LAN-side networks and the routes through them): it is a
// forward.HostChecker, so a rule forwarding to a host on none of them is
// warned of before any change, and check names it as the cause (reach.go).
package firewall
