package upnp

import (
	"net/netip"
	"testing"

	"github.com/portfwd/portfwd/forward"
)

func TestMayReplace(t *testing.T) {
	self, other := netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("192.168.1.20")
	m := forward.Mapping{InternalHost: self, Description: "pf:pc:mc"}
	tests := []struct {
		holder forward.Mapping
		want   bool
	}{
		{forward.Mapping{InternalHost: self, Description: "pf:pc:mc"}, true},       // a refresh
		{forward.Mapping{InternalHost: self, Description: "pf:pc:old"}, true},      // a renamed rule of this config
		{forward.Mapping{InternalHost: self, Description: "portfwd:mc"}, true},     // an older portfwd's, adopted
		{forward.Mapping{InternalHost: self, Description: "portfwd:old"}, false},   // an older portfwd's of another rule
		{forward.Mapping{InternalHost: self, Description: "pf:valheim:mc"}, false}, // another config's
		{forward.Mapping{InternalHost: self, Description: "Minecraft"}, false},     // the game's own mapping
		{forward.Mapping{InternalHost: other, Description: "pf:pc:mc"}, false},     // another PC's portfwd
		{forward.Mapping{InternalHost: other, Description: "xbox"}, false},
	}
	for _, tt := range tests {
		if got := mayReplace(tt.holder, m); got != tt.want {
			t.Errorf("mayReplace(%+v) = %v, want %v", tt.holder, got, tt.want)
		}
	}
}

// An older portfwd's mapping (portfwd:mc) is re-tagged by deleting it
// first: the router, like miniupnpd, keeps a mapping's description when
// its own client adds it again. A refresh of a mapping already tagged so
// sends no delete.
func TestAddRetagsLegacyMapping(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	f.keepDesc = true
	g := newTestIGD(t, f)
	legacy := mapping(25565, "127.0.0.1", 0) // portfwd:mc
	if _, err := g.Add(testCtx(t), legacy); err != nil {
		t.Fatal(err)
	}
	want := legacy
	want.Description = forward.Tag("games", "mc")
	for range 2 {
		if _, err := g.Add(testCtx(t), want); err != nil {
			t.Fatalf("re-tag: %v", err)
		}
	}
	if len(f.entries) != 1 || f.entries[0].desc != "pf:games:mc" {
		t.Errorf("entries after the re-tag: %+v", f.entries)
	}
	if n := f.count("DeletePortMapping"); n != 1 {
		t.Errorf("%d DeletePortMapping, want 1 (the re-tag; none for the refresh)", n)
	}
}
