package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// TestSchemaKeysMatchLoader keeps the schema's key tables equal to the
// loader's key lists: a key the loader reads but the schema does not
// document (or the reverse) fails here.
func TestSchemaKeysMatchLoader(t *testing.T) {
	for _, level := range []struct {
		name   string
		loader []string
		schema []keyDoc
	}{
		{"top level", topKeys, schemaTop},
		{"gateway", gatewayKeys, schemaGateway},
		{"probe_server", probeServerKeys, schemaProbeServer},
		{"rules[]", ruleKeys, schemaRule},
	} {
		var names []string
		for _, k := range level.schema {
			names = append(names, k.Name)
			if len(k.Doc) < 20 {
				t.Errorf("%s: key %s has no documentation worth the name: %q", level.name, k.Name, k.Doc)
			}
		}
		if !slices.Equal(names, level.loader) {
			t.Errorf("%s: the schema documents %v, the loader reads %v", level.name, names, level.loader)
		}
	}
}

// compileSchema compiles Schema() with a real JSON-schema validator.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatalf("the schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return s
}

// validateYAML decodes a config as an editor's YAML language server does
// and validates it against s.
func validateYAML(t *testing.T, s *jsonschema.Schema, data []byte) error {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, data)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("not JSON-able: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

// TestSchemaAcceptsExamples validates every example config (configs/, the
// packaged one, and portfwd example's for every service) against the
// schema, and checks each starts with the line that points editors at it.
func TestSchemaAcceptsExamples(t *testing.T) {
	s := compileSchema(t)
	files, _ := filepath.Glob("../configs/*.yaml")
	packaged, _ := filepath.Glob("../configs/package/portfwd.yaml") // the /etc conffile
	if len(files) < 3 || len(packaged) != 1 {
		t.Fatalf("found %d example configs and %d packaged ones, want at least 3 and 1", len(files), len(packaged))
	}
	examples := map[string][]byte{}
	for _, f := range append(files, packaged...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		examples[f] = b
	}
	for _, svc := range Services() {
		b, err := ExampleConfig(svc.Name)
		if err != nil {
			t.Fatal(err)
		}
		examples["portfwd example "+svc.Name] = b
	}
	for name, b := range examples {
		want := SchemaLine("portfwd.schema.json")
		if !strings.HasPrefix(name, "../configs/") || strings.Contains(name, "/package/") {
			want = SchemaLine(SchemaPath)
		}
		if !bytes.HasPrefix(b, []byte(want)) {
			t.Errorf("%s does not start with %q", name, want)
		}
		if err := validateYAML(t, s, b); err != nil {
			t.Errorf("%s does not validate: %v", name, err)
		}
	}
}

// TestSchemaAgreesWithLoader feeds configs to the loader and the schema:
// what the loader takes (in any case, with numbers or text) validates, and
// a typo key or a value no spelling makes valid is rejected by both.
func TestSchemaAgreesWithLoader(t *testing.T) {
	s := compileSchema(t)
	rule := func(lines ...string) string {
		return "rules:\n  - name: r\n    " + strings.Join(lines, "\n    ") + "\n"
	}
	for _, tc := range []struct {
		config string
		valid  bool
	}{
		{rule("service: minecraft-java"), true},
		{rule("service: Minecraft-Java", "protocol: TCP", "family: IPv6", "internal_host: SELF", "probe: TCP"), true},
		{rule("protocol: Both", "external_port: 2456-2457", "internal_port: \"3456-3457\"", "family: ipv4"), true},
		{rule("protocol: tcp", "external_port: any", "internal_port: 8080"), true},
		{rule("protocol: udp", "external_port: 51820", "internal_host: 192.168.1.20", "description: 42", "hairpin: true"), true},
		{"name: home\ngateway:\n  backend: pcp\n  address: 192.168.1.1\n  lease: 3600\n  wan_interface: eth0\n  hairpin: false\nprobe_server:\n  url: https://probe.example:8443\n  token: s3cret\nrules: []\n", true},
		{"gateway:\n  lease: 1h30m\nrules: []\n", true},
		{"gateway:\n  lease: 0\nrules: []\n", true},
		{rule("protocol: tcp", "externl_port: 25565"), false},
		{"rules: []\ngatway:\n  backend: upnp\n", false},
		{"gateway:\n  backend: upnp\n  adress: 192.168.1.1\nrules: []\n", false},
		{"probe_server:\n  url: https://probe.example:8443\n  tokn: x\nrules: []\n", false},
		{rule("service: quake"), false},
		{rule("protocol: sctp", "external_port: 80"), false},
		{rule("service: valheim", "family: ipv5"), false},
		{rule("service: valheim", "probe: ping"), false},
		{rule("protocol: tcp", "external_port: 65536"), false},
		{rule("protocol: tcp", "external_port: http"), false},
		{rule("protocol: tcp"), false},
		{rule("external_port: 80"), false},
		{"rules:\n  - service: valheim\n", false},
		{"rules:\n  - name: Bad_Name\n    service: valheim\n", false},
		{"gateway:\n  backend: UPnP-IGD\nrules: []\n", false},
		{"gateway:\n  lease: -1h\nrules: []\n", false},
		{"gateway:\n  lease: soon\nrules: []\n", false},
		{"gateway:\n  hairpin: yes please\nrules: []\n", false},
		{"gateway:\n  backend: auto\n", false},
		{"gateway:\nprobe_server:\nrules:\n  - name: r\n    service: valheim\n    family:\n    description:\n", true},
		{"name:\ngateway:\n  lease:\n  address:\nrules: []\n", true},
		{"rules:\n", false},
		{"rules:\n  - name:\n    service: valheim\n", false},
		{"name: home-lab\nrules: []\n", true},
		{"name: a-much-too-long-name\nrules: []\n", false},
		{"name: 2024\nrules: []\n", true},
		{"name: 1234567890123\nrules: []\n", false},
	} {
		_, _, loadErr := Load(context.Background(), "c.yaml", []byte(tc.config), LoadOptions{LookupHost: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("192.168.1.20")}, nil
		}})
		if (loadErr == nil) != tc.valid {
			t.Errorf("the loader says %v, want valid=%v, for\n%s", loadErr, tc.valid, tc.config)
		}
		if err := validateYAML(t, s, []byte(tc.config)); (err == nil) != tc.valid {
			t.Errorf("the schema says %v, want valid=%v, for\n%s", err, tc.valid, tc.config)
		}
	}
}

// TestSchemaRejectsTypoKey shows the message an editor gets for a typo:
// it names the key.
func TestSchemaRejectsTypoKey(t *testing.T) {
	err := validateYAML(t, compileSchema(t), []byte("rules:\n  - name: mc\n    protocol: tcp\n    externl_port: 25565\n"))
	if err == nil || !strings.Contains(err.Error(), "externl_port") {
		t.Fatalf("a typo key validates, or the error does not name it: %v", err)
	}
}
