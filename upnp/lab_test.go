package upnp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/huin/goupnp/soap"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
	"github.com/portfwd/portfwd/internal/lab"
)

// The lab tests prove the backend against a real miniupnpd (LAB.md). The
// parent test builds the lab and re-runs itself inside the LAN namespace
// (lab.RunChild), so every socket — SSDP, and the HTTP dials goupnp makes on
// other goroutines — lives on the LAN host.

func TestLabIGDv2(t *testing.T) { runLab(t, false) }
func TestLabIGDv1(t *testing.T) { runLab(t, true) }

func runLab(t *testing.T, igdv1 bool) {
	if c, ok := lab.ChildOf(t); ok {
		igdChild(t, c, igdv1)
		return
	}
	l := lab.ForTest(t, lab.Options{IGDv1: igdv1})
	// A mapping another program on the LAN host made, with upnpc.
	out, err := l.Command(lab.LAN, "upnpc", "-e", "libminiupnpc", "-u", l.RootDescURL,
		"-a", l.LANHost.String(), "41000", "41000", "TCP").CombinedOutput()
	if err != nil {
		t.Fatalf("upnpc -a: %v\n%s", err, out)
	}
	l.RunChild(t, lab.LAN, "", lab.ChildOptions{})
	if m, err := l.Mappings(context.Background()); err == nil && !strings.Contains(m, "libminiupnpc") {
		t.Errorf("the upnpc mapping is gone:\n%s", m)
	}
}

// igdChild is the backend on the LAN host against the lab's miniupnpd,
// advertising IGD:1 when v1.
func igdChild(t *testing.T, c *lab.Child, v1 bool) {
	g := labDiscover(t, "unicast+multicast", DiscoverOptions{Gateway: c.RouterLAN})
	labDiscover(t, "default gateway lookup", DiscoverOptions{})
	labDiscover(t, "multicast only", DiscoverOptions{Gateway: c.RouterLAN, noUnicast: true})
	labDiscover(t, "unicast only", DiscoverOptions{Gateway: c.RouterLAN, noMulticast: true})
	wantProto := []string{"UPnP InternetGatewayDevice:2", "WANIPConnection:2"}
	if v1 {
		wantProto = []string{"UPnP InternetGatewayDevice:1", "WANIPConnection:1"}
	}
	if p := g.Properties(); strings.Join(p.Protocols, " ") != strings.Join(wantProto, " ") {
		t.Errorf("Protocols = %v, want %v", p.Protocols, wantProto)
	}
	if g.LocalAddr() != c.LANHost {
		t.Errorf("LocalAddr = %v, want %v", g.LocalAddr(), c.LANHost)
	}
	t.Run("ExternalAddr", func(t *testing.T) {
		if got, err := g.ExternalAddr(testCtx(t)); err != nil || got != c.RouterWAN {
			t.Errorf("ExternalAddr = %v, %v; want %v", got, err, c.RouterWAN)
		}
	})
	t.Run("AddListDelete", func(t *testing.T) { labAddListDelete(t, g, c) })
	if !v1 { // GetListOfPortMappings is WANIPConnection:2 only
		t.Run("ListingMatchesGeneric", func(t *testing.T) { labListingMatchesGeneric(t, g, c) })
	}
	t.Run("ForeignControlChars", func(t *testing.T) { labForeignControlChars(t, g, c, v1) })
	t.Run("ConflictWithUpnpc", func(t *testing.T) { labConflictUpnpc(t, g) })
	t.Run("Conflict718", func(t *testing.T) { labConflict718(t, g, c) })
	t.Run("SecureMode", func(t *testing.T) { labSecureMode(t, g, c) })
	t.Run("Conformance", func(t *testing.T) {
		forwardtest.Run(t, forwardtest.Harness{
			New: func(*testing.T) forward.Backend { return g }, Self: c.LANHost, Port: 42000, Lease: time.Hour,
			AddForeign: func(t *testing.T, m forward.Mapping) {
				if _, err := g.Add(testCtx(t), m); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { g.Delete(context.Background(), m) })
			},
		})
	})
}

