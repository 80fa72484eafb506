package upnp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// The PCP exchange, RFC 6887 §8: one request on its own UDP socket,
// retransmitted until a matching response arrives or the deadline passes.

// Retransmission timing. §8.1.1 starts at 3 s and never gives up; a tool a
// person waits for starts faster and stops at a deadline.
const (
	pcpInitialRTO     = 250 * time.Millisecond
	pcpMaxRTO         = time.Second
	pcpDefaultTimeout = 2 * time.Second // when ctx has no deadline
)

// PCPClient talks PCP to one gateway. It keeps no mapping state: a caller
// remembers each mapping's nonce to renew or delete it (§11.2, §15).
type PCPClient struct {
	Gateway netip.Addr
	// Local is this host's address toward the gateway: the client IP field
	// of every request (§7.1). NewPCPClient learns it.
	Local netip.Addr

	port          uint16        // the server's port; pcpPort unless a test moves it
	initial, maxi time.Duration // retransmission timing; zero: the defaults
}

// MapRequest asks for one mapping (§11.1). A renewal repeats the request
// with the same Nonce; a delete is the same request with Lifetime 0 (§15).
type MapRequest struct {
	Nonce         [12]byte
	Protocol      forward.Protocol
	InternalPort  uint16
	SuggestedPort uint16     // 0: any port
	SuggestedIP   netip.Addr // zero: no preference
	Lifetime      time.Duration
	ThirdParty    netip.Addr // zero: map to this host; else THIRD_PARTY (§13.1)
}

// MapResponse is what the gateway granted (§11.1). Epoch is the server's
// epoch time, to notice a gateway that restarted and lost its mappings
// (§8.5).
type MapResponse struct {
	Lifetime     time.Duration
	Epoch        uint32
	ExternalPort uint16
	ExternalIP   netip.Addr
	Nonce        [12]byte
}

// NewNonce returns a random mapping nonce (§11.1, §11.2: unguessable, so
// that another host cannot take over the mapping).
func NewNonce() [12]byte {
	var n [12]byte
	_, _ = rand.Read(n[:]) // crypto/rand.Read never fails (Go 1.24+)
	return n
}

// NewPCPClient returns a client for the PCP server on gw, with Local set to
// this host's address toward gw. It sends nothing.
func NewPCPClient(gw netip.Addr) (*PCPClient, error) {
	c := &PCPClient{Gateway: gw}
	local, err := pcpLocalToward(c.server())
	if err != nil {
		return nil, err
	}
	c.Local = local
	return c, nil
}

