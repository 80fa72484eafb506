package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/portfwd/portfwd/forward"
)

// rule is one line of `iptables -S`: "-A CHAIN <args...>".
type rule struct {
	chain string
	args  []string
}

// parseRule splits one `iptables -S` line. Lines other than rules ("-P",
// "-N") are an error the caller skips.
func parseRule(line string) (rule, error) {
	tokens, err := splitArgs(line)
	if err != nil {
		return rule{}, err
	}
	if len(tokens) < 2 || tokens[0] != "-A" {
		return rule{}, fmt.Errorf("not a rule: %q", line)
	}
	return rule{chain: tokens[1], args: tokens[2:]}, nil
}

// splitArgs splits like iptables-save quotes: words separated by blanks, a
// word with blanks in double quotes, and within quotes \" and \\ escaped
// (xtables' save_string).
func splitArgs(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote, inWord = !inQuote, true
		case !inQuote && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			if inWord {
				out, inWord = append(out, cur.String()), false
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// opt is the value following flag, and whether the flag is present. A
// negated flag ("! --dport 22") counts as absent with negated set.
func (r rule) opt(flag string) (value string, ok, negated bool) {
	for i, a := range r.args {
		if a != flag || i+1 >= len(r.args) {
			continue
		}
		if i > 0 && r.args[i-1] == "!" {
			return "", false, true
		}
		return r.args[i+1], true, false
	}
	return "", false, false
}

// target is the rule's -j.
func (r rule) target() string {
	t, _, _ := r.opt("-j")
	return t
}

// protocol is the rule's -p as a forward.Protocol.
func (r rule) protocol() (forward.Protocol, bool) {
	p, ok, _ := r.opt("-p")
	if !ok {
		return "", false
	}
	proto, err := forward.ParseProtocol(p)
	return proto, err == nil
}

// port reads a single port option (--dport, --ctorigdstport); ranges are
// not a mapping.
func (r rule) port(flag string) (uint16, bool) {
	v, ok, _ := r.opt(flag)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 16)
	return uint16(n), err == nil && n != 0
}

// comment is the rule's -m comment text, "" without one.
func (r rule) comment() string {
	c, _, _ := r.opt("--comment")
	return c
}

// hasNegation reports a "!" anywhere: such a rule matches more than one
// external port, which a forward.Mapping cannot say.
func (r rule) hasNegation() bool {
	for _, a := range r.args {
		if a == "!" {
			return true
		}
	}
	return false
}

// mapping reads a DNAT rule as the port forward it makes: protocol,
// --dport, --to-destination host[:port] and the comment. ok is false for any
// rule that is not one port forwarded to one host and port.
func (r rule) mapping() (m forward.Mapping, ok bool) {
	if r.target() != "DNAT" || r.hasNegation() {
		return m, false
	}
	proto, ok := r.protocol()
	if !ok {
		return m, false
	}
	ext, ok := r.port("--dport")
	if !ok {
		return m, false
	}
	to, ok, _ := r.opt("--to-destination")
	if !ok {
		return m, false
	}
	host, port, ok := parseDestination(to, ext)
	if !ok {
		return m, false
	}
	return forward.Mapping{Key: forward.Key{Protocol: proto, ExternalPort: ext},
		InternalHost: host, InternalPort: port, Description: r.comment(), Enabled: true}, true
}

// parseDestination reads DNAT's --to-destination: "ip", "ip:port" or
// "ip:port-port" where both ends are equal. Without a port the external one
// is kept (iptables-extensions(8), DNAT).
func parseDestination(s string, ext uint16) (netip.Addr, uint16, bool) {
	hostPart, portPart, hasPort := strings.Cut(s, ":")
	host, err := netip.ParseAddr(hostPart)
	if err != nil || !host.Is4() {
		return netip.Addr{}, 0, false
	}
	if !hasPort {
		return host, ext, true
	}
	lo, hi, isRange := strings.Cut(portPart, "-")
	if isRange && lo != hi {
		return netip.Addr{}, 0, false
	}
	n, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || n == 0 {
		return netip.Addr{}, 0, false
	}
	return host, uint16(n), true
}