// labDiscover runs Discover and reports how long it took.
func labDiscover(t *testing.T, name string, opts DiscoverOptions) *IGD {
	t.Helper()
	start := time.Now()
	g, err := Discover(context.Background(), opts)
	if err != nil {
		t.Fatalf("Discover (%s): %v", name, err)
	}
	t.Logf("Discover (%s): %v, %s", name, time.Since(start).Round(100*time.Microsecond), g.Properties().Gateway)
	return g
}

func labAddListDelete(t *testing.T, g *IGD, c *lab.Child) {
	for _, lease := range []time.Duration{time.Hour, 0} {
		m := mapping(40000, c.LANHost.String(), lease)
		got, err := g.Add(testCtx(t), m)
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
		want := lease
		if lease == 0 {
			// miniupnpd built with IGD:2 caps leases at a week
			// (WANIPConnection:2 §2.3.16), even when it advertises IGD:1.
			want = 604800 * time.Second
		}
		if got.Lease > want || got.Lease < want-5*time.Second {
			t.Errorf("granted lease %v, want %v", got.Lease, want)
		}
		listed := labFind(t, g, m.Key)
		if listed == nil || listed.InternalHost != c.LANHost || listed.Description != m.Description || !listed.Enabled ||
			listed.Lease > want || listed.Lease < want-5*time.Second {
			t.Errorf("List has %+v; want %v with lease ~%v", listed, m, want)
		}
		if err := g.Delete(testCtx(t), m); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := g.Delete(testCtx(t), m); err != nil {
			t.Errorf("Delete of an absent mapping: %v", err)
		}
		if labFind(t, g, m.Key) != nil {
			t.Errorf("mapping still listed after Delete")
		}
	}
}

func labFind(t *testing.T, g *IGD, k forward.Key) *forward.Mapping {
	t.Helper()
	ms, err := g.List(testCtx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, m := range ms {
		if m.Key == k {
			return &m
		}
	}
	return nil
}

// labConflictUpnpc: upnpc mapped tcp/41000 to this very host; miniupnpd
// would let us overwrite it, so Add must refuse on its own.
func labConflictUpnpc(t *testing.T, g *IGD) {
	_, err := g.Add(testCtx(t), mapping(41000, g.LocalAddr().String(), 0))
	var ce *forward.ConflictError
	if !errors.As(err, &ce) || ce.Holder.Description != "libminiupnpc" {
		t.Fatalf("Add over upnpc's mapping: %v; want a conflict naming it", err)
	}
	t.Logf("%v", err)
	if m := labFind(t, g, ce.Want.Key); m == nil || m.Description != "libminiupnpc" {
		t.Errorf("upnpc's mapping changed: %+v", m)
	}
}

// labConflict718: another host (the LAN host's second address, which
// secure mode lets map to itself) holds the port; miniupnpd answers 718.
func labConflict718(t *testing.T, g *IGD, c *lab.Child) {
	other := labIGDFrom(t, g, c.LANHost2)
	held := mapping(41001, c.LANHost2.String(), 0)
	held.Description = (forward.LegacyTagPrefix + "other-host")
	if _, err := other.Add(testCtx(t), held); err != nil {
		t.Fatalf("Add from %v: %v", c.LANHost2, err)
	}
	t.Cleanup(func() { other.Delete(context.Background(), held) })
	_, err := g.Add(testCtx(t), mapping(41001, c.LANHost.String(), 0))
	var ce *forward.ConflictError
	if !errors.As(err, &ce) || soapCode(err) != codeConflict || ce.Holder.InternalHost != c.LANHost2 {
		t.Fatalf("Add: %v; want a 718 conflict naming %v", err, c.LANHost2)
	}
	t.Logf("%v", err)
}

// labSecureMode: miniupnpd in secure mode refuses a mapping to another host.
func labSecureMode(t *testing.T, g *IGD, c *lab.Child) {
	_, err := g.Add(testCtx(t), mapping(41002, c.LANHost2.String(), 0))
	if !errors.Is(err, forward.ErrNotAuthorized) || !strings.Contains(err.Error(), "run portfwd on "+c.LANHost2.String()) {
		t.Fatalf("Add for %v: %v; want ErrNotAuthorized", c.LANHost2, err)
	}
	t.Logf("%v", err)
}

// labIGDFrom is a copy of g whose SOAP requests leave from src, so it
// looks like another LAN host to the router.
func labIGDFrom(t *testing.T, g *IGD, src netip.Addr) *IGD {
	g2, err := NewIGD(testCtx(t), g.rootURL)
	if err != nil {
		t.Fatal(err)
	}
	control, err := url.Parse(g2.controlURL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &gatewayTransport{host: gatewayHost(control), // the checks and bounds stay
		base: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}).DialContext}}
	g2.client.sc.(*soap.SOAPClient).HTTPClient.Transport = tr
	g2.local = src
	return g2
}