// pcpLocalToward learns the source address the kernel picks for server with
// a UDP "connect", which sends no packet.
func pcpLocalToward(server netip.AddrPort) (netip.Addr, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding this host's address toward %s: %w", server.Addr(), err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// Announce sends ANNOUNCE (§14.1) and returns the server's epoch time. It
// proves the gateway speaks PCP without changing anything.
func (c *PCPClient) Announce(ctx context.Context) (epoch uint32, err error) {
	req := pcpRequest{Opcode: pcpOpAnnounce, Client: c.Local}
	m, err := c.exchange(ctx, &req, func(m pcpMessage) bool { return m.Opcode == pcpOpAnnounce })
	if err != nil {
		return 0, err
	}
	return m.Epoch, pcpResultError(m, req)
}

// Map creates, renews (same Nonce) or deletes (Lifetime 0, same Nonce) a
// mapping (§11, §15). A result other than SUCCESS is a *PCPError; its Epoch
// is still returned.
func (c *PCPClient) Map(ctx context.Context, r MapRequest) (MapResponse, error) {
	req, err := c.mapRequest(r)
	if err != nil {
		return MapResponse{}, err
	}
	m, err := c.exchange(ctx, &req, req.Map.answeredBy)
	if err != nil {
		return MapResponse{}, err
	}
	if req.Lifetime == 0 && m.Result == PCPNoResources {
		// §15: deleting an absent mapping succeeds. miniupnpd 2.3.1
		// answers NO_RESOURCES instead, which on a delete can mean nothing
		// else.
		return MapResponse{Epoch: m.Epoch, Nonce: r.Nonce}, nil
	}
	if err := pcpResultError(m, req); err != nil {
		return MapResponse{Epoch: m.Epoch, Nonce: r.Nonce}, err
	}
	return MapResponse{
		Lifetime:     time.Duration(m.Lifetime) * time.Second,
		Epoch:        m.Epoch,
		ExternalPort: m.Map.Port,
		ExternalIP:   m.Map.IP,
		Nonce:        m.Map.Nonce,
	}, nil
}

// mapRequest builds the MAP request of §11.1 for r.
func (c *PCPClient) mapRequest(r MapRequest) (pcpRequest, error) {
	proto, err := pcpProtocol(r.Protocol)
	if err != nil {
		return pcpRequest{}, err
	}
	if r.InternalPort == 0 {
		// §11.1: port 0 means "all ports", which portfwd never asks for.
		return pcpRequest{}, errors.New("PCP MAP needs an internal port")
	}
	return pcpRequest{
		Opcode:   pcpOpMap,
		Lifetime: pcpLifetime(r.Lifetime),
		Client:   c.Local,
		Map: &pcpMap{Nonce: r.Nonce, Protocol: proto, InternalPort: r.InternalPort,
			Port: r.SuggestedPort, IP: r.SuggestedIP},
		ThirdParty: r.ThirdParty,
	}, nil
}

// answeredBy reports whether m answers the MAP request q: same nonce,
// protocol and internal port (§11.4). An error response without the MAP
// payload cannot be checked and is taken as the answer.
func (q *pcpMap) answeredBy(m pcpMessage) bool {
	if m.Opcode != pcpOpMap {
		return false
	}
	if m.Map == nil {
		return m.Result != PCPSuccess
	}
	return m.Map.Nonce == q.Nonce && m.Map.Protocol == q.Protocol && m.Map.InternalPort == q.InternalPort
}

// pcpResultError is the *PCPError for m's result code, or nil on SUCCESS.
func pcpResultError(m pcpMessage, req pcpRequest) error {
	if m.Result == PCPSuccess {
		return nil
	}
	return &PCPError{Code: m.Result, Opcode: req.Opcode, Version: m.Version,
		Client: req.Client, ThirdParty: req.ThirdParty}
}

func (c *PCPClient) server() netip.AddrPort {
	port := c.port
	if port == 0 {
		port = pcpPort
	}
	return netip.AddrPortFrom(c.Gateway, port)
}

// pcpTransaction is one request in flight on its own connected socket.
type pcpTransaction struct {
	conn    *net.UDPConn
	server  netip.AddrPort
	match   func(pcpMessage) bool
	sent    int
	refused bool // an ICMP port unreachable came back
}

// exchange sends req and retransmits it (§8.1.1: doubling, capped, with
// ±10% jitter) until a response that match accepts arrives, or ctx ends.
// A response in another version (NAT-PMP, §9) always answers. req.Client
// defaults to the socket's own address.
func (c *PCPClient) exchange(ctx context.Context, req *pcpRequest, match func(pcpMessage) bool) (pcpMessage, error) {
	ctx, cancel := pcpDeadline(ctx)
	defer cancel()
	t, err := c.dial(match)
	if err != nil {
		return pcpMessage{}, err
	}
	defer t.conn.Close()
	if !req.Client.IsValid() {
		req.Client = t.conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	}
	// Unblock a pending read the moment ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = t.conn.SetReadDeadline(time.Now()) })
	defer stop()
	return t.run(ctx, req.marshal(), c.initialRTO(), c.maxRTO())
}

// pcpDeadline gives ctx the default deadline when it has none.
func pcpDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, pcpDefaultTimeout)
}

// dial opens the socket for one transaction. Connected, so the kernel
// already drops datagrams from anyone but the server.
func (c *PCPClient) dial(match func(pcpMessage) bool) (*pcpTransaction, error) {
	server := c.server()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server))
	if err != nil {
		return nil, fmt.Errorf("opening a PCP socket toward %s: %w", server, err)
	}
	return &pcpTransaction{conn: conn, server: server, match: match}, nil
}

func (c *PCPClient) initialRTO() time.Duration { return cmpOr(c.initial, pcpInitialRTO) }
func (c *PCPClient) maxRTO() time.Duration     { return cmpOr(c.maxi, pcpMaxRTO) }

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// run is the retransmission loop of §8.1.1, bounded by ctx.
func (t *pcpTransaction) run(ctx context.Context, pkt []byte, rto, maxRTO time.Duration) (pcpMessage, error) {
	for {
		if err := t.send(pkt); err != nil {
			return pcpMessage{}, err
		}
		m, ok, err := t.await(ctx, time.Now().Add(pcpJitter(rto)))
		if ok || err != nil {
			return m, err
		}
		if pcpExpired(ctx) {
			return pcpMessage{}, t.noAnswer(ctx)
		}
		rto = min(2*rto, maxRTO)
	}
}

