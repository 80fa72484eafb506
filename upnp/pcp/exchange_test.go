package pcp

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

// rawServer is a server on loopback UDP whose answers a test writes by
// hand: answer decides, per request (counting from 1), which datagrams go
// back; nil drops the request.
type rawServer struct {
	conn   *net.UDPConn
	answer func(n int, req []byte) [][]byte

	mu       sync.Mutex
	requests [][]byte
}

func newRawServer(t *testing.T, answer func(n int, req []byte) [][]byte) *rawServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{conn: conn, answer: answer}
	t.Cleanup(func() { conn.Close() })
	go serveUDP(conn, s.serve)
	return s
}

func (s *rawServer) serve(req []byte, _ netip.Addr) [][]byte {
	s.mu.Lock()
	s.requests = append(s.requests, req)
	count := len(s.requests)
	s.mu.Unlock()
	return s.answer(count, req)
}

func (s *rawServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *rawServer) addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (s *rawServer) pcp() *pcpMapper { return newPCPMapper(s.addr(), loopback, 0).(*pcpMapper) }

func (s *rawServer) natpmp() *natpmpMapper {
	return newNATPMPMapper(s.addr(), loopback, 0).(*natpmpMapper)
}

// pcpAnswer is the response to req as RFC 6887 §8.2 and §11.3 describe
// it: the request's header turned into a response header, its MAP payload
// copied with the assigned port and address.
func pcpAnswer(req []byte, result ResultCode, lifetime, epoch uint32, port uint16, ip string) []byte {
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

func granted(req []byte) []byte { return pcpAnswer(req, Success, 600, 42, 41500, "50.60.70.1") }

// entry41500 is a mapping of this host's port 41500 with the test nonce.
func entry41500() *entry {
	e := testMapEntry(loopback)
	e.ExternalPort, e.InternalPort = 41500, 41500
	return &e
}

func TestExchangeMap(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(_ int, req []byte) [][]byte { return [][]byte{granted(req)} })
	a, err := s.pcp().mapPort(testCtx(t), entry41500(), 10*time.Minute)
	want := answer{answered: true, epoch: 42, port: 41500, lifetime: 10 * time.Minute, external: netip.MustParseAddr("50.60.70.1")}
	if err != nil || a != want {
		t.Fatalf("mapPort = %+v, %v; want %+v", a, err, want)
	}
}

func TestExchangeRetransmitsAfterLoss(t *testing.T) {
	t.Parallel()
	for name, ask := range map[string]func(*rawServer) error{
		"pcp": func(s *rawServer) error { _, err := s.pcp().mapPort(testCtx(t), entry41500(), time.Hour); return err },
		"natpmp": func(s *rawServer) error {
			_, err := s.natpmp().announce(testCtx(t))
			return err
		},
	} {
		s := newRawServer(t, func(n int, req []byte) [][]byte {
			if n == 1 {
				return nil // the first datagram is lost
			}
			if req[0] == natpmpVersion {
				return [][]byte{unhex(t, `00 80 0000 00000009 323c4601`)}
			}
			return [][]byte{granted(req)}
		})
		start := time.Now()
		if err := ask(s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if took := time.Since(start); s.count() != 2 || took < 200*time.Millisecond || took > time.Second {
			t.Errorf("%s: %d requests in %v; want 2, the second after ~250ms", name, s.count(), took)
		}
	}
}

func TestExchangeIgnoresStrays(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(_ int, req []byte) [][]byte {
		other := append([]byte{}, req...)
		other[24] ^= 0xff // another nonce
		otherPort := append([]byte{}, req...)
		otherPort[41]++ // another internal port
		return [][]byte{
			pcpAnswer(other, NotAuthorized, 0, 1, 0, "0.0.0.0"),
			pcpAnswer(otherPort, Success, 600, 1, 9, "1.2.3.4"),
			[]byte("not PCP at all"),
			req,                                       // its own request echoed: R bit unset
			pcpAnswer(req[:24], Success, 0, 1, 0, ""), // an ANNOUNCE answer
			granted(req),
		}
	})
	a, err := s.pcp().mapPort(testCtx(t), entry41500(), time.Hour)
	if err != nil || a.port != 41500 || a.epoch != 42 {
		t.Fatalf("mapPort = %+v, %v; want the matching answer", a, err)
	}
}

