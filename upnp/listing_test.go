package upnp

import (
	"encoding/xml"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

func tcpMapping(port, intPort uint16, host, desc string, lease time.Duration, enabled bool) forward.Mapping {
	return forward.Mapping{Key: forward.Key{Protocol: forward.TCP, ExternalPort: port}, InternalHost: netip.MustParseAddr(host),
		InternalPort: intPort, Description: desc, Lease: lease, Enabled: enabled}
}

// TestListingCaptured reads the answers captured from miniupnpd 2.3.1 in
// the lab, and a hand-written escaped, unprefixed variant, through the
// real SOAP path.
func TestListingCaptured(t *testing.T) {
	udp := tcpMapping(27015, 27016, "192.168.77.11", "steam & co", time.Hour, false)
	udp.Protocol = forward.UDP
	bedrock := tcpMapping(19132, 19132, "192.168.77.10", "portfwd:bedrock", 604791*time.Second, true)
	bedrock.Protocol = forward.UDP
	tests := map[string][]forward.Mapping{
		"listing-miniupnpd-tcp.xml": {
			// in miniupnpd's rule order, newest first
			tcpMapping(3075, 3075, "192.168.77.10", "", 3595*time.Second, true),
			tcpMapping(3074, 3074, "192.168.77.10", "", 3591*time.Second, true),
			tcpMapping(25565, 25565, "192.168.77.10", "portfwd:mc", 604791*time.Second, true),
		},
		"listing-miniupnpd-udp.xml":      {bedrock},
		"listing-miniupnpd-empty.xml":    nil,
		"listing-escaped-unprefixed.xml": {udp},
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			f := newFakeIGD(t, "igd2-rootdesc.xml")
			f.listing = file
			got, err := newTestIGD(t, f).listingPage(testCtx(t), forward.TCP, 1, 65535)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestListFast: two GetListOfPortMappings, one per protocol, and no
// GetGenericPortMappingEntry; pages follow when a page is full.
func TestListFast(t *testing.T) {
	for _, page := range []int{1000, 2} {
		f := newFakeIGD(t, "igd2-rootdesc.xml")
		for _, p := range []int{40002, 40000, 40004, 40001, 40003} {
			f.entries = append(f.entries, fakeEntry{proto: "TCP", ext: p, port: p, client: "127.0.0.1", desc: "portfwd:r", enabled: true, lease: 60})
		}
		f.entries = append(f.entries, fakeEntry{proto: "UDP", ext: 65535, port: 1, client: "127.0.0.1", desc: "x"})
		old := listPage
		listPage = page
		got, err := newTestIGD(t, f).List(testCtx(t))
		listPage = old
		if err != nil {
			t.Fatal(err)
		}
		calls := f.count("GetListOfPortMappings")
		if len(got) != 6 || (page == 1000) != (calls == 2) || f.count("GetGenericPortMappingEntry") != 0 {
			t.Errorf("page %d: %d mappings, actions %v; want 6, one listing call per protocol unless a page is full", page, len(got), f.actions)
		}
	}
}

// TestListFallsBack: routers that fault or garble GetListOfPortMappings
// are enumerated entry by entry; 730 is an empty table.
func TestListFallsBack(t *testing.T) {
	for file, generic := range map[string]bool{
		"soap-606-not-authorized.xml": true, "soap-402-invalid-args.xml": true, "soap-501-action-failed.xml": true,
		"listing-truncated.xml": true, "soap-730-port-mapping-not-found.xml": false,
	} {
		t.Run(file, func(t *testing.T) {
			f := newFakeIGD(t, "igd2-rootdesc.xml")
			f.listing = file
			f.entries = []fakeEntry{{proto: "TCP", ext: 25565, port: 25565, client: "127.0.0.1", desc: "portfwd:mc", enabled: true}}
			got, err := newTestIGD(t, f).List(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if used := f.count("GetGenericPortMappingEntry") > 0; used != generic || (generic && len(got) != 1) || (!generic && len(got) != 0) {
				t.Errorf("generic used %v, got %+v", used, got)
			}
		})
	}
}

func TestListIGDv1NeverAsksForListing(t *testing.T) {
	f := newFakeIGD(t, "igd1-rootdesc.xml")
	if _, err := newTestIGD(t, f).List(testCtx(t)); err != nil || f.count("GetListOfPortMappings") != 0 {
		t.Errorf("List = %v; actions %v", err, f.actions)
	}
}

func TestParsePortListingRejects(t *testing.T) {
	for _, s := range []string{"garbage", "<a><b>", "<p:PortMappingList><p:PortMappingEntry><p:NewExternalPort>x</p:NewExternalPort></p:PortMappingEntry></p:PortMappingList>"} {
		if _, err := parsePortListing([]byte(s)); !errors.Is(err, errBadListing) {
			t.Errorf("parsePortListing(%q) = %v; want errBadListing", s, err)
		}
	}
}

// FuzzParsePortListing: whatever a router sends, the parser returns
// mappings or errBadListing, never panics, and every mapping is valid.
func FuzzParsePortListing(f *testing.F) {
	for _, file := range []string{"listing-miniupnpd-tcp.xml", "listing-miniupnpd-udp.xml", "listing-miniupnpd-empty.xml", "listing-escaped-unprefixed.xml", "listing-truncated.xml"} {
		f.Add(envelopeListing(f, file))
	}
	f.Add([]byte("<PortMappingList><PortMappingEntry></PortMappingEntry></PortMappingList>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := parsePortListing(b)
		if err != nil {
			if !errors.Is(err, errBadListing) {
				t.Fatalf("error %v is not errBadListing", err)
			}
			return
		}
		for _, m := range ms {
			if !m.InternalHost.IsValid() || (m.Protocol != forward.TCP && m.Protocol != forward.UDP) {
				t.Fatalf("invalid mapping %+v", m)
			}
		}
	})
}

// envelopeListing is the NewPortListing text of a captured answer.
func envelopeListing(t testing.TB, file string) []byte {
	var env struct {
		Listing string `xml:"Body>GetListOfPortMappingsResponse>NewPortListing"`
	}
	if err := xml.Unmarshal(testdata(t, file), &env); err != nil {
		t.Fatal(err)
	}
	return []byte(env.Listing)
}

// TestListFullPagesBounded: a router that answers every range with a full
// page is not split down to single ports (2×65,535 requests; a review saw
// 426 before the timeout): after maxListingRequests, List falls back to
// GetGenericPortMappingEntry, which reads the table.
func TestListFullPagesBounded(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	f.full = true
	f.entries = []fakeEntry{{proto: "TCP", ext: 25565, port: 25565, client: "127.0.0.1", desc: "portfwd:mc", enabled: true}}
	old := listPage
	listPage = 4
	t.Cleanup(func() { listPage = old })
	got, err := newTestIGD(t, f).List(testCtx(t))
	if err != nil {
		t.Fatalf("List: %v after %d listing requests", err, f.count("GetListOfPortMappings"))
	}
	if n := f.count("GetListOfPortMappings"); n > maxListingRequests || f.count("GetGenericPortMappingEntry") != 2 || len(got) != 1 {
		t.Errorf("%d listing requests, %d entry requests, %d mappings; want at most %d, then the table entry by entry",
			n, f.count("GetGenericPortMappingEntry"), len(got), maxListingRequests)
	}
}