// labListingMatchesGeneric: in IGD:2 mode GetListOfPortMappings lists the
// same mappings as the GetGenericPortMappingEntry walk (leases may have run
// down a second in between).
func labListingMatchesGeneric(t *testing.T, g *IGD, c *lab.Child) {
	for i, p := range []forward.Protocol{forward.TCP, forward.TCP, forward.UDP, forward.UDP} {
		m := mapping(uint16(43000+i), c.LANHost.String(), time.Duration(i)*time.Hour)
		m.Protocol = p
		if _, err := g.Add(testCtx(t), m); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Delete(context.Background(), m) })
	}
	fast, err := g.listFast(testCtx(t))
	if err != nil {
		t.Fatalf("GetListOfPortMappings: %v", err)
	}
	generic, err := g.listGeneric(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(fast) < 4 || len(fast) != len(generic) {
		t.Fatalf("listing has %d mappings, generic walk %d", len(fast), len(generic))
	}
	byKey := map[forward.Key]forward.Mapping{}
	for _, m := range generic {
		byKey[m.Key] = m
	}
	for _, m := range fast {
		want, ok := byKey[m.Key]
		d := want.Lease - m.Lease
		want.Lease = m.Lease
		if !ok || want != m || d < -2*time.Second || d > 2*time.Second {
			t.Errorf("listing %+v, generic %+v", m, byKey[m.Key])
		}
	}
}

// labForeignControlChars: mappings another program made whose descriptions
// hold a control character or invalid UTF-8 (upnpc -e "$(printf
// 'x\033y')"; miniupnpd answers them raw) no longer stop the backend:
// every listing method lists them, their descriptions made printable,
// beside this host's own mapping and upnpc's.
func labForeignControlChars(t *testing.T, g *IGD, c *lab.Child, v1 bool) {
	want := map[forward.Key]string{}
	for sent, listed := range map[string]string{"x\x1by": "x\u241by", "a\x01b": "a\u2401b", "caf\xe9": "caf\ufffd"} {
		port := uint16(44000 + len(want))
		p := strconv.Itoa(int(port))
		labUpnpc(t, c, "-e", sent, "-a", c.LANHost.String(), p, p, "UDP")
		t.Cleanup(func() { exec.Command("upnpc", "-u", c.RootDescURL, "-d", p, "UDP").Run() })
		want[forward.Key{Protocol: forward.UDP, ExternalPort: port}] = listed
	}
	ours := mapping(44010, c.LANHost.String(), time.Hour)
	if _, err := g.Add(testCtx(t), ours); err != nil {
		t.Fatalf("Add: %v", err)
	}
	t.Cleanup(func() { g.Delete(context.Background(), ours) })
	want[ours.Key] = ours.Description
	want[forward.Key{Protocol: forward.TCP, ExternalPort: 41000}] = "libminiupnpc"
	listers := map[string]func(context.Context) ([]forward.Mapping, error){"List": g.List, "GetGenericPortMappingEntry": g.listGeneric}
	if !v1 {
		listers["GetListOfPortMappings"] = g.listFast
	}
	for name, list := range listers {
		got, err := list(testCtx(t))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		byKey := map[forward.Key]string{}
		for _, m := range got {
			byKey[m.Key] = m.Description
		}
		for k, d := range want {
			if got, ok := byKey[k]; !ok || got != d {
				t.Errorf("%s: %v has description %q (listed %v), want %q", name, k, got, ok, d)
			}
		}
	}
}

// labUpnpc runs upnpc, miniupnpc's client, on the LAN host against the
// lab's router.
func labUpnpc(t *testing.T, c *lab.Child, args ...string) {
	t.Helper()
	out, err := exec.Command("upnpc", append([]string{"-u", c.RootDescURL}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("upnpc %q: %v\n%s", args, err, out)
	}
}
