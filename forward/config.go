package forward

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// Config is a parsed, validated config file: the gateway to talk to and the
// rules whose forwards it must hold.
type Config struct {
	File string
	// Name tags the config's forwards on the router (Tag): the name: key,
	// else DefaultConfigName(File).
	Name        string
	Gateway     GatewaySettings
	ProbeServer ProbeServer
	Rules       []Rule
}

// ProbeServer is the outside vantage `portfwd check` asks to probe the
// home's public address: a `portfwd probe-server` on a VPS or a friend's
// machine. The zero value means none.
type ProbeServer struct {
	URL   string // http(s)://host:port
	Token string // shared secret the server may require
}

// GatewaySettings is the config's gateway section: how to reach the gateway.
type GatewaySettings struct {
	Backend string        // "auto" when omitted; see backendNames
	Address string        // "" = discover
	Lease   time.Duration // 1h when omitted; 0 = permanent
	// WANInterface is the interface forwards arrive on, for the iptables
	// backend; "" means the interface of the default route.
	WANInterface string
	// Hairpin turns hairpin NAT on for every rule (iptables backend): LAN
	// clients may reach a forward through the public address too.
	Hairpin bool
}

// DefaultLease is the lease requested when the config does not say. An hour
// keeps a forest of dead forwards from outliving a machine that went away,
// while a reconcile loop renews live ones long before they lapse.
const DefaultLease = time.Hour

// Rule is one entry of the config's rules: list, defaults applied.
type Rule struct {
	Name, Service, Description string
	Protocols                  []Protocol // "both" => []Protocol{TCP, UDP}
	External                   PortRange
	Internal                   PortRange  // same length as External
	InternalHost               string     // as written: "self", an IP literal or a hostname
	InternalAddr               netip.Addr // resolved IPv4 address; zero value for "self"
	// InternalAddr6 is the resolved IPv6 address of an IPv6 or dual rule;
	// zero for "self".
	InternalAddr6 netip.Addr
	// Families are the address families the rule opens (family:): IPv4
	// alone by default, IPv6 alone, or both ("dual").
	Families []Family
	Probe    ProbeKind // from the service, else tcp or udp by protocol
	Line     int       // line of the rule in the file
	// AnyExternal is external_port: any. The rule takes whatever external
	// port the gateway grants; External then holds the port suggested to
	// it, which is the internal port.
	AnyExternal bool
	// Hairpin is hairpin: true on the rule (or on the gateway).
	Hairpin bool
}

// Diagnostic is one problem in a config file, error or warning.
type Diagnostic struct {
	File    string
	Line    int    // 0 when unknown
	Key     string // path of the offending key, e.g. "rules[1].external_port"; "" for the whole file
	Message string
}

