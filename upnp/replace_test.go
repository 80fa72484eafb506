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