// pcpExpired reports whether ctx has ended. It looks at the clock too: a
// deadline can pass a moment before ctx.Err says so, and a read clamped to
// that deadline would otherwise spin.
func pcpExpired(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() != nil || (ok && !time.Now().Before(dl))
}

// pcpJitter is §8.1.1's RAND: d scaled by a factor in [0.9, 1.1).
func pcpJitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*mrand.Float64()))
}

func (t *pcpTransaction) send(pkt []byte) error {
	t.sent++
	_, err := t.conn.Write(pkt)
	if errors.Is(err, syscall.ECONNREFUSED) {
		t.refused = true // an earlier datagram's ICMP error; keep trying
		return nil
	}
	if err != nil {
		return fmt.Errorf("sending PCP request to %s: %w", t.server, err)
	}
	return nil
}

// await reads until a matching response, until, or the end of ctx. Stray,
// malformed and foreign datagrams are ignored (§8.3).
func (t *pcpTransaction) await(ctx context.Context, until time.Time) (pcpMessage, bool, error) {
	if dl, ok := ctx.Deadline(); ok && dl.Before(until) {
		until = dl
	}
	_ = t.conn.SetReadDeadline(until)
	if ctx.Err() != nil { // ended before the deadline above was set
		return pcpMessage{}, false, nil
	}
	buf := make([]byte, pcpMaxSize+4) // room to see an oversized datagram
	for {
		n, from, err := t.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, syscall.ECONNREFUSED) {
			// An ICMP port unreachable for one of our datagrams: note it,
			// and wait out this round rather than resend at once.
			t.refused = true
			continue
		}
		if err != nil {
			return t.readError(err)
		}
		if m, ok := t.accept(buf[:n], from); ok {
			return m, true, nil
		}
	}
}

// readError turns a failed read into "retransmit" (a timeout) or a real
// error.
func (t *pcpTransaction) readError(err error) (pcpMessage, bool, error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return pcpMessage{}, false, nil
	}
	return pcpMessage{}, false, fmt.Errorf("reading PCP response from %s: %w", t.server, err)
}

// accept decodes b and reports whether it answers the request: it must
// come from the server's address and port (§8.3), parse, and match.
func (t *pcpTransaction) accept(b []byte, from netip.AddrPort) (pcpMessage, bool) {
	if from.Addr().Unmap() != t.server.Addr() || from.Port() != t.server.Port() {
		return pcpMessage{}, false
	}
	m, err := decodePCPResponse(b)
	if err != nil {
		return pcpMessage{}, false
	}
	return m, m.Version != pcpVersion || t.match(m)
}

// noAnswer explains why ctx ended without a response.
func (t *pcpTransaction) noAnswer(ctx context.Context) error {
	cause := ctx.Err()
	if errors.Is(cause, context.Canceled) {
		return fmt.Errorf("PCP request to %s: %w", t.server, cause)
	}
	if cause == nil { // the clock passed the deadline first
		cause = context.DeadlineExceeded
	}
	why := "no answer"
	if t.refused {
		why = "nothing listens there (ICMP port unreachable)"
	}
	return fmt.Errorf("PCP request to %s: %s after %d tries: %w (%w); use NAT-PMP or UPnP, or enable PCP on the router",
		t.server, why, t.sent, ErrPCPUnsupported, cause)
}

// pcpStateLost applies §8.5: the server lost its mappings (it rebooted or
// its external address changed) when its epoch went backwards, or when the
// time that passed on the server and on the client disagree by more than a
// sixteenth plus 2 s. prev is an earlier response's epoch, seen at prevAt.
func pcpStateLost(prev uint32, prevAt time.Time, cur uint32, curAt time.Time) bool {
	if int64(cur)+1 < int64(prev) {
		return true
	}
	client := int64(curAt.Sub(prevAt) / time.Second)
	server := int64(cur) - int64(prev)
	return client+2 < server-server/16 || server+2 < client-client/16
}
