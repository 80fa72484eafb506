package lab

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// Files in the lab dir.
const (
	configFile   = "miniupnpd.conf"
	rulesetFile  = "ruleset.nft"
	leaseFile    = "upnp.leases"
	lease6File   = "upnp6.leases"
	pidFile      = "miniupnpd.pid"
	ssdpdSocket  = "minissdpd.sock"
	logFile      = "miniupnpd.log"
	stateFile    = "lab.env"
	miniupnpdBin = "miniupnpd"
)

// The chains the miniupnpd nftables backend fills, all in table inet filter.
// They must exist before the first mapping or AddPortMapping answers 501.
var miniupnpdChains = []string{"miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd"}

// rulesetTmpl is a small home router: forward only what the LAN starts or
// what miniupnpd opened (a forward over IPv4, a pinhole over IPv6),
// masquerade IPv4 out of the WAN; IPv6 is routed, never translated. Debian's helper scripts
// under /etc/miniupnpd source a functions file the package does not ship,
// hence the ruleset is written here directly.
var rulesetTmpl = template.Must(template.New("ruleset").Parse(`flush ruleset
table inet filter {
	chain forward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
		iifname "{{.LAN}}" oifname "{{.WAN}}" accept
		jump miniupnpd
	}
	chain miniupnpd {
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		jump postrouting_miniupnpd
		meta nfproto ipv4 oifname "{{.WAN}}" masquerade
	}
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
}
`))

// configTmpl is LAB.md's working config. Every path points into the lab dir
// so that two labs never share a lease file, pid file or MiniSSDPd socket.
var configTmpl = template.Must(template.New("config").Parse(`ext_ifname={{.WAN}}
listening_ip={{.LAN}}
http_port={{.Port}}
enable_natpmp={{.NATPMP}}
enable_upnp={{.UPnP}}
{{if .ThirdParty}}pcp_allow_thirdparty=yes
{{end}}{{if .IPv6On}}ext_ifname6={{.WAN}}
{{else}}ipv6_disable=yes
{{end}}secure_mode={{.Secure}}
system_uptime=no
lease_file={{.Dir}}/` + leaseFile + `
lease_file6={{.Dir}}/` + lease6File + `
minissdpdsocket={{.Dir}}/` + ssdpdSocket + `
uuid={{.UUID}}
{{if .IGDv1}}force_igd_desc_v1=yes
{{end}}upnp_table_name=filter
upnp_nat_table_name=filter
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 {{.LANNet}} 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
`))

func (l *Lab) path(name string) string { return filepath.Join(l.Dir, name) }

// configureRouter loads the nftables ruleset and writes miniupnpd's config.
func (l *Lab) configureRouter(ctx context.Context) error {
	if err := l.render(rulesetTmpl, rulesetFile); err != nil {
		return err
	}
	if err := l.routerRun(ctx, "nft", "-f", l.path(rulesetFile)); err != nil {
		return fmt.Errorf("loading nftables ruleset: %w", err)
	}
	return l.render(configTmpl, configFile)
}

func (l *Lab) render(t *template.Template, name string) error {
	lanNet := netip.PrefixFrom(l.RouterLAN, lanBits).Masked()
	data := map[string]any{
		"WAN": RouterWANIface, "LAN": RouterLANIface, "Port": HTTPPort,
		"Secure": yesNo(l.opts.secureMode()), "IGDv1": l.opts.IGDv1,
		"Dir": l.Dir, "UUID": l.uuid(), "LANNet": lanNet,
		"UPnP": yesNo(!l.opts.NoUPnP), "NATPMP": yesNo(!l.opts.NoNATPMP), "ThirdParty": l.opts.PCPThirdParty,
		"IPv6On": l.opts.ipv6On(),
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("rendering %s: %w", name, err)
	}
	if err := os.WriteFile(l.path(name), b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// uuid is fixed per lab, as LAB.md asks, so a reboot keeps the device's
// identity; the lab name makes it differ between labs.
func (l *Lab) uuid() string {
	return "5f0a7c1e-7061-4f72-8677-" + strings.TrimPrefix(l.Name, "pfl-") + "000000"
}

// flushChains empties the chains miniupnpd filled; a reboot loses them.
func (l *Lab) flushChains(ctx context.Context) error {
	var cmds []string
	for _, c := range miniupnpdChains {
		cmds = append(cmds, "flush chain inet filter "+c)
	}
	if err := l.routerRun(ctx, "nft", strings.Join(cmds, "; ")); err != nil {
		return fmt.Errorf("flushing miniupnpd chains: %w", err)
	}
	return nil
}

// routerRun runs a command in the router namespace; its output goes into the
// error.
func (l *Lab) routerRun(ctx context.Context, name string, args ...string) error {
	out, err := l.CommandContext(ctx, Router, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
