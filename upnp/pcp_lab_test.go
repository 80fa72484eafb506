package upnp

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/internal/lab"
)

// TestLabPCP proves the PCP client against miniupnpd (LAB.md). The client
// opens each socket on the calling goroutine, so lab.Do is enough to put
// every PCP socket on the LAN host: no child process is needed, unlike the
// goupnp tests whose HTTP dials happen on other goroutines.
func TestLabPCP(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	c := labPCPClient(t, l)
	epoch := labPCPAnnounce(t, l, c)
	start := time.Now()

	ln := l.ListenTCP(t, lab.LAN, ":41500")
	go lab.ServeTCP(ln, "hi", nil)
	req := MapRequest{Nonce: NewNonce(), Protocol: forward.TCP, InternalPort: 41500, SuggestedPort: 41500,
		Lifetime: 600 * time.Second}
	got, err := labPCPMap(l, c, req)
	if err != nil {
		t.Fatalf("Map: %v", err)
	}
	t.Logf("MAP granted %+v", got)
	if got.ExternalPort != 41500 || got.ExternalIP != l.RouterWAN || got.Nonce != req.Nonce ||
		got.Lifetime <= 0 || got.Lifetime > 600*time.Second {
		t.Errorf("Map = %+v; want %v:41500 for at most 600s", got, l.RouterWAN)
	}
	if pcpStateLost(epoch, start, got.Epoch, time.Now()) {
		t.Errorf("epoch went from %d to %d within a moment", epoch, got.Epoch)
	}
	labPCPReachable(t, l, true)

	t.Run("Renew", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // let the epoch move
		again, err := labPCPMap(l, c, req)
		t.Logf("renewal granted %+v", again)
		if err != nil || again.ExternalPort != 41500 || again.Epoch < got.Epoch {
			t.Errorf("renewal = %+v, %v", again, err)
		}
		labPCPReachable(t, l, true)
	})
	t.Run("Delete", func(t *testing.T) {
		del := req
		del.Lifetime = 0
		gone, err := labPCPMap(l, c, del)
		t.Logf("delete answered %+v, %v", gone, err)
		if err != nil || gone.Lifetime != 0 {
			t.Errorf("delete = %+v, %v", gone, err)
		}
		labPCPReachable(t, l, false)
		again, err := labPCPMap(l, c, del)
		t.Logf("deleting the absent mapping answered %+v, %v", again, err)
		if err != nil {
			t.Errorf("deleting an absent mapping: %v", err)
		}
	})
	t.Run("OtherNonce", func(t *testing.T) { labPCPOtherNonce(t, l, c, req) })
	t.Run("ThirdPartyRefused", func(t *testing.T) { labPCPThirdPartyRefused(t, l, c) })
	// An allowed THIRD_PARTY mapping is proven by the backend's lab test
	// (pcpbackend_lab_test.go) and portfwd's (cmd/portfwd/pcp_lab_test.go).
	t.Run("EpochAfterReboot", func(t *testing.T) { labPCPReboot(t, l, c) })
}

func labPCPClient(t *testing.T, l *lab.Lab) *PCPClient {
	t.Helper()
	var c *PCPClient
	if err := l.Do(lab.LAN, func() (err error) { c, err = NewPCPClient(l.RouterLAN); return err }); err != nil {
		t.Fatal(err)
	}
	if c.Local != l.LANHost {
		t.Fatalf("Local = %v, want %v", c.Local, l.LANHost)
	}
	return c
}

func labPCPAnnounce(t *testing.T, l *lab.Lab, c *PCPClient) uint32 {
	t.Helper()
	var epoch uint32
	start := time.Now()
	err := l.Do(lab.LAN, func() (err error) { epoch, err = c.Announce(context.Background()); return err })
	if err != nil {
		t.Fatalf("Announce: %v", err)
	}
	t.Logf("ANNOUNCE: epoch %d, in %v", epoch, time.Since(start).Round(100*time.Microsecond))
	return epoch
}

