package forward

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
)

// SchemaID is the $id of the config's JSON schema; the Debian package
// installs the schema at SchemaPath.
const (
	SchemaID   = "https://github.com/portfwd/portfwd/raw/main/configs/portfwd.schema.json"
	SchemaPath = "/usr/share/portfwd/portfwd.schema.json"
)

// keyDoc documents one key of the config file: what it means, and the JSON
// schema of the values the loader accepts for it. The tables below are the
// one place a key is documented for editors; TestSchemaKeysMatchLoader
// keeps them equal to the loader's key lists, so a key added to the loader
// without a line here fails the tests.
type keyDoc struct {
	Name string
	Doc  string
	// Value is the schema of the key's value, without its description.
	Value func() map[string]any
}

// schemaTop, schemaGateway, schemaProbeServer and schemaRule document the
// keys of each level of the file, in the loader's order (topKeys,
// gatewayKeys, probeServerKeys, ruleKeys).
var (
	schemaTop = []keyDoc{
		{"name", "Tags this file's forwards on the router (pf:NAME:RULE). Default: the file's base name. Lower-case letters, digits and hyphens, at most 12 characters.", func() map[string]any { return nameValue(MaxConfigNameLen) }},
		{"gateway", "How to reach the gateway. Every key is optional; flags and PORTFWD_GATEWAY_* variables override them.", func() map[string]any { return object(schemaGateway) }},
		{"probe_server", "The outside vantage `portfwd check` asks to probe this home's public address: a `portfwd probe-server` on a VPS or a friend's machine.", func() map[string]any { return object(schemaProbeServer) }},
		{"rules", "The forwards the router must hold. `rules: []` is valid: apply then removes every forward this file owns.", rulesValue},
	}
	schemaGateway = []keyDoc{
		{"backend", "How portfwd talks to the gateway: auto (ask UPnP IGD, PCP and NAT-PMP, keep the best that answers), upnp, natpmp, pcp, or iptables (portfwd on the Linux router itself). Default: auto.", func() map[string]any { return map[string]any{"enum": backendNames} }},
		{"address", "The gateway's plain IPv4 LAN address, like 192.168.1.1; empty or absent: discover it.", addressValue},
		{"lease", "The lease to request: a duration (30m, 2h) or a number of seconds; 0 = permanent. Default: 1h. Renewed once less than half is left.", leaseValue},
		{"wan_interface", "iptables: the router's uplink interface (eth0, ppp0). Default: the interface of the default route.", interfaceValue},
		{"hairpin", "iptables: LAN clients may reach every forward through the public address too (hairpin NAT). Default: false.", boolean},
	}
	schemaProbeServer = []keyDoc{
		{"url", "The probe server, http://host:port or https://host:port; --via overrides it.", urlValue},
		{"token", "The shared secret the probe server requires (sent in the Authorization header). Needs url.", text},
	}
	schemaRule = []keyDoc{
		{"name", "Required, unique in the file: tags the rule's forwards on the router. Lower-case letters, digits and hyphens, at most 40 characters.", func() map[string]any { return nameValue(maxNameLen) }},
		{"service", "A catalog service (portfwd services lists them): fills in protocol, ports and probe; keys written in the rule override it.", serviceValue},
		{"protocol", "tcp, udp, or both. Required unless service: names a catalog entry.", func() map[string]any { return enum([]string{"tcp", "udp", "both"}) }},
		{"external_port", "The port friends connect to: a number, a range \"2456-2457\", or any (the router picks, suggesting internal_port). Required unless service: names a catalog entry.", func() map[string]any { return portValue(true) }},
		{"internal_port", "The port on the internal host. Default: external_port; a range maps one to one and must have external_port's length.", func() map[string]any { return portValue(false) }},
		{"internal_host", "self (this machine, the default), an IP address of the rule's family, or a hostname.", hostValue},
		{"family", "ipv4 (the default: a port forward on the public IPv4 address), ipv6 (a firewall pinhole to the host's own IPv6 address) or dual (both). A pinhole has no port translation: external_port must equal internal_port.", func() map[string]any { return enum([]string{familyIPv4, familyIPv6, familyDual}) }},
		{"probe", "How check proves the rule from outside; it must speak a protocol the rule forwards. Default: the service's probe, else tcp or udp by protocol.", probeValue},
		{"description", "Free text, shown by status.", text},
		{"hairpin", "iptables: this rule only, as gateway.hairpin.", boolean},
	}
)

// Schema is the config file's JSON schema (draft 2020-12), indented, with a
// final newline: what `portfwd schema` prints and configs/portfwd.schema.json
// holds. Unknown keys are rejected at every level, as the loader rejects
// them; values the loader reads in any case (TCP, IPv6, SELF) validate.
func Schema() []byte {
	s := object(schemaTop, "rules")
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = SchemaID
	s["title"] = "portfwd config"
	s["description"] = "A portfwd config file: the port forwards (and IPv6 pinholes) a home router must hold. portfwd plan reports every problem with file, line and key."
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic("forward: the config schema does not encode: " + err.Error())
	}
	return append(b, '\n')
}

