package upnp

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// fakePCP is a PCP server on loopback UDP. answer decides, per request
// (counting from 1), which datagrams go back; nil drops the request.
type fakePCP struct {
	conn   *net.UDPConn
	answer func(n int, req []byte) [][]byte

	mu       sync.Mutex
	requests [][]byte
}

func newFakePCP(t *testing.T, answer func(n int, req []byte) [][]byte) *fakePCP {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePCP{conn: conn, answer: answer}
	t.Cleanup(func() { conn.Close() })
	go f.serve()
	return f
}

func (f *fakePCP) serve() {
	buf := make([]byte, 2048)
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		req := append([]byte{}, buf[:n]...)
		f.mu.Lock()
		f.requests = append(f.requests, req)
		count := len(f.requests)
		f.mu.Unlock()
		for _, resp := range f.answer(count, req) {
			_, _ = f.conn.WriteToUDPAddrPort(resp, from)
		}
	}
}

func (f *fakePCP) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func (f *fakePCP) last() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

// client is a PCPClient for f.
func (f *fakePCP) client() *PCPClient {
	return &PCPClient{Gateway: netip.MustParseAddr("127.0.0.1"), Local: netip.MustParseAddr("127.0.0.1"),
		port: f.conn.LocalAddr().(*net.UDPAddr).AddrPort().Port()}
}

// pcpAnswer builds the response to req the way §8.2 and §11.3 describe: the
// request's header turned into a response header, its MAP payload copied
// with the assigned port and address.
func pcpAnswer(req []byte, result PCPResultCode, lifetime, epoch uint32, port uint16, ip string) []byte {
	resp := make([]byte, pcpHeaderSize, pcpHeaderSize+pcpMapSize)
	resp[0], resp[1], resp[3] = pcpVersion, req[1]|pcpResponse, byte(result)
	binary.BigEndian.PutUint32(resp[4:], lifetime)
	binary.BigEndian.PutUint32(resp[8:], epoch)
	if req[1] == pcpOpMap && len(req) >= pcpHeaderSize+pcpMapSize {
		resp = append(resp, req[pcpHeaderSize:pcpHeaderSize+pcpMapSize]...)
		binary.BigEndian.PutUint16(resp[pcpHeaderSize+18:], port)
		a := pcpAddr16(netip.MustParseAddr(ip))
		copy(resp[pcpHeaderSize+20:], a[:])
	}
	return resp
}

func granted(req []byte) []byte { return pcpAnswer(req, PCPSuccess, 600, 42, 41500, "50.60.70.1") }

func mapReq41500() MapRequest {
	return MapRequest{Nonce: testNonce, Protocol: forward.TCP, InternalPort: 41500, SuggestedPort: 41500,
		Lifetime: 10 * time.Minute}
}

func TestPCPMap(t *testing.T) {
	t.Parallel()
	f := newFakePCP(t, func(_ int, req []byte) [][]byte { return [][]byte{granted(req)} })
	got, err := f.client().Map(testCtx(t), mapReq41500())
	want := MapResponse{Lifetime: 10 * time.Minute, Epoch: 42, ExternalPort: 41500,
		ExternalIP: netip.MustParseAddr("50.60.70.1"), Nonce: testNonce}
	if err != nil || got != want {
		t.Fatalf("Map = %+v, %v; want %+v", got, err, want)
	}
	req := f.last()
	if len(req) != 60 || netip.AddrFrom16([16]byte(req[8:24])).Unmap() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("request %x: want 60 bytes with client 127.0.0.1", req)
	}
	// A delete is the same request with lifetime 0 (§15).
	del := mapReq41500()
	del.Lifetime = 0
	if _, err := f.client().Map(testCtx(t), del); err != nil {
		t.Fatal(err)
	}
	if req := f.last(); binary.BigEndian.Uint32(req[4:]) != 0 || [12]byte(req[24:36]) != testNonce {
		t.Errorf("delete %x: want lifetime 0 and the same nonce", req)
	}
}

// TestPCPDeleteAbsent: miniupnpd 2.3.1 answers a delete of an absent
// mapping with NO_RESOURCES; §15 says that delete succeeds.
func TestPCPDeleteAbsent(t *testing.T) {
	t.Parallel()
	f := newFakePCP(t, func(_ int, req []byte) [][]byte {
		return [][]byte{pcpAnswer(req, PCPNoResources, 0, 9, 0, "0.0.0.0")}
	})
	del := mapReq41500()
	del.Lifetime = 0
	if got, err := f.client().Map(testCtx(t), del); err != nil || got.Epoch != 9 || got.Lifetime != 0 {
		t.Errorf("delete = %+v, %v; want success", got, err)
	}
	var perr *PCPError
	if _, err := f.client().Map(testCtx(t), mapReq41500()); !errors.As(err, &perr) || perr.Code != PCPNoResources {
		t.Errorf("a create answered NO_RESOURCES: %v", err)
	}
}

