// Package firewall is the iptables backend: portfwd running on the Linux
// router itself, writing its port forwards as iptables rules through
// github.com/coreos/go-iptables.
//
// Ownership is by chain, as DESIGN.md asks. portfwd writes only into its own
// chains, each reached by one jump from a built-in chain:
//
//	nat    PREROUTING -i <wan> -j PORTFWD-PREROUTING   DNAT per mapping
//	filter FORWARD            -j PORTFWD-FORWARD       ACCEPT per mapping
//
// Every rule also carries -m comment --comment portfwd:<rule> (forward.Tag),
// which List reads back as the mapping's Description. The ACCEPT rule
// matches the connection's original destination port (conntrack
// --ctorigdstport), so two mappings to the same internal port keep separate
// rules and deleting one leaves the other.
//
// Writes are minimal: every rule is checked with iptables -C (Exists) before
// it is added, nothing is ever flushed and re-added, and Delete removes only
// the rules of the one mapping. Teardown removes the jumps and the chains
// and nothing else. Foreign DNAT rules in nat PREROUTING are listed as
// foreign mappings, so Add over one is a *forward.ConflictError.
//
// iptables rules have no lease: every mapping is permanent (lease 0).
// IPv4 only; hairpin NAT (LAN clients using the public address) is not
// written yet.
package firewall
