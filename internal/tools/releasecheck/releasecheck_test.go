package releasecheck

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/goreleaser/goreleaser/v2/pkg/config"
	"gopkg.in/yaml.v3"
)

const checkout = "../../../"

// load reads .goreleaser.yaml as goreleaser release would: strictly.
func load(t *testing.T) config.Project {
	t.Helper()
	p, err := config.Load(checkout + ".goreleaser.yaml")
	if err != nil {
		t.Fatalf("goreleaser does not load .goreleaser.yaml: %v", err)
	}
	return p
}

// TestBuilds: linux amd64, arm64 and armv7, static, stamped like make build.
func TestBuilds(t *testing.T) {
	p := load(t)
	if len(p.Builds) != 1 {
		t.Fatalf("%d builds, want one (portfwd)", len(p.Builds))
	}
	b := p.Builds[0]
	if b.Main != "./cmd/portfwd" || !slices.Equal(b.Goos, []string{"linux"}) || !slices.Equal(b.Goarm, []string{"7"}) {
		t.Errorf("build %s: main %s, goos %v, goarm %v; want ./cmd/portfwd, linux, 7", b.ID, b.Main, b.Goos, b.Goarm)
	}
	for _, arch := range []string{"amd64", "arm64", "arm"} {
		if !slices.Contains(b.Goarch, arch) {
			t.Errorf("no %s build (goarch %v)", arch, b.Goarch)
		}
	}
	if !slices.Contains(b.Env, "CGO_ENABLED=0") || !strings.Contains(strings.Join(b.Ldflags, " "), "-X main.version=") {
		t.Errorf("build env %v, ldflags %v: want static and the version stamped", b.Env, b.Ldflags)
	}
}

// nfpmFile is what this test reads of configs/package/nfpm.yaml.
type nfpmFile struct {
	Contents []struct {
		Dst  string `yaml:"dst"`
		Type string `yaml:"type"`
	} `yaml:"contents"`
	Scripts map[string]string `yaml:"scripts"`
}

// TestPackageEqualsMakePackage: the release's .deb holds the files make
// package puts in one, at the same places, with the same scripts.
func TestPackageEqualsMakePackage(t *testing.T) {
	p := load(t)
	if len(p.NFPMs) != 1 || !slices.Equal(p.NFPMs[0].Formats, []string{"deb"}) {
		t.Fatalf("nfpms %+v, want one deb", p.NFPMs)
	}
	n := p.NFPMs[0]
	b, err := os.ReadFile(checkout + "configs/package/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var want nfpmFile
	if err := yaml.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	var wantDst, gotDst []string
	for _, c := range want.Contents {
		if c.Dst != "/usr/bin/portfwd" { // goreleaser puts the binary in bindir
			wantDst = append(wantDst, c.Dst+" "+c.Type)
		}
	}
	for _, c := range n.Contents {
		gotDst = append(gotDst, c.Destination+" "+c.Type)
	}
	slices.Sort(wantDst)
	slices.Sort(gotDst)
	if !slices.Equal(gotDst, wantDst) || n.Bindir != "/usr/bin" {
		t.Errorf("the release's deb holds\n%s\nmake package's\n%s\n(bindir %s, want /usr/bin)", strings.Join(gotDst, "\n"), strings.Join(wantDst, "\n"), n.Bindir)
	}
	if n.Scripts.PostInstall != want.Scripts["postinstall"] || n.Scripts.PostRemove != want.Scripts["postremove"] {
		t.Errorf("scripts %+v, make package's %v", n.Scripts, want.Scripts)
	}
}

// TestImage: one image for the three platforms from the Dockerfile in
// configs/package, which copies each platform's binary.
func TestImage(t *testing.T) {
	p := load(t)
	if len(p.DockersV2) != 1 {
		t.Fatalf("%d dockers_v2 images, want one", len(p.DockersV2))
	}
	d := p.DockersV2[0]
	for _, pl := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7"} {
		if !slices.Contains(d.Platforms, pl) {
			t.Errorf("the image lacks %s (platforms %v)", pl, d.Platforms)
		}
	}
	df, err := os.ReadFile(checkout + d.Dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), "FROM scratch") || !strings.Contains(string(df), "COPY $TARGETPLATFORM/portfwd ") {
		t.Errorf("%s: want FROM scratch and the platform's binary copied", d.Dockerfile)
	}
	for _, f := range d.ExtraFiles {
		if _, err := os.Stat(checkout + f); err != nil || !strings.Contains(string(df), f) {
			t.Errorf("extra file %s: %v, or the Dockerfile does not copy it", f, err)
		}
	}
}