func TestPCPAnnounce(t *testing.T) {
	t.Parallel()
	f := newFakePCP(t, func(_ int, req []byte) [][]byte { return [][]byte{pcpAnswer(req, PCPSuccess, 0, 1234, 0, "")} })
	if epoch, err := f.client().Announce(testCtx(t)); err != nil || epoch != 1234 {
		t.Errorf("Announce = %d, %v", epoch, err)
	}
	// The client IP field defaults to the socket's address.
	c := f.client()
	c.Local = netip.Addr{}
	if _, err := c.Announce(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if req := f.last(); netip.AddrFrom16([16]byte(req[8:24])).Unmap() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("client IP field of %x", req)
	}
}

func TestPCPRetransmitsAfterLoss(t *testing.T) {
	t.Parallel()
	f := newFakePCP(t, func(n int, req []byte) [][]byte {
		if n == 1 {
			return nil // the first datagram is lost
		}
		return [][]byte{granted(req)}
	})
	start := time.Now()
	if _, err := f.client().Map(testCtx(t), mapReq41500()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); f.count() != 2 || took < 200*time.Millisecond || took > time.Second {
		t.Errorf("%d requests in %v; want 2, the second after ~250ms", f.count(), took)
	}
}

func TestPCPIgnoresStrays(t *testing.T) {
	t.Parallel()
	f := newFakePCP(t, func(_ int, req []byte) [][]byte {
		other := append([]byte{}, req...)
		other[24] ^= 0xff // another nonce
		otherPort := append([]byte{}, req...)
		otherPort[41]++ // another internal port
		return [][]byte{
			pcpAnswer(other, PCPNotAuthorized, 0, 1, 0, "0.0.0.0"),
			pcpAnswer(otherPort, PCPSuccess, 600, 1, 9, "1.2.3.4"),
			[]byte("not PCP at all"),
			req,                                          // its own request echoed: R bit unset
			pcpAnswer(req[:24], PCPSuccess, 0, 1, 0, ""), // an ANNOUNCE answer
			granted(req),
		}
	})
	got, err := f.client().Map(testCtx(t), mapReq41500())
	if err != nil || got.ExternalPort != 41500 || got.Epoch != 42 {
		t.Fatalf("Map = %+v, %v; want the matching answer", got, err)
	}
}

// TestPCPIgnoresOtherSource: the connected socket already drops datagrams
// from elsewhere; accept checks the source too (§8.3).
func TestPCPIgnoresOtherSource(t *testing.T) {
	t.Parallel()
	c := &PCPClient{Gateway: netip.MustParseAddr("192.168.77.1")}
	tr := &pcpTransaction{server: c.server(), match: func(pcpMessage) bool { return true }}
	ok := unhex(t, mapResponse41500)
	for _, from := range []string{"192.168.77.1:5350", "192.168.77.2:5351", "[::ffff:192.168.77.1]:5352"} {
		if _, accepted := tr.accept(ok, netip.MustParseAddrPort(from)); accepted {
			t.Errorf("a response from %s was accepted", from)
		}
	}
	for _, from := range []string{"192.168.77.1:5351", "[::ffff:192.168.77.1]:5351"} {
		if _, accepted := tr.accept(ok, netip.MustParseAddrPort(from)); !accepted {
			t.Errorf("the server's response from %s was not accepted", from)
		}
	}
}

