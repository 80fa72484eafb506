package forward

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultConfigName(t *testing.T) {
	for file, want := range map[string]string{
		"configs/minecraft.yaml":                 "minecraft",
		"/etc/portfwd/portfwd.yaml":              "portfwd",
		"Valheim Server.yml":                     "valheim-serv",
		"a-very-long-config-file-name.yaml":      "a-very-long",
		"___.yaml":                               "portfwd",
		"":                                       "portfwd",
		"/home/me/.config/portfwd/HOME_LAB.yaml": "home-lab",
	} {
		if got := DefaultConfigName(file); got != want {
			t.Errorf("DefaultConfigName(%q) = %q, want %q", file, got, want)
		}
		if err := CheckConfigName(DefaultConfigName(file)); err != nil {
			t.Errorf("DefaultConfigName(%q) is not a valid name: %v", file, err)
		}
	}
}

func TestLoadConfigName(t *testing.T) {
	cfg, _, err := load(t, "name: mc\nrules: []\n")
	if err != nil || cfg.Name != "mc" {
		t.Fatalf("name: mc gave %+v, %v", cfg, err)
	}
	cfg, _, err = load(t, "rules: []\n")
	if err != nil || cfg.Name != "portfwd" {
		t.Fatalf("no name: gave %q, %v; want the file's base name", cfg.Name, err)
	}
	_, _, err = load(t, "rules: []\nname: This One\n")
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a ConfigError", err)
	}
	checkDiags(t, ce.Problems, []want{{2, "name", `invalid name "This One"`}})
	_, _, err = load(t, "name: thirteen-chars\nrules: []\n")
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a ConfigError", err)
	}
	checkDiags(t, ce.Problems, []want{{1, "name", "longer than 12 characters"}})
}

func TestOwnerOf(t *testing.T) {
	tests := []struct {
		desc string
		want Owner
		ok   bool
	}{
		{"pf:mc:minecraft", Owner{Config: "mc", Rule: "minecraft"}, true},
		{"pf:minecraft:minecraft-java-ser", Owner{Config: "minecraft", Rule: "minecraft-java-ser"}, true}, // truncated
		{"portfwd:minecraft", Owner{Rule: "minecraft"}, true},
		{"portfwd:minecraft some text", Owner{Rule: "minecraft"}, true},
		{"pf:minecr", Owner{}, false}, // cut inside the config's name
		{"pf::x", Owner{}, false},
		{"pf:thirteen-chars:x", Owner{}, false},
		{"pf:Bad\x1b:x", Owner{}, false},
		{"Xbox", Owner{}, false},
		{"portfwd:", Owner{}, false},
	}
	for _, tt := range tests {
		got, ok := OwnerOf(tt.desc)
		if got != tt.want || ok != tt.ok {
			t.Errorf("OwnerOf(%q) = %+v, %v; want %+v, %v", tt.desc, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSameDescription(t *testing.T) {
	long := Tag("minecraft", "minecraft-java-server") // 34 characters
	tests := []struct {
		a, b string
		want bool
	}{
		{long, long, true},
		{long, long[:32], true}, // a router that keeps 32 characters
		{long[:31], long, true}, // one that keeps 31 (a C string in 32 bytes)
		{"pf:mc:web", "pf:mc:web-2", false},
		{"pf:mc:minecraft", "pf:mc:minecraft-2", false}, // too short to be a truncation
		{long[:32], Tag("minecraft", "minecraft-java-other"), false},
	}
	for _, tt := range tests {
		if got := SameDescription(tt.a, tt.b); got != tt.want {
			t.Errorf("SameDescription(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestRegistryOrphans(t *testing.T) {
	dir, files := t.TempDir(), t.TempDir()
	reg := Registry{Dir: dir}
	write := func(name, body string) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mc := write("minecraft.yaml", "rules: []\n")
	vh := write("valheim.yaml", "rules: []\n")
	named := write("games.yaml", "name: games\nrules: []\n")
	reg.Record("minecraft", mc)
	reg.Record("valheim", vh)
	reg.Record("games", named)
	known := reg.Known()
	for _, name := range []string{"minecraft", "valheim", "games", "someone-elses"} {
		if Orphaned(known, name) {
			t.Errorf("%s is orphaned while its file is there (or it is unknown)", name)
		}
	}
	if err := os.Remove(vh); err != nil {
		t.Fatal(err)
	}
	write("games.yaml", "name: other\nrules: []\n")
	if !Orphaned(known, "valheim") {
		t.Error("valheim, whose file is deleted, is not orphaned")
	}
	if !Orphaned(known, "games") {
		t.Error("games, whose file now holds another name, is not orphaned")
	}
	reg.Forget("valheim")
	if _, ok := reg.Known()["valheim"]; ok {
		t.Error("Forget kept valheim")
	}
	if (Registry{}).Known()["minecraft"] != "" {
		t.Error("a registry without a directory knows something")
	}
}
