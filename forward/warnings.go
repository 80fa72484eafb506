package forward

// Warnings: things that are allowed but that people regret. They do not
// stop a load; the CLI shows them.

// dynamicFirst is where the IANA dynamic (ephemeral) port range starts
// (RFC 6335 section 6). Routers pick source ports for their own connections,
// and for NAT, from around here.
const dynamicFirst = 49152

// riskyService is a port that is dangerous to expose to the internet.
type riskyService struct {
	ports PortRange
	name  string
	why   string
}

// riskyServices are forwarded by mistake often, and found by scanners within
// minutes when they are.
var riskyServices = []riskyService{
	{PortRange{23, 23}, "telnet", "it sends passwords in clear text and is the first thing botnets such as Mirai try"},
	{PortRange{135, 135}, "Windows RPC", "it has a long history of wormable flaws"},
	{PortRange{139, 139}, "SMB (NetBIOS)", "file sharing is a favourite target of worms and ransomware (WannaCry)"},
	{PortRange{161, 161}, "SNMP", "it leaks device details and amplifies DDoS traffic"},
	{PortRange{445, 445}, "SMB", "file sharing is a favourite target of worms and ransomware (WannaCry)"},
	{PortRange{1433, 1433}, "Microsoft SQL Server", "databases on the internet are brute-forced and ransomed"},
	{PortRange{1900, 1900}, "SSDP/UPnP", "it lets anyone on the internet open ports on your router, and amplifies DDoS traffic"},
	{PortRange{2375, 2376}, "the Docker API", "it gives whoever reaches it root on the host (2376 too, unless TLS client certificates are enforced)"},
	{PortRange{3306, 3306}, "MySQL", "databases on the internet are brute-forced and ransomed"},
	{PortRange{3389, 3389}, "RDP", "remote desktop is brute-forced around the clock and has had wormable flaws (BlueKeep)"},
	{PortRange{5432, 5432}, "PostgreSQL", "databases on the internet are brute-forced and ransomed"},
	{PortRange{5900, 5901}, "VNC", "it often has a weak password or none and sends the screen unencrypted"},
	{PortRange{6379, 6379}, "Redis", "it has no password by default and is abused to take over the host"},
	{PortRange{9200, 9200}, "Elasticsearch", "it often runs without authentication; exposed clusters are copied and wiped"},
	{PortRange{11211, 11211}, "memcached", "it has no authentication and amplifies DDoS traffic"},
	{PortRange{27017, 27017}, "MongoDB", "it often runs without authentication; exposed databases are wiped and ransomed"},
}

// warnRule records the warnings for one rule.
func (l *loader) warnRule(r *ruleInput) {
	if !r.portOK {
		return
	}
	line, key := r.where("external_port")
	if r.AnyExternal {
		// The gateway picks the external port, so the port warnings below
		// would blame a choice the user did not make.
		l.warnRisky(r)
		return
	}
	if r.External.First < 1024 {
		l.warnf(line, key, "external port %s is below 1024: many gateways refuse ports below 1024; miniupnpd allows 1024-65535 by default", r.External)
	}
	if r.External.Last >= dynamicFirst && !isServicePorts(r) {
		l.warnf(line, key, "external port %s is in the dynamic range 49152-65535, where the router picks ports for its own outgoing connections; it may collide with them", r.External)
	}
	l.warnRisky(r)
}

// isServicePorts reports whether r forwards its service's standard ports.
// Those are where that software listens (WireGuard's 51820, Mumble's 64738),
// so warning about the dynamic range there would fire on the recommended
// setup and teach people to ignore warnings.
func isServicePorts(r *ruleInput) bool {
	svc, ok := LookupService(r.Service)
	return ok && svc.Ports == r.External
}

// warnRisky warns once per risky service the rule's external or internal
// ports reach: what runs behind 13389 -> 3389 is still RDP.
func (l *loader) warnRisky(r *ruleInput) {
	for _, s := range riskyServices {
		line, key := r.where("external_port")
		switch {
		case r.External.Overlaps(s.ports):
		case r.Internal.Overlaps(s.ports):
			line, key = r.where("internal_port")
		default:
			continue
		}
		l.warnf(line, key, "port %s is %s, dangerous to expose to the internet: %s; reach it over a VPN such as WireGuard instead",
			s.ports, s.name, s.why)
	}
}