// labPCPMap runs c.Map on the LAN host.
func labPCPMap(l *lab.Lab, c *PCPClient, req MapRequest) (MapResponse, error) {
	var resp MapResponse
	err := l.Do(lab.LAN, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err = c.Map(ctx, req)
		return err
	})
	return resp, err
}

// labPCPReachable dials 50.60.70.1:41500 from the WAN host.
func labPCPReachable(t *testing.T, l *lab.Lab, want bool) {
	t.Helper()
	addr := net.JoinHostPort(l.RouterWAN.String(), "41500")
	reply, err := l.ExchangeFrom(lab.WAN, "tcp", addr, "")
	switch {
	case want && (err != nil || !strings.HasPrefix(reply, "hi")):
		t.Errorf("from the WAN, %s answered %q, %v; want the LAN listener", addr, reply, err)
	case !want && err == nil:
		t.Errorf("from the WAN, %s still answers %q after the delete", addr, reply)
	}
}

func labPCPThirdPartyRefused(t *testing.T, l *lab.Lab, c *PCPClient) {
	req := MapRequest{Nonce: NewNonce(), Protocol: forward.TCP, InternalPort: 41501, SuggestedPort: 41501,
		Lifetime: 600 * time.Second, ThirdParty: l.LANHost2}
	_, err := labPCPMap(l, c, req)
	t.Logf("THIRD_PARTY %v without pcp_allow_thirdparty: %v", l.LANHost2, err)
	if perr := (*PCPError)(nil); errors.As(err, &perr) {
		t.Logf("result code %d (%v)", perr.Code, perr.Code)
	}
	// miniupnpd 2.3.1 answers UNSUPP_OPTION, not NOT_AUTHORIZED: it treats
	// THIRD_PARTY as unknown unless pcp_allow_thirdparty=yes.
	var perr *PCPError
	if !errors.As(err, &perr) || (perr.Code != PCPNotAuthorized && perr.Code != PCPUnsuppOption) ||
		!errors.Is(err, forward.ErrNotAuthorized) ||
		!strings.Contains(err.Error(), "pcp_allow_thirdparty=yes") || !strings.Contains(err.Error(), l.LANHost2.String()) {
		t.Errorf("err = %v; want NOT_AUTHORIZED naming %v and pcp_allow_thirdparty", err, l.LANHost2)
	}
}

// labPCPReboot: after a gateway reboot the epoch restarts, which §8.5's
// check notices.
func labPCPReboot(t *testing.T, l *lab.Lab, c *PCPClient) {
	// §8.5 forgives an epoch one second back, so let it grow first.
	time.Sleep(3 * time.Second)
	before, at := labPCPAnnounce(t, l, c), time.Now()
	if err := l.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := labPCPAnnounce(t, l, c)
	t.Logf("epoch %d before the reboot, %d after", before, after)
	if !pcpStateLost(before, at, after, time.Now()) {
		t.Errorf("epoch %d then %d: the reboot went unnoticed", before, after)
	}
}

// labPCPOtherNonce: miniupnpd 2.3.1 lets the same host take a mapping over
// with another nonce (§11.3 wants the nonce to match); the old nonce is
// then refused, the new one deletes.
func labPCPOtherNonce(t *testing.T, l *lab.Lab, c *PCPClient, req MapRequest) {
	if _, err := labPCPMap(l, c, req); err != nil {
		t.Fatalf("Map: %v", err)
	}
	other := req
	other.Nonce = NewNonce()
	resp, err := labPCPMap(l, c, other)
	t.Logf("the same mapping with another nonce: %+v, %v", resp, err)
	del, delOther := req, other
	del.Lifetime, delOther.Lifetime = 0, 0
	_, err = labPCPMap(l, c, del)
	t.Logf("delete with the first nonce: %v", err)
	_, err = labPCPMap(l, c, delOther)
	t.Logf("delete with the second nonce: %v", err)
	if err != nil {
		t.Errorf("delete with the nonce that took the mapping over: %v", err)
	}
	labPCPReachable(t, l, false)
}