// TestExchangeNATPMPMatches: a NAT-PMP answer is the one of the same
// opcode and internal port (RFC 6886 §3.3, §3.5).
func TestExchangeNATPMPMatches(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(int, []byte) [][]byte {
		return [][]byte{
			unhex(t, `00 81 0000 00000009 63dd 63dd 00000e10`), // UDP, not TCP
			unhex(t, `00 82 0000 00000009 63de 63dd 00000e10`), // another internal port
			unhex(t, `00 80 0000 00000009 323c4601`),           // the external address
			unhex(t, `00 82 0000 00000009 63dd 63df 00000e10`),
		}
	})
	e := mapping(forward.TCP, 25565, time.Hour)
	a, err := s.natpmp().mapPort(testCtx(t), &entry{Mapping: e}, time.Hour)
	if err != nil || a.port != 25567 || a.lifetime != time.Hour {
		t.Errorf("mapPort = %+v, %v; want the answer for TCP 25565", a, err)
	}
}

// TestExchangeIgnoresOtherSource: the connected socket already drops
// datagrams from elsewhere; fromServer says so too.
func TestExchangeIgnoresOtherSource(t *testing.T) {
	t.Parallel()
	x := &exchange{server: netip.MustParseAddrPort("192.168.77.1:5351")}
	for _, from := range []string{"192.168.77.1:5350", "192.168.77.2:5351", "[::ffff:192.168.77.1]:5352"} {
		if x.fromServer(netip.MustParseAddrPort(from)) {
			t.Errorf("a response from %s was accepted", from)
		}
	}
	for _, from := range []string{"192.168.77.1:5351", "[::ffff:192.168.77.1]:5351"} {
		if !x.fromServer(netip.MustParseAddrPort(from)) {
			t.Errorf("the server's response from %s was not accepted", from)
		}
	}
}

func TestExchangeDeadline(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(int, []byte) [][]byte { return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.pcp().mapPort(ctx, entry41500(), time.Hour)
	took := time.Since(start)
	if !errors.Is(err, forward.ErrNoGateway) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "PCP did not answer") {
		t.Errorf("err = %v; want no answer, ErrNoGateway and DeadlineExceeded", err)
	}
	// Sent at 0 and ~250ms; the next (~750ms) is past the deadline.
	if took < 550*time.Millisecond || took > 900*time.Millisecond || s.count() != 2 {
		t.Errorf("%d requests in %v; want 2 in ~600ms", s.count(), took)
	}
}

// TestExchangeDefaultDeadline: each protocol's default timeout and
// schedule, when the context has no deadline.
func TestExchangeDefaultDeadline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		ask   func(*rawServer) error
		took  time.Duration
		tries int
	}{
		// 0, .25, .75 s: RFC 6886 §3.1's doubling, within 1 s.
		{"natpmp", func(s *rawServer) error { _, err := s.natpmp().announce(context.Background()); return err }, time.Second, 3},
		// 0, .25, .75, 1.75 s: doubling capped at 1 s, within 2 s.
		{"pcp", func(s *rawServer) error { _, err := s.pcp().announce(context.Background()); return err }, 2 * time.Second, 4},
	} {
		s := newRawServer(t, func(int, []byte) [][]byte { return nil })
		start := time.Now()
		err := tc.ask(s)
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) || took < tc.took-100*time.Millisecond || took > tc.took+500*time.Millisecond || s.count() != tc.tries {
			t.Errorf("%s: %v after %v and %d requests; want a deadline at %v after %d", tc.name, err, took, s.count(), tc.took, tc.tries)
		}
	}
}

func TestExchangeCanceled(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(int, []byte) [][]byte { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := s.pcp().announce(ctx)
	if !errors.Is(err, context.Canceled) || errors.Is(err, forward.ErrNoGateway) || time.Since(start) > 300*time.Millisecond {
		t.Errorf("%v after %v; want canceled at once", err, time.Since(start))
	}
	n := s.count()
	if _, err := s.pcp().announce(ctx); !errors.Is(err, context.Canceled) || s.count() != n {
		t.Errorf("announce on a cancelled context: %v, %d sent; want nothing sent", err, s.count()-n)
	}
}

// TestExchangeNothingListens: ICMP port unreachable ends NAT-PMP at once
// (RFC 6886 §3.1) and is noted by PCP, which tries until the deadline. Not
// parallel: it sends to a closed port the kernel may hand to another test.
func TestExchangeNothingListens(t *testing.T) {
	s := newRawServer(t, nil)
	s.conn.Close() // the port is closed: loopback answers ICMP port unreachable
	for _, tc := range []struct {
		ask           func() error
		says          string
		least, atMost time.Duration
	}{
		{func() error { _, err := s.natpmp().announce(context.Background()); return err },
			"nothing listens for NAT-PMP at " + s.addr().String() + " (is NAT-PMP switched off on the router?); try backend upnp", 0, 200 * time.Millisecond},
		{func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
			defer cancel()
			_, err := s.pcp().announce(ctx)
			return err
		}, "nothing listens for PCP at", 350 * time.Millisecond, time.Second},
	} {
		start := time.Now()
		err := tc.ask()
		if took := time.Since(start); !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(err.Error(), tc.says) || took < tc.least || took > tc.atMost {
			t.Errorf("%v after %v; want ErrNoGateway saying %q", err, took, tc.says)
		}
	}
}

