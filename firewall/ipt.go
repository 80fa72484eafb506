package firewall

import (
	"github.com/coreos/go-iptables/iptables"
)

// ipt is the part of *iptables.IPTables the backend uses, so tests can
// fake iptables at the edge. List returns `iptables -t <table> -S <chain>`
// lines; ListChains the names of a table's chains.
type ipt interface {
	ListChains(table string) ([]string, error)
	NewChain(table, chain string) error
	ClearChain(table, chain string) error
	DeleteChain(table, chain string) error
	Exists(table, chain string, rulespec ...string) (bool, error)
	Append(table, chain string, rulespec ...string) error
	Insert(table, chain string, pos int, rulespec ...string) error
	Delete(table, chain string, rulespec ...string) error
	List(table, chain string) ([]string, error)
}

var _ ipt = (*iptables.IPTables)(nil)

// The chains portfwd owns.
const (
	chainForward = "PORTFWD-FORWARD"     // filter: ACCEPT per mapping
	chainDNAT    = "PORTFWD-PREROUTING"  // nat: DNAT per mapping, for traffic from the WAN
	chainHairpin = "PORTFWD-HAIRPIN"     // nat: DNAT per hairpin mapping, for LAN traffic to the router
	chainSNAT    = "PORTFWD-POSTROUTING" // nat: MASQUERADE per hairpin mapping
)

// hook is one of portfwd's chains and its one jump from a built-in chain.
type hook struct {
	table, builtin, chain string
}

// The hooks: forwarding and DNAT for every mapping, the hairpin pair only
// once a mapping asks for hairpin.
var (
	hookForward = hook{table: "filter", builtin: "FORWARD", chain: chainForward}
	hookDNAT    = hook{table: "nat", builtin: "PREROUTING", chain: chainDNAT}
	hookHairpin = hook{table: "nat", builtin: "PREROUTING", chain: chainHairpin}
	hookSNAT    = hook{table: "nat", builtin: "POSTROUTING", chain: chainSNAT}
)

// hooks lists portfwd's chains in iptables in the order they are created;
// Teardown removes them in reverse. hooks6 are its chains in ip6tables:
// PORTFWD-FORWARD alone, its jump first in FORWARD as on IPv4.
var (
	hooks  = []hook{hookForward, hookDNAT, hookHairpin, hookSNAT}
	hooks6 = []hook{hookForward}
)

// jump is the rule in the built-in chain that reaches the chain, written
// in the order `iptables -S` prints it back.
//
// DNAT from the WAN is limited to packets arriving on the WAN interface, so
// LAN traffic to the same ports is left alone. Hairpin DNAT takes the other
// side: packets from any other interface addressed to one of the router's
// own addresses (addrtype LOCAL), so it keeps working when the ISP hands
// out a new WAN address, with no rule naming it.
func (h hook) jump(wan string) []string {
	switch h.chain {
	case chainDNAT:
		return []string{"-i", wan, "-j", h.chain}
	case chainHairpin:
		return []string{"!", "-i", wan, "-m", "addrtype", "--dst-type", "LOCAL", "-j", h.chain}
	}
	return []string{"-j", h.chain}
}
