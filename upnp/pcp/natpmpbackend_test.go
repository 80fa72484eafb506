package pcp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// TestNATPMPOnTheWire: the requests Add and Delete send (RFC 6886 §3.3,
// §3.4).
func TestNATPMPOnTheWire(t *testing.T) {
	e := newEnv(t, OpenNATPMP)
	m := mapping(forward.TCP, 25565, time.Hour)
	forwardtest.MustAdd(t, e.b, m)
	if req := e.fake.lastNATPMP(); req != (natpmpRequest{natpmpOpMapTCP, 25565, 25565, 3600}) {
		t.Errorf("map request %+v", req)
	}
	if err := e.b.Delete(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	// The granted port is suggested, though §3.4 says 0: see unmap.
	if req := e.fake.lastNATPMP(); req != (natpmpRequest{natpmpOpMapTCP, 25565, 25565, 0}) {
		t.Errorf("delete request %+v", req)
	}
}

// TestNATPMPMovedPortDeleted: a grant on another port is deleted again,
// and Add fails as a conflict with a holder the gateway does not name.
func TestNATPMPMovedPortDeleted(t *testing.T) {
	e := newEnv(t, OpenNATPMP)
	m := mapping(forward.TCP, 25565, time.Hour)
	e.fake.set(func(f *fakeGateway) { f.held[m.Key] = true })
	_, err := e.b.Add(testCtx(t), m)
	var ce *forward.ConflictError
	if !errors.As(err, &ce) || ce.Holder != (forward.Mapping{}) {
		t.Fatalf("Add = %v; want a *forward.ConflictError with an unknown holder", err)
	}
	want := "adding mapping tcp/25565: the gateway would only forward tcp/25565 as external port 25566 (the port is taken, perhaps by another device); choose another external_port"
	if err.Error() != want {
		t.Errorf("error %q\nwant %q", err, want)
	}
	if req := e.fake.lastNATPMP(); req != (natpmpRequest{natpmpOpMapTCP, 25565, 25566, 0}) || e.fake.has(key(forward.TCP, 25566)) {
		t.Errorf("the moved mapping was not deleted: last request %+v", req)
	}
}

// TestNATPMPSameInternalPort: a gateway that keeps one mapping per internal
// port (RFC 6886 §3.3) answers a second rule on it with the first rule's
// mapping, which is kept, and named in the conflict.
func TestNATPMPSameInternalPort(t *testing.T) {
	e := newEnv(t, OpenNATPMP)
	e.fake.set(func(f *fakeGateway) { f.rfc6886 = true })
	first := mapping(forward.TCP, 8080, time.Hour)
	forwardtest.MustAdd(t, e.b, first)
	second := mapping(forward.TCP, 8081, 2*time.Hour)
	second.InternalPort = 8080
	_, err := e.b.Add(testCtx(t), second)
	var ce *forward.ConflictError
	if !errors.As(err, &ce) || ce.Holder.Key != first.Key || !strings.Contains(err.Error(), "it keeps one mapping per internal port") {
		t.Fatalf("Add = %v; want a conflict naming %v", err, first.Key)
	}
	if !e.fake.has(first.Key) || e.fake.has(second.Key) {
		t.Error("the first rule's mapping was deleted, or a second made")
	}
	if r, _ := e.recorded(t, first.Key); !r.Expires.Equal(e.fake.clock.Now().Add(2 * time.Hour)) {
		t.Errorf("the first rule's record expires %v; want the lifetime the gateway just granted it", r.Expires)
	}
}

// TestNATPMPDeleteRestoresSibling: deleting one of two rules on one internal
// port leaves the other mapped and recorded, though miniupnpd deletes both.
func TestNATPMPDeleteRestoresSibling(t *testing.T) {
	e := newEnv(t, OpenNATPMP)
	first, second := mapping(forward.TCP, 8080, time.Hour), mapping(forward.TCP, 8081, 2*time.Hour)
	second.InternalPort = 8080
	for _, m := range []forward.Mapping{first, second} {
		forwardtest.MustAdd(t, e.b, m)
	}
	e.fake.clock.Advance(time.Minute)
	if err := e.b.Delete(testCtx(t), second); err != nil {
		t.Fatal(err)
	}
	if !e.fake.has(first.Key) || e.fake.has(second.Key) {
		t.Errorf("on the gateway: %v %v, %v %v", first.Key, e.fake.has(first.Key), second.Key, e.fake.has(second.Key))
	}
	if r, ok := e.recorded(t, first.Key); !ok || !r.Expires.Equal(e.fake.clock.Now().Add(time.Hour)) {
		t.Errorf("record of %v after restoring: %+v, %v", first.Key, r, ok)
	}
	if req := e.fake.lastNATPMP(); req != (natpmpRequest{natpmpOpMapTCP, 8080, 8080, 3600}) {
		t.Errorf("last request %+v; want %v restored", req, first.Key)
	}
}

// TestNATPMPOtherHost: NAT-PMP maps only for the asking host, and says
// where to run portfwd instead.
func TestNATPMPOtherHost(t *testing.T) {
	e := newEnv(t, OpenNATPMP)
	m := mapping(forward.TCP, 25565, time.Hour)
	m.InternalHost = netip.MustParseAddr("192.168.1.50")
	_, err := e.b.Add(testCtx(t), m)
	want := "adding mapping tcp/25565: 192.168.1.50 is another host, and NAT-PMP only maps ports to the host that asks (RFC 6886 §3.3); run portfwd on 192.168.1.50"
	if !errors.Is(err, forward.ErrNotAuthorized) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Add for another host = %v; want ErrNotAuthorized saying %q", err, want)
	}
}

