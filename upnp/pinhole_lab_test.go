package upnp

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/portfwd/portfwd/internal/lab"
)

// TestLabPinholeClient proves the pinhole client against miniupnpd in the
// IPv6 lab: from the LAN host it reaches the router's IPv6 control URL and
// opens a pinhole the WAN host then connects through; UpdatePinhole renews
// it; DeletePinhole closes it. Through the IPv4 control URL the router
// refuses (secure mode). Each phase runs on the LAN host (lab.RunChild);
// the parent dials from the WAN host in between.
func TestLabPinholeClient(t *testing.T) {
	if c, ok := lab.ChildOf(t); ok {
		pinholeChild(t, c)
		return
	}
	l := lab.ForTest(t, lab.Options{IPv6: true})
	const port = 25565
	l.Serve(t, lab.LAN, "tcp", port, "hello over IPv6")
	target := net.JoinHostPort(l.LANHost6.String(), strconv.Itoa(port))
	if _, err := l.ExchangeFrom(lab.WAN, "tcp", target, ""); err == nil {
		t.Fatal("the WAN host reached the LAN host over IPv6 before any pinhole")
	}
	l.RunChild(t, lab.LAN, "open", lab.ChildOptions{})
	if _, err := l.ExchangeFrom(lab.WAN, "tcp", target, ""); err != nil {
		t.Fatalf("the WAN host cannot connect through the pinhole: %v", err)
	}
	l.RunChild(t, lab.LAN, "renew", lab.ChildOptions{})
	if _, err := l.ExchangeFrom(lab.WAN, "tcp", target, ""); err != nil {
		t.Fatalf("the WAN host cannot connect after UpdatePinhole: %v", err)
	}
	l.RunChild(t, lab.LAN, "delete", lab.ChildOptions{})
	if _, err := l.ExchangeFrom(lab.WAN, "tcp", target, ""); err == nil {
		t.Fatal("the WAN host still connects after DeletePinhole")
	}
}

// pinholeChild runs one phase on the LAN host; the pinhole's UniqueID
// passes between phases in a file in c.Dir.
func pinholeChild(t *testing.T, c *lab.Child) {
	idFile := filepath.Join(c.Dir, "pinhole-id")
	p, err := NewPinholeClient(testCtx(t), c.RootDescURL6, 0)
	if err != nil {
		t.Fatal(err)
	}
	switch c.Phase {
	case "open":
		labPinholeOpen(t, c, p, idFile)
	case "renew":
		id := readPinholeID(t, idFile)
		if err := p.UpdatePinhole(testCtx(t), id, 2*time.Hour); err != nil {
			t.Fatalf("UpdatePinhole: %v", err)
		}
		working, err := p.CheckPinholeWorking(testCtx(t), id)
		t.Logf("CheckPinholeWorking after the WAN host connected: %v, %v", working, err)
		if err != nil && !IsPinholeGone(err) && soapCode(err) != codeNoTrafficReceived {
			t.Errorf("CheckPinholeWorking: %v", err)
		}
	case "delete":
		id := readPinholeID(t, idFile)
		if err := p.DeletePinhole(testCtx(t), id); err != nil {
			t.Fatalf("DeletePinhole: %v", err)
		}
		_, cerr := p.CheckPinholeWorking(testCtx(t), id)
		t.Logf("deleted pinhole: UpdatePinhole %v; CheckPinholeWorking %v; DeletePinhole %v",
			p.UpdatePinhole(testCtx(t), id, time.Hour), cerr, p.DeletePinhole(testCtx(t), id))
		if err := p.UpdatePinhole(testCtx(t), id, time.Hour); !IsPinholeGone(err) {
			t.Errorf("UpdatePinhole of the deleted pinhole: %v, want it seen as gone (704, or miniupnpd's 402)", err)
		}
	default:
		t.Fatalf("unknown phase %q", c.Phase)
	}
}

// labPinholeOpen checks the firewall status, that the IPv4 control URL is
// refused, and opens the pinhole through the IPv6 one.
func labPinholeOpen(t *testing.T, c *lab.Child, p *PinholeClient, idFile string) {
	if st, err := p.GetFirewallStatus(testCtx(t)); err != nil || !st.Enabled || !st.InboundAllowed {
		t.Fatalf("GetFirewallStatus = %+v, %v; want enabled, inbound allowed", st, err)
	}
	hole := Pinhole{Client: c.LANHost6, Port: 25565, Protocol: "TCP", Lease: time.Hour}
	v4, err := NewPinholeClient(testCtx(t), c.RootDescURL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v4.AddPinhole(testCtx(t), hole); soapCode(err) != codeNotAuthorized {
		t.Errorf("AddPinhole through the IPv4 control URL: %v, want 606 (secure mode)", err)
	} else {
		t.Logf("through the IPv4 control URL: %v", err)
	}
	id, err := p.AddPinhole(testCtx(t), hole)
	if err != nil {
		t.Fatalf("AddPinhole through %s: %v", p.ControlURL(), err)
	}
	t.Logf("pinhole %d through %s", id, p.ControlURL())
	// miniupnpd finds an identical pinhole and renews it under its ID.
	if again, err := p.AddPinhole(testCtx(t), hole); err != nil || again != id {
		t.Errorf("AddPinhole again = %d, %v; want the same UniqueID %d", again, err, id)
	}
	if err := os.WriteFile(idFile, []byte(strconv.Itoa(int(id))), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readPinholeID(t *testing.T, path string) uint16 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(id)
}
