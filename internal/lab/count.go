package lab

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// countTable is the nftables table of the router's connection counter. It
// is not one of miniupnpd's chains, so a Reboot keeps it and its count.
const countTable = "labcount"

// CountConnections starts counting the TCP connections the router accepts
// on miniupnpd's HTTP port (descriptions and SOAP control requests), with
// an nftables counter on new connections in the router namespace: a count
// of the load on the router independent of miniupnpd's log. Read it with
// ConnectionCount.
func (l *Lab) CountConnections(ctx context.Context) error {
	rules := fmt.Sprintf(`table inet %[1]s {
	counter http { }
	chain input {
		type filter hook input priority -10; policy accept;
		tcp dport %[2]d ct state new counter name "http"
	}
}
`, countTable, HTTPPort)
	cmd := l.CommandContext(ctx, Router, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("adding the connection counter: %w: %s", err, out)
	}
	return nil
}

// packetsRe finds the packet count in `nft list counter`.
var packetsRe = regexp.MustCompile(`packets (\d+)`)

// ConnectionCount is how many connections to miniupnpd's HTTP port the
// router has accepted since CountConnections.
func (l *Lab) ConnectionCount(ctx context.Context) (int, error) {
	out, err := l.CommandContext(ctx, Router, "nft", "list", "counter", "inet", countTable, "http").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("reading the connection counter: %w: %s", err, out)
	}
	m := packetsRe.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("reading the connection counter: no packet count in %q", out)
	}
	return strconv.Atoi(string(m[1]))
}

// ForwardCount is how many port forwards miniupnpd has in place: the DNAT
// rules of its prerouting chain, read from nftables, not from miniupnpd.
func (l *Lab) ForwardCount(ctx context.Context) (int, error) {
	out, err := l.CommandContext(ctx, Router, "nft", "list", "chain", "inet", "filter", miniupnpdChains[1]).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("listing %s: %w: %s", miniupnpdChains[1], err, out)
	}
	return strings.Count(string(out), " dnat "), nil
}
