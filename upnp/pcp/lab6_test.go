package pcp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
	"github.com/portfwd/portfwd/internal/lab"
)

// labPinholePort is the port TestLabPCPIPv6LinkLocal opens.
const labPinholePort = 41650

// TestLabPCPIPv6LinkLocal: with the LAN host's IPv6 default route via the
// router's link-local address, as router advertisements set it up in a
// home, the PCP backend finds the router there (with its zone), asks from
// the LAN host's global address, and the WAN host reaches the server on
// that address; the next run lists the pinhole from the records and
// deletes it, and the WAN host no longer reaches it.
func TestLabPCPIPv6LinkLocal(t *testing.T) {
	if c, ok := lab.ChildOf(t); ok {
		labPhase(t, c.Phase, map[string]func(*testing.T){
			"map": func(t *testing.T) { labPinholeMap(t, c) }, "delete": func(t *testing.T) { labPinholeDelete(t, c) }})
		return
	}
	t.Parallel()
	l := lab.ForTest(t, lab.Options{IPv6: true})
	ll := routerLinkLocal(t, l)
	if out, err := l.Command(lab.LAN, "ip", "-6", "route", "replace", "default", "via", ll.String(), "dev", lab.HostIface).CombinedOutput(); err != nil {
		t.Fatalf("routing the LAN host via %v: %v\n%s", ll, err, out)
	}
	l.Serve(t, lab.LAN, "tcp", labPinholePort, "lan v6")
	target := netip.AddrPortFrom(l.LANHost6, labPinholePort).String()
	reaches := func() bool {
		reply, err := l.ExchangeFrom(lab.WAN, "tcp", target, "ping")
		return err == nil && strings.HasPrefix(reply, "lan v6")
	}
	if reaches() {
		t.Fatal("the WAN host reached the LAN host over IPv6 before any pinhole")
	}
	for _, s := range []labStep{{"map", true}, {"delete", false}} {
		l.RunChild(t, lab.LAN, s.phase, lab.ChildOptions{})
		if reaches() != s.forwards {
			t.Errorf("after %s: the WAN host reaches %s: %v, want %v", s.phase, target, !s.forwards, s.forwards)
		}
	}
}

// routerLinkLocal is the router's link-local address on the LAN, once it
// is no longer tentative (duplicate address detection, RFC 4862 §5.4,
// takes a second or two after the link comes up).
func routerLinkLocal(t *testing.T, l *lab.Lab) netip.Addr {
	t.Helper()
	for range 60 { // a generous hang detector: 30 s
		out, err := l.Command(lab.Router, "ip", "-6", "-o", "addr", "show", "dev", lab.RouterLANIface, "scope", "link").CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr: %v\n%s", err, out)
		}
		f := strings.Fields(string(out))
		for i := 0; i+1 < len(f) && !strings.Contains(string(out), "tentative"); i++ {
			if p, err := netip.ParsePrefix(f[i+1]); f[i] == "inet6" && err == nil {
				return p.Addr()
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("the router has no usable link-local address on the LAN")
	return netip.Addr{}
}

// labPinhole is the pinhole the phases open to the LAN host.
func labPinhole(c *lab.Child) forward.Mapping {
	m := labMapping(forward.TCP, labPinholePort, c.LANHost6, labLease)
	m.Family = forward.IPv6
	return m
}

// labOpen6 opens the PCP backend on the LAN host as portfwd does, and
// checks that its IPv6 side found the router on its link-local address,
// with the zone, and would ask from a link-local address of its own.
func labOpen6(t *testing.T, c *lab.Child) *Backend {
	t.Helper()
	rec, err := OpenRecords(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenPCP(testCtx(t), c.RouterLAN, rec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Properties().IPv6 || b.six.gw.Zone() != lab.HostIface || !b.six.gw.IsLinkLocalUnicast() || !b.six.local.IsLinkLocalUnicast() {
		t.Fatalf("IPv6 side: %+v", b.six)
	}
	return b
}

// labPinholeMap opens the pinhole: granted as asked, recorded under the
// router's link-local address.
func labPinholeMap(t *testing.T, c *lab.Child) {
	b := labOpen6(t, c)
	m := labPinhole(c)
	if got := forwardtest.MustAdd(t, b, m); got.Key != m.Key || got.InternalHost != c.LANHost6 || got.InternalPort != m.InternalPort {
		t.Errorf("granted %v, want %v", got, m)
	}
	if w := b.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q", w)
	}
	b.lock()
	r, ok := b.rec.gateway("pcp", b.six.gw).find(m.Key)
	b.unlock()
	if !ok || r.Nonce == "" {
		t.Errorf("record %+v, %v", r, ok)
	}
}

// labPinholeDelete lists the pinhole in the next run and deletes it.
func labPinholeDelete(t *testing.T, c *lab.Child) {
	b := labOpen6(t, c)
	m := labPinhole(c)
	got, err := b.List(testCtx(t))
	if err != nil || len(got) != 1 || got[0].Key != m.Key {
		t.Fatalf("List = %v, %v; want the pinhole", got, err)
	}
	if err := b.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if got, err := b.List(testCtx(t)); err != nil || len(got) != 0 {
		t.Errorf("List after Delete = %v, %v", got, err)
	}
}
