package firewall

import (
	"github.com/coreos/go-iptables/iptables"
)

// ipt is the part of *iptables.IPTables the backend uses, so tests can
// fake iptables at the edge. List returns `iptables -t <table> -S <chain>`
// lines.
type ipt interface {
	ChainExists(table, chain string) (bool, error)
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

// The chains portfwd owns, and the built-in chain that jumps to each.
const (
	chainDNAT    = "PORTFWD-PREROUTING"
	chainForward = "PORTFWD-FORWARD"
)

// hook is one of portfwd's chains and its one jump from a built-in chain.
type hook struct {
	table, builtin, chain string
}

// jump is the rule in the built-in chain that reaches the chain. DNAT is
// limited to packets arriving on the WAN interface, so LAN traffic to the
// same ports is left alone.
func (h hook) jump(wan string) []string {
	if h.chain == chainDNAT {
		return []string{"-i", wan, "-j", h.chain}
	}
	return []string{"-j", h.chain}
}

// hooks lists portfwd's chains in the order they are created.
var hooks = []hook{
	{table: "filter", builtin: "FORWARD", chain: chainForward},
	{table: "nat", builtin: "PREROUTING", chain: chainDNAT},
}