// TestNATPMPResultCodes: each result code, through the fake gateway,
// becomes an error saying what to do and wrapping what callers branch on.
// A network failure asks the external address to tell carrier-grade NAT.
func TestNATPMPResultCodes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    NATPMPResultCode
		extCode NATPMPResultCode
		ext     string
		is      error
		says    string
	}{
		{name: "version", code: 1, is: forward.ErrNoGateway, says: "use backend pcp or upnp"},
		{name: "refused", code: 2, is: forward.ErrNotAuthorized, says: "NAT-PMP is switched off or refuses this host"},
		{name: "no WAN", code: 3, extCode: 3, is: forward.ErrDoubleNAT, says: "no working WAN connection"},
		{name: "CGNAT", code: 3, ext: "100.64.0.1", is: forward.ErrDoubleNAT, says: "WAN address 100.64.0.1 is private or shared"},
		{name: "private WAN", code: 3, ext: "192.168.0.2", is: forward.ErrDoubleNAT, says: "carrier-grade NAT"},
		{name: "resources", code: 4, says: "no room for another mapping"},
		{name: "opcode", code: 5, is: forward.ErrNoGateway, says: "does not implement this request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, OpenNATPMP)
			e.fake.set(func(f *fakeGateway) {
				f.natpmpCode, f.natpmpExtCode = tc.code, tc.extCode
				if tc.ext != "" {
					f.ext = netip.MustParseAddr(tc.ext)
				}
			})
			_, err := e.b.Add(testCtx(t), mapping(forward.TCP, 25566, time.Hour))
			var code NATPMPResultCode
			if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.HasPrefix(err.Error(), "adding mapping tcp/25566: "+tc.code.Error()+": ") {
				t.Fatalf("Add = %v; want it to say %q", err, tc.says)
			}
			if !errors.As(err, &code) || code != tc.code || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Errorf("%v: want code %d wrapping %v", err, tc.code, tc.is)
			}
		})
	}
}

// TestNATPMPLapsedSiblingNotRestored: a sibling whose lease ran out is
// forgotten, not made again when its internal port's mapping is deleted.
func TestNATPMPLapsedSiblingNotRestored(t *testing.T) {
	e := newEnv(t, OpenNATPMP)
	short, long := mapping(forward.TCP, 8080, time.Minute), mapping(forward.TCP, 8081, time.Hour)
	long.InternalPort = 8080
	forwardtest.MustAdd(t, e.b, short)
	forwardtest.MustAdd(t, e.b, long)
	e.fake.clock.Advance(2 * time.Minute)
	sent := e.fake.count()
	if err := e.b.Delete(testCtx(t), long); err != nil {
		t.Fatal(err)
	}
	if e.fake.count() != sent+1 || e.fake.has(short.Key) {
		t.Errorf("%d requests, %v on the gateway; want the delete alone", e.fake.count()-sent, short.Key)
	}
	if _, ok := e.recorded(t, short.Key); ok {
		t.Error("the lapsed record was kept")
	}
}