func TestPCPDeadline(t *testing.T) {
	t.Parallel()
	f := newFakePCP(t, func(int, []byte) [][]byte { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.client().Map(ctx, mapReq41500())
	took := time.Since(start)
	if !errors.Is(err, ErrPCPUnsupported) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer") {
		t.Errorf("err = %v; want no answer, ErrPCPUnsupported and DeadlineExceeded", err)
	}
	// Sent at 0 and ~250ms; the next (~750ms) is past the deadline.
	if took < 550*time.Millisecond || took > 900*time.Millisecond || f.count() != 2 {
		t.Errorf("%d requests in %v; want 2 in ~600ms", f.count(), took)
	}
}

func TestPCPDefaultDeadline(t *testing.T) {
	t.Parallel()
	f := newFakePCP(t, func(int, []byte) [][]byte { return nil })
	start := time.Now()
	_, err := f.client().Announce(context.Background())
	took := time.Since(start)
	// 0, .25, .75, 1.75 s: four tries, doubling, capped at 1 s.
	if !errors.Is(err, context.DeadlineExceeded) || took < 1900*time.Millisecond || took > 2500*time.Millisecond || f.count() != 4 {
		t.Errorf("%v after %v and %d requests; want a deadline at 2s after 4 requests", err, took, f.count())
	}
}

func TestPCPCanceled(t *testing.T) {
	t.Parallel()
	f := newFakePCP(t, func(int, []byte) [][]byte { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := f.client().Announce(ctx)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 300*time.Millisecond {
		t.Errorf("%v after %v; want canceled at once", err, time.Since(start))
	}
}

// TestPCPNothingListens is not parallel: its client sends to a closed port
// that the kernel may hand to another test's fake server.
func TestPCPNothingListens(t *testing.T) {
	f := newFakePCP(t, nil)
	c := f.client()
	f.conn.Close() // the port is closed: loopback answers ICMP port unreachable
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_, err := c.Announce(ctx)
	if !errors.Is(err, ErrPCPUnsupported) || !strings.Contains(err.Error(), "nothing listens") {
		t.Errorf("err = %v", err)
	}
}

func TestPCPErrorResponses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer func(req []byte) []byte
		third  netip.Addr
		is     error
		want   string
	}{
		{"third party refused", func(req []byte) []byte { return pcpAnswer(req, PCPNotAuthorized, 0, 7, 0, "0.0.0.0") },
			netip.MustParseAddr("127.0.0.2"), forward.ErrNotAuthorized, "pcp_allow_thirdparty=yes"},
		{"header-only refusal", func(req []byte) []byte { return pcpAnswer(req[:24], PCPNotAuthorized, 0, 7, 0, "") },
			netip.Addr{}, forward.ErrNotAuthorized, "does not allow this mapping"},
		{"double NAT", func(req []byte) []byte { return pcpAnswer(req, PCPAddressMismatch, 0, 7, 0, "0.0.0.0") },
			netip.Addr{}, forward.ErrDoubleNAT, "double NAT"},
		{"taken", func(req []byte) []byte { return pcpAnswer(req, PCPCannotProvideExternal, 0, 7, 0, "0.0.0.0") },
			netip.Addr{}, forward.ErrConflict, "taken"},
		{"NAT-PMP only", func([]byte) []byte { return unhex(t, `00 80 0001 00000e10`) },
			netip.Addr{}, ErrPCPUnsupported, "NAT-PMP only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePCP(t, func(_ int, req []byte) [][]byte { return [][]byte{tc.answer(req)} })
			r := mapReq41500()
			r.ThirdParty = tc.third
			got, err := f.client().Map(testCtx(t), r)
			var perr *PCPError
			if !errors.As(err, &perr) || !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want a *PCPError, %v, mentioning %q", err, tc.is, tc.want)
			}
			if perr.Code != PCPNotAuthorized && tc.is == forward.ErrNotAuthorized {
				t.Errorf("code %v", perr.Code)
			}
			if tc.name != "NAT-PMP only" && got.Epoch != 7 {
				t.Errorf("epoch of an error response: %d, want 7", got.Epoch)
			}
		})
	}
}

func TestNewPCPClient(t *testing.T) {
	c, err := NewPCPClient(netip.MustParseAddr("127.0.0.1"))
	if err != nil || c.Local != netip.MustParseAddr("127.0.0.1") || c.server().Port() != 5351 {
		t.Errorf("NewPCPClient = %+v, %v", c, err)
	}
	if NewNonce() == NewNonce() {
		t.Error("two nonces alike")
	}
}

func TestPCPStateLost(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		prev, cur uint32
		elapsed   time.Duration
		lost      bool
	}{
		{1000, 1060, time.Minute, false},
		{1000, 1061, time.Minute, false}, // a second of jitter
		{1000, 1000, time.Second, false}, // within 2 s
		{1000, 999, 0, false},            // one second back is rounding
		{1000, 998, 0, true},             // backwards: restarted
		{1000, 5, time.Minute, true},     // restarted a while ago
		{1000, 1010, time.Hour, true},    // the server's clock barely moved: restarted and counted up again
		{1000, 5000, time.Minute, true},  // the server moved far more than the client
		{1000, 4400, time.Hour, false},   // an hour, 200 s slower: within 1/16
		{0xfffffff0, 0xffffffff, 15 * time.Second, false},
	} {
		if got := pcpStateLost(tc.prev, t0, tc.cur, t0.Add(tc.elapsed)); got != tc.lost {
			t.Errorf("epoch %d then %d after %v: lost = %v, want %v", tc.prev, tc.cur, tc.elapsed, got, tc.lost)
		}
	}
}
