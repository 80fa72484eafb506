package forward

import (
	"bytes"
	"fmt"
	"strings"
)

// ExampleConfig is a commented config that forwards the catalog service
// name to this PC: what `portfwd example NAME` prints, so a user with only
// the binary starts from a file that loads and says what each key does.
// An unknown name is an error suggesting the closest names.
func ExampleConfig(name string) ([]byte, error) {
	svc, ok := LookupService(name)
	if !ok {
		hint := ""
		if s := suggest(name, serviceNames()); s != "" {
			hint = "did you mean " + s + "? "
		}
		return nil, fmt.Errorf("unknown service %q (%sportfwd services lists them)", name, hint)
	}
	var b bytes.Buffer
	b.WriteString(SchemaLine(SchemaPath))
	b.WriteString("# (the schema the Debian package installs; elsewhere: portfwd schema > portfwd.schema.json,\n#  and $schema=portfwd.schema.json above)\n")
	fmt.Fprintf(&b, `# portfwd.yaml: %s, on this PC, reachable from the internet.
# Written by portfwd example %s; edit it, then:
#   portfwd plan portfwd.yaml    what would change on the router
#   portfwd apply portfwd.yaml   make it so, then check the forward from outside
#   portfwd down portfwd.yaml    remove the forwards this file made
gateway:
  backend: auto   # ask UPnP IGD, PCP and NAT-PMP, keep the best that answers;
                  # iptables when portfwd runs on the Linux router itself
  lease: 1h       # renewed by every apply once less than half is left; 0 = permanent
rules:
  - name: %s
    service: %s   # %s %s, checked with the %s probe
`, svc.Description, svc.Name, svc.Name, svc.Name, protocolWords(svc.Protocols), svc.Ports, svc.Probe)
	exampleOptions(&b, svc)
	fmt.Fprintf(&b, "    description: %q\n", svc.Description)
	return b.Bytes(), nil
}

// exampleOptions writes the rule keys a user most often changes, commented
// out.
func exampleOptions(b *bytes.Buffer, svc Service) {
	if svc.Ports.First < 1024 {
		fmt.Fprintf(b, `    # Many routers refuse ports below 1024: a high external port keeps
    # the server on %d, e.g.
    # external_port: %d
    # internal_port: %d
`, svc.Ports.First, 2000+int(svc.Ports.First), svc.Ports.First)
	} else {
		what := "the port"
		if svc.Ports.Len() > 1 {
			what = "the ports"
		}
		fmt.Fprintf(b, "    # external_port: %s   # %s friends connect to (default: the service's)\n", svc.Ports, what)
	}
	b.WriteString("    # internal_host: self   # self (this PC), or another LAN host's address\n")
}

// protocolWords is "tcp", "udp" or "tcp and udp".
func protocolWords(ps []Protocol) string {
	words := make([]string, len(ps))
	for i, p := range ps {
		words[i] = string(p)
	}
	return strings.Join(words, " and ")
}
