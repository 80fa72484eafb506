package upnp

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// loopbackOptions points Discover at responders on loopback; the multicast
// search goes to a second loopback responder (or nowhere), never to the
// real LAN.
func loopbackOptions(gw string, unicast, multicast *ssdpResponder) DiscoverOptions {
	o := DiscoverOptions{Gateway: netip.MustParseAddr(gw), Timeout: time.Second, noUnicast: unicast == nil, noMulticast: multicast == nil}
	if unicast != nil {
		o.unicastPort = unicast.port()
	}
	if multicast != nil {
		o.multicast = multicast.addrPort()
	}
	return o
}

func TestDiscoverUnicast(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	r := newSSDPResponder(t, f.rootURL())
	g, err := Discover(context.Background(), loopbackOptions("127.0.0.1", r, nil))
	if err != nil {
		t.Fatal(err)
	}
	// That the first answer ends the search: TestDiscoverFirstRoundAsksOnce.
	if g.Properties().Gateway != f.rootURL() || g.service.Short != "WANIPConnection:2" {
		t.Errorf("Properties = %+v", g.Properties())
	}
}

// TestDiscoverMulticastAnswers: unicast and multicast go out together, and
// an answer to either is enough.
func TestDiscoverMulticastAnswers(t *testing.T) {
	f := newFakeIGD(t, "igd1-rootdesc.xml")
	silent := newSSDPResponder(t, f.rootURL())
	silent.setDrop(1 << 20)
	mc := newSSDPResponder(t, f.rootURL())
	if _, err := Discover(context.Background(), loopbackOptions("127.0.0.1", silent, mc)); err != nil {
		t.Fatal(err)
	}
	// Discover returns on the first answer; the silent responder may read
	// its datagram a moment later.
	for deadline := time.Now().Add(time.Second); silent.count() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if silent.count() == 0 || mc.count() == 0 {
		t.Errorf("unicast got %d requests, multicast %d; want both", silent.count(), mc.count())
	}
}

// TestDiscoverResendsAfterLoss: the whole first round of M-SEARCHes is lost.
func TestDiscoverResendsAfterLoss(t *testing.T) {
	f := newFakeIGD(t, "igd1-rootdesc.xml")
	r := newSSDPResponder(t, f.rootURL())
	r.setDrop(len(roundTargets(0)))
	if _, err := Discover(context.Background(), loopbackOptions("127.0.0.1", r, nil)); err != nil {
		t.Fatal(err)
	}
	if n := r.count(); n <= len(roundTargets(0)) {
		t.Errorf("the gateway got %d M-SEARCH; want the re-send round after the lost first", n)
	}
}

// TestDiscoverRefusesRogueLocation: a device at the gateway's address that
// points LOCATION at another host (here the fake IGD on 127.0.0.1 while the
// gateway is 127.0.0.2) is not believed, and its description never fetched.
func TestDiscoverRefusesRogueLocation(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	rogue := newSSDPResponder(t, f.rootURL())
	opts := loopbackOptions("127.0.0.2", nil, rogue)
	opts.Timeout = 300 * time.Millisecond
	_, err := Discover(context.Background(), opts)
	if !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(err.Error(), "UPnP devices at [127.0.0.1] answered, but they are not the gateway") {
		t.Fatalf("Discover = %v; want ErrNoGateway naming the rogue", err)
	}
	if f.gets != 0 {
		t.Errorf("the rogue's description was fetched")
	}
}

func TestDiscoverNothingAnswers(t *testing.T) {
	silent := newSSDPResponder(t, "http://127.0.0.1:1/x.xml")
	silent.setDrop(1 << 20)
	opts := loopbackOptions("127.0.0.1", silent, nil)
	opts.Timeout = 250 * time.Millisecond
	start := time.Now()
	_, err := Discover(context.Background(), opts)
	// A hang detector, not a speed test: the 250ms asked for, never the
	// default 2s.
	if took := time.Since(start); took >= DefaultDiscoverTimeout {
		t.Errorf("took %v; want the 250ms timeout honoured", took)
	}
	if !errors.Is(err, forward.ErrNoGateway) {
		t.Fatalf("Discover = %v; want ErrNoGateway", err)
	}
	for _, hint := range []string{"is UPnP enabled on the router?", "within 250ms", "--timeout"} {
		if !strings.Contains(err.Error(), hint) {
			t.Errorf("error %q lacks %q", err, hint)
		}
	}
	// The address was given here: advice to set it is the caller's, who
	// knows whether it was; and ErrNoGateway is not said twice.
	for _, no := range []string{"gateway.address", forward.ErrNoGateway.Error()} {
		if strings.Contains(err.Error(), no) {
			t.Errorf("error %q says %q", err, no)
		}
	}
}