// object is the schema of a mapping holding the keys keys and no other,
// required among them. A key left empty (lease: with no value, or
// gateway: with every line under it commented out) is YAML's null, which
// the loader reads as absent: every key but the required ones may be null.
func object(keys []keyDoc, required ...string) map[string]any {
	props := make(map[string]any, len(keys))
	for _, k := range keys {
		v := k.Value()
		if !slices.Contains(required, k.Name) {
			v = map[string]any{"anyOf": []any{v, map[string]any{"type": "null"}}}
		}
		v["description"] = k.Doc
		props[k.Name] = v
	}
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

// rulesValue is the schema of rules:, a list of rules that each name
// their protocol and port, or a service that fills them in.
func rulesValue() map[string]any {
	rule := object(schemaRule, "name")
	rule["anyOf"] = []any{
		map[string]any{"required": []string{"service"}},
		map[string]any{"required": []string{"protocol", "external_port"}},
	}
	return map[string]any{"type": "array", "items": rule}
}

// enum is one of values; the loader reads them in any case and with
// blanks around, so any spelling of one validates, while editors offer the
// values as written.
func enum(values []string) map[string]any {
	return map[string]any{"anyOf": []any{
		map[string]any{"enum": values},
		map[string]any{"type": "string", "pattern": anyCase(values)},
	}}
}

// anyCase is a pattern matching any of values in any letter case, with
// blanks around. It spells each letter as a class ([tT]) rather than with
// (?i), which ECMA-262 regular expressions (the schema's dialect, and the
// editors') do not have.
func anyCase(values []string) string {
	alts := make([]string, len(values))
	for i, v := range values {
		var b strings.Builder
		for _, r := range v {
			lo, up := strings.ToLower(string(r)), strings.ToUpper(string(r))
			if lo != up {
				b.WriteString("[" + lo + up + "]")
			} else {
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		alts[i] = b.String()
	}
	return `^\s*(` + strings.Join(alts, "|") + `)\s*$`
}

// nameValue is a config or rule name of at most maxLen characters. YAML
// reads a name of digits alone (name: 2024) as a number, which the loader
// takes as its text.
func nameValue(maxLen int) map[string]any {
	return map[string]any{"anyOf": []any{
		map[string]any{"type": "string", "pattern": namePattern.String(), "maxLength": maxLen},
		map[string]any{"type": "integer", "minimum": 0, "maximum": maxDigits(maxLen)},
	}}
}

// maxDigits is the largest number written with n digits.
func maxDigits(n int) int {
	m := 0
	for range min(n, 18) {
		m = m*10 + 9
	}
	return m
}

func serviceValue() map[string]any { return enum(serviceNames()) }

func probeValue() map[string]any {
	var kinds []string
	for _, k := range ProbeKinds() {
		kinds = append(kinds, string(k))
	}
	return enum(kinds)
}

// portValue is a port (a number 1-65535), a range "N-M", and on the
// external port also any.
func portValue(orAny bool) map[string]any {
	alts := []any{
		map[string]any{"type": "integer", "minimum": 1, "maximum": 65535},
		map[string]any{"type": "string", "pattern": `^\s*[0-9]+\s*(-\s*[0-9]+\s*)?$`},
	}
	if orAny {
		alts = append(alts, enum([]string{anyPort}))
	}
	return map[string]any{"anyOf": alts}
}

// leaseValue is a whole number of seconds, or a Go duration (1h30m, 90s)
// that is not negative.
func leaseValue() map[string]any {
	return map[string]any{"anyOf": []any{
		map[string]any{"type": "integer", "minimum": 0},
		map[string]any{"type": "string", "pattern": `^\s*\+?([0-9]+|([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+)\s*$`},
	}}
}

func addressValue() map[string]any {
	return map[string]any{"type": "string", "pattern": `^\s*([0-9]{1,3}(\.[0-9]{1,3}){3})?\s*$`}
}

func interfaceValue() map[string]any {
	return map[string]any{"type": "string", "pattern": `^([^/:\s]{1,15})?$`}
}

func urlValue() map[string]any {
	return map[string]any{"type": "string", "pattern": `^\s*[hH][tT][tT][pP][sS]?://[^/\s]+`}
}

// hostValue offers self, and takes any address or hostname.
func hostValue() map[string]any {
	return map[string]any{"anyOf": []any{
		map[string]any{"enum": []string{"self"}},
		map[string]any{"type": "string", "minLength": 1},
	}}
}

// text is free text: YAML reads some (a number, true) as other scalars,
// which the loader takes as written.
func text() map[string]any {
	return map[string]any{"type": []string{"string", "number", "boolean"}}
}

func boolean() map[string]any { return map[string]any{"type": "boolean"} }

// SchemaLine is the comment that points YAML editors (the YAML language
// server: VS Code, Neovim, Helix …) at the schema: the first line of every
// example config.
func SchemaLine(schema string) string {
	return "# yaml-language-server: $schema=" + schema + "\n"
}