// String renders d as "portfwd.yaml:7: rules[1].external_port: message",
// the file:line form editors jump to.
func (d Diagnostic) String() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d", d.Line)
	}
	b.WriteString(": ")
	if d.Key != "" {
		b.WriteString(d.Key + ": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// ConfigError holds every error found in one file, so a user fixes them all
// in one round instead of one per run.
type ConfigError struct {
	Problems []Diagnostic
	// Total is how many problems the file has: more than Problems holds
	// when the list was cut (its last entry then says how many more).
	// Zero means len(Problems).
	Total int
}

// Count is how many problems the file has, shown or not.
func (e *ConfigError) Count() int { return max(e.Total, len(e.Problems)) }

// Error lists the problems, one per line.
func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, d := range e.Problems {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// LoadOptions tunes Load.
type LoadOptions struct {
	// LookupHost resolves internal_host hostnames; nil means
	// net.DefaultResolver.LookupNetIP(ctx, "ip4", host).
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Load parses and validates data, the contents of file. It returns the config
// and its warnings, or a *ConfigError holding every error (with the warnings
// found so far, so the caller can still show them).
func Load(ctx context.Context, file string, data []byte, opts LoadOptions) (*Config, []Diagnostic, error) {
	l := newLoader(file, opts)
	cfg := l.load(ctx, data)
	sortDiagnostics(l.warns)
	if len(l.errs)+len(l.fatal) > 0 {
		problems, total := l.problems()
		return nil, l.warns, &ConfigError{Problems: problems, Total: total}
	}
	return cfg, l.warns, nil
}

// LoadFile reads file and calls Load. A missing or unreadable file is a plain
// error naming the file, not a *ConfigError. It reads no more than Load
// takes (maxConfigBytes), so that a path to an endless file (/dev/zero)
// is refused too.
func LoadFile(ctx context.Context, file string, opts LoadOptions) (*Config, []Diagnostic, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading config: %w", err)
	}
	return Load(ctx, file, data, opts)
}

// Hosts are the addresses "internal_host: self" stands for: this host's
// address toward the gateway, and its stable global IPv6 address for IPv6
// rules (zero when it has none; see ChooseSelfIPv6).
type Hosts struct {
	Self, Self6 netip.Addr
}

// Desired expands the rules into the mappings the gateway should hold: one
// per family per protocol per port, sorted by Key. Rules with
// internal_host "self" forward to hosts.Self, or on IPv6 to hosts.Self6 (a
// pinhole for self on a host without IPv6 has no InternalHost: Apply
// refuses it and says why). Hairpin is asked only of a backend that can
// write it (props.Hairpin); elsewhere it would show a change on every run.
// On a gateway that is this machine (props.Local) there are no leases.
func (c *Config) Desired(hosts Hosts, props Properties) []Mapping {
	var out []Mapping
	for _, r := range c.Rules {
		for _, f := range r.families() {
			out = append(out, c.desired(r, f, hosts, props)...)
		}
	}
	slices.SortFunc(out, func(a, b Mapping) int { return a.Key.Compare(b.Key) })
	return out
}

// desired is Desired for one rule in one family. An IPv6 pinhole has no
// NAT: it opens the internal port itself, takes no other external port and
// needs no hairpin.
func (c *Config) desired(r Rule, f Family, hosts Hosts, props Properties) []Mapping {
	host, self := r.InternalAddr, hosts.Self
	if f == IPv6 {
		host, self = r.InternalAddr6, hosts.Self6
	}
	if !host.IsValid() {
		host = self
	}
	hairpin := f == IPv4 && props.Hairpin && (r.Hairpin || c.Gateway.Hairpin)
	lease := c.Gateway.Lease
	if props.Local {
		lease = 0 // rules on this machine have no lease: they last until down
	}
	var out []Mapping
	for _, p := range r.Protocols {
		for i := range r.External.Len() {
			m := Mapping{
				Key:          Key{Protocol: p, ExternalPort: r.External.First + uint16(i), Family: f},
				InternalHost: host,
				InternalPort: r.Internal.First + uint16(i),
				Description:  Tag(c.Name, r.Name),
				Lease:        lease,
				Enabled:      true,
				AnyExternal:  r.AnyExternal && f == IPv4,
				Hairpin:      hairpin,
			}
			if f == IPv6 {
				m.ExternalPort = m.InternalPort
			}
			out = append(out, m)
		}
	}
	return out
}

// families are the rule's families; a rule built by hand without any is
// IPv4, as every rule was before families existed.
func (r Rule) families() []Family {
	if len(r.Families) == 0 {
		return []Family{IPv4}
	}
	return r.Families
}

// Ownership is the DiffOptions ownership for this config on a backend
// with properties p: the mappings tagged with the config's name (or an
// older portfwd's tag for one of its rules) to self and to every host a
// rule names, or, on a gateway that is this machine (p.Local), to any
// host.
func (c *Config) Ownership(self Hosts, p Properties) DiffOptions {
	hosts := []netip.Addr{self.Self}
	if self.Self6.IsValid() {
		hosts = append(hosts, self.Self6)
	}
	rules := make([]string, 0, len(c.Rules))
	for _, r := range c.Rules {
		for _, a := range []netip.Addr{r.InternalAddr, r.InternalAddr6} {
			if a.IsValid() {
				hosts = append(hosts, a)
			}
		}
		rules = append(rules, r.Name)
	}
	return DiffOptions{Config: c.Name, Rules: rules, Hosts: hosts, AnyHost: p.Local}
}

// Rule finds the rule called name.
func (c *Config) Rule(name string) (Rule, bool) {
	for _, r := range c.Rules {
		if r.Name == name {
			return r, true
		}
	}
	return Rule{}, false
}