// TestExchangeOtherVersion: an answer in the other protocol of the family
// is the gateway saying it speaks that one (RFC 6887 §9).
func TestExchangeOtherVersion(t *testing.T) {
	t.Parallel()
	natpmpOnly := newRawServer(t, func(int, []byte) [][]byte { return [][]byte{unhex(t, `00 81 0001 00000e10`)} })
	_, err := natpmpOnly.pcp().mapPort(testCtx(t), entry41500(), time.Hour)
	if !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(err.Error(), "NAT-PMP (version 0, RFC 6886) only: it does not speak PCP; try backend natpmp") {
		t.Errorf("PCP to a NAT-PMP-only gateway: %v", err)
	}
	pcpOnly := newRawServer(t, func(_ int, req []byte) [][]byte {
		return [][]byte{pcpAnswer(append(req, make([]byte, 24)...), UnsuppVersion, 0, 7, 0, "")}
	})
	_, err = pcpOnly.natpmp().announce(testCtx(t))
	if !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(err.Error(), "answered in PCP (version 2, RFC 6887): it does not speak NAT-PMP; try backend pcp") {
		t.Errorf("NAT-PMP to a PCP-only gateway: %v", err)
	}
	draft := newRawServer(t, func(int, []byte) [][]byte {
		return [][]byte{unhex(t, `01 80 00 01 00000000 00000000 00000000 00000000 00000000`)}
	})
	if _, err := draft.pcp().announce(testCtx(t)); !errors.Is(err, forward.ErrNoGateway) || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("PCP to a draft PCP gateway: %v", err)
	}
}

// TestExchangeResults: refusals come with the epoch of their answer, so
// the backend checks it too.
func TestExchangeResults(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(_ int, req []byte) [][]byte {
		return [][]byte{pcpAnswer(req[:24], NotAuthorized, 0, 7, 0, "")} // header only
	})
	a, err := s.pcp().mapPort(testCtx(t), entry41500(), time.Hour)
	var code ResultCode
	if !errors.As(err, &code) || code != NotAuthorized || !errors.Is(err, forward.ErrNotAuthorized) || !a.answered || a.epoch != 7 {
		t.Errorf("mapPort = %+v, %v; want NOT_AUTHORIZED with epoch 7", a, err)
	}
}

// TestExchangeIgnoresMalformed: a datagram from the gateway's address that
// cannot be parsed is dropped and the exchange waits on (RFC 6886 §3.1,
// RFC 6887 §8.3: a client ignores what it cannot parse), until the answer
// or the deadline. Only a well-formed answer in the other version of the
// family ends it early (TestExchangeOtherVersion). The gateway here sends
// garbage alone to the first request, and garbage then the answer to the
// retransmission.
func TestExchangeIgnoresMalformed(t *testing.T) {
	t.Parallel()
	garbage := map[string][]string{
		"natpmp": {
			`ff ff`, `ff ff ff ff ff ff ff ff`, `01 80`, `02 81 0000 00000009`,
			`02 80 00 01 00000000`, // UNSUPP_VERSION cut short of PCP's 24-byte header
			`02 80 00 00 00000000 0000002a 00000000 00000000 00000000`, // a PCP success: not how a PCP server refuses version 0 (§9)
		},
		"pcp": {
			`00 80`, `00 80 0001`, `00 ff ff ff ff ff ff ff`,
			`00 81 0000 00000009`, // a NAT-PMP success of the header alone
			`00 80 0001 00000009 32`,
		},
	}
	for name, ask := range map[string]func(*rawServer) error{
		"natpmp": func(s *rawServer) error {
			a, err := s.natpmp().announce(testCtx(t))
			if err == nil && a.external != netip.MustParseAddr("50.60.70.1") {
				err = errors.New("not the answer")
			}
			return err
		},
		"pcp": func(s *rawServer) error {
			a, err := s.pcp().mapPort(testCtx(t), entry41500(), time.Hour)
			if err == nil && a.port != 41500 {
				err = errors.New("not the answer")
			}
			return err
		},
	} {
		s := newRawServer(t, func(n int, req []byte) [][]byte {
			var out [][]byte
			for _, g := range garbage[name] {
				out = append(out, unhex(t, g))
			}
			if n == 1 {
				return out
			}
			if req[0] == natpmpVersion {
				return append(out, unhex(t, `00 80 0000 00000009 323c4601`))
			}
			return append(out, granted(req))
		})
		if err := ask(s); err != nil || s.count() != 2 {
			t.Errorf("%s: %v after %d requests; want the answer to the second, garbage ignored", name, err, s.count())
		}
	}
}