func TestDiscoverUnusableDescription(t *testing.T) {
	f := newFakeIGD(t, "no-wanconn-rootdesc.xml")
	r := newSSDPResponder(t, f.rootURL())
	opts := loopbackOptions("127.0.0.1", r, nil)
	opts.Timeout = 300 * time.Millisecond
	_, err := Discover(context.Background(), opts)
	if !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(err.Error(), "no WANIPConnection") {
		t.Fatalf("Discover = %v", err)
	}
}

func TestDiscoverCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Discover(ctx, DiscoverOptions{Gateway: netip.MustParseAddr("127.0.0.1"), noMulticast: true, unicastPort: 9})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Discover = %v; want context.Canceled", err)
	}
}

// TestDiscoverFirstRoundAsksOnce: a gateway that answers at once gets one
// M-SEARCH per destination, for IGD:1, and nothing more.
func TestDiscoverFirstRoundAsksOnce(t *testing.T) {
	f := newFakeIGD(t, "igd2-rootdesc.xml")
	uni, mc := newSSDPResponder(t, f.rootURL()), newSSDPResponder(t, f.rootURL())
	start := time.Now()
	if _, err := Discover(context.Background(), loopbackOptions("127.0.0.1", uni, mc)); err != nil {
		t.Fatal(err)
	}
	answered := time.Since(start) < 90*time.Millisecond // before any re-send was due
	time.Sleep(150 * time.Millisecond)                  // past the first re-send
	for name, r := range map[string]*ssdpResponder{"unicast": uni, "multicast": mc} {
		r.mu.Lock()
		reqs := r.requests
		r.mu.Unlock()
		if len(reqs) == 0 || !strings.Contains(string(reqs[0]), "ST: "+firstTarget+"\r\n") {
			t.Errorf("%s got %q first; want one for %s", name, reqs, firstTarget)
		}
		// On a loaded machine the answer may come after the re-send; only
		// an answer before it proves the re-sends stop.
		if answered && len(reqs) != 1 {
			t.Errorf("%s got %d requests after an answer within 90ms; want one", name, len(reqs))
		}
	}
}

// TestDiscoverOtherSTInResend: a router that answers only its exact
// service type is found by the re-send round, which asks for every target.
func TestDiscoverOtherSTInResend(t *testing.T) {
	f := newFakeIGD(t, "igd1-rootdesc.xml")
	r := newSSDPResponder(t, f.rootURL())
	r.setOnlyST("urn:schemas-upnp-org:service:WANIPConnection:1")
	if _, err := Discover(context.Background(), loopbackOptions("127.0.0.1", r, nil)); err != nil {
		t.Fatal(err)
	}
	if n := r.count(); n <= len(roundTargets(0)) {
		t.Errorf("the gateway got %d M-SEARCH; want it found by the re-send round", n)
	}
}

// TestDiscoverSSDPAllFallback: a box that answers nothing but ssdp:all
// (reported for Huawei HG531) is found by the fallback round, which is
// sent only when nothing answered the narrower searches.
func TestDiscoverSSDPAllFallback(t *testing.T) {
	f := newFakeIGD(t, "igd1-rootdesc.xml")
	r := newSSDPResponder(t, f.rootURL())
	r.setOnlyST("ssdp:all")
	opts := loopbackOptions("127.0.0.1", r, nil)
	opts.Timeout = DefaultDiscoverTimeout
	if _, err := Discover(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	quick := newSSDPResponder(t, f.rootURL())
	if _, err := Discover(context.Background(), loopbackOptions("127.0.0.1", quick, nil)); err != nil {
		t.Fatal(err)
	}
	quick.mu.Lock()
	defer quick.mu.Unlock()
	for _, req := range quick.requests {
		if strings.Contains(string(req), "ST: ssdp:all\r\n") {
			t.Errorf("ssdp:all was sent although the gateway answered the IGD search")
		}
	}
}
