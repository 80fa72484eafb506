package upnp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"time"

	"github.com/jackpal/gateway"

	"github.com/portfwd/portfwd/forward"
)

// DefaultDiscoverTimeout bounds a whole Discover call when
// DiscoverOptions.Timeout is zero. A router on the LAN answers a unicast
// M-SEARCH in a few milliseconds; the rest is slack for lost packets and a
// slow description server.
const DefaultDiscoverTimeout = 2 * time.Second

// resendAfter are the offsets at which the M-SEARCHes are (re)sent. SSDP is
// UDP and UDA 1.1 §1.3.2 recommends sending more than once; short gaps keep
// discovery fast when the first packet is lost. The last round is the
// fallback search (fallbackTargets), sent only when the gateway has not
// answered the others by then.
var resendAfter = []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, time.Second}

// DiscoverOptions tunes Discover.
type DiscoverOptions struct {
	// Gateway is the router's LAN address. When unset, the default gateway
	// of this host is used (github.com/jackpal/gateway).
	Gateway netip.Addr
	// Timeout bounds the whole discovery; DefaultDiscoverTimeout when zero.
	// The CLI passes --timeout, so a router slow to answer is still found.
	Timeout time.Duration
	// RequestTimeout bounds each request the returned IGD sends, each on
	// its own (IGD.limit); soapTimeout when zero. The CLI passes --timeout.
	RequestTimeout time.Duration
	// CacheDir, when set, is where Discover keeps what it found, one small
	// JSON file per gateway address, so that the next run skips SSDP and
	// the description fetch. The CLI passes os.UserCacheDir()/portfwd.
	CacheDir string
	// Refresh ignores the cache entry; discovery then rewrites it.
	Refresh bool
	// StateDir, when set, is where the IGD keeps the UniqueIDs of the IPv6
	// pinholes it opens (pinholeRecords), which no router lists; unset,
	// they are kept in memory only. The CLI passes --state-dir.
	StateDir string

	// Test hooks: where unicast and multicast M-SEARCHes go.
	unicastPort uint16         // 0 means ssdpPort
	multicast   netip.AddrPort // zero means ssdpMulticast
	noUnicast   bool
	noMulticast bool
	self6       *forward.SelfIPv6 // this host's IPv6 address; nil: ChooseSelfIPv6
}

// Discover finds the gateway's UPnP IGD and returns a backend for it. It
// sends SSDP M-SEARCH unicast to the gateway and multicast to the SSDP group
// from one socket, and uses the first answer whose LOCATION is on the
// gateway itself. When nothing usable answers in time, the error wraps
// forward.ErrNoGateway and says what to try (but gateway.address: the
// caller knows whether it was given).
//
// With opts.CacheDir set, a cached IGD for the gateway address is returned
// without any network I/O; should its first request fail below SOAP, it
// rediscovers once by itself (see staleCheck).
func Discover(ctx context.Context, opts DiscoverOptions) (*IGD, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultDiscoverTimeout
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d).Round(time.Millisecond) // say the wait it really was
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	gw, err := GatewayAddr(opts.Gateway)
	if err != nil {
		return nil, forward.NoGateway(fmt.Errorf("this host has no default gateway to ask (%v); set gateway.address (or --gateway) to the router's LAN address", err))
	}
	if g := fromCache(opts, gw); g != nil {
		g.limit(opts.RequestTimeout)
		return g, withIPv6(g, gw, opts)
	}
	g, err := search(ctx, gw, timeout, opts)
	if err != nil {
		return nil, err
	}
	g.limit(opts.RequestTimeout)
	if err := withIPv6(g, gw, opts); err != nil {
		return nil, err
	}
	storeInCache(opts, gw, g)
	return g, nil
}

// withIPv6 gives g its IPv6 side (pinholes): this host's IPv6 address, the
// pinhole records of gateway gw, and the IPv6 URLs the cache remembered.
// Finding them later rewrites the cache entry.
func withIPv6(g *IGD, gw netip.Addr, opts DiscoverOptions) error {
	path := ""
	if opts.StateDir != "" {
		path = pinholePath(opts.StateDir, gw)
	}
	rec, err := openPinholeRecords(path, gw)
	if err != nil {
		return err
	}
	root, _ := url.Parse(g.rootURL)
	self6 := forward.ChooseSelfIPv6(g.local)
	if opts.self6 != nil {
		self6 = *opts.self6
	}
	old := g.v6
	g.v6 = newPinholes(g.pinholeService, g.udn, root, self6, rec)
	g.v6.timeout = opts.RequestTimeout
	if old != nil {
		g.v6.root6, g.v6.control6, g.v6.cached = old.root6, old.control6, old.root6 != nil
	}
	g.v6.remember = func() { storeInCache(opts, gw, g) }
	return nil
}

// search runs the SSDP search for the IGD on gw.
func search(ctx context.Context, gw netip.Addr, timeout time.Duration, opts DiscoverOptions) (*IGD, error) {
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, fmt.Errorf("opening a socket for SSDP: %w", err)
	}
	defer conn.Close()
	answers := make(chan ssdpAnswer, 16)
	go readAnswers(ctx, conn, answers)
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	dsts := searchDestinations(gw, opts)
	// The first round goes out before any answer is read: a fast answer
	// ends the search and closes conn, and the multicast search must not
	// lose that race (UDA 1.1 §1.3.2 has both reach the gateway at once).
	sendRound(conn, dsts, 0)
	go sendSearches(sendCtx, conn, dsts)
	s := searchState{answered: stopSending}
	return s.await(ctx, gw, timeout, answers)
}

// GatewayAddr is the gateway to talk to: the one given, or this host's
// default gateway from the routing table.
func GatewayAddr(given netip.Addr) (netip.Addr, error) {
	if given.IsValid() {
		return given.Unmap(), nil
	}
	ip, err := gateway.DiscoverGateway()
	if err != nil {
		return netip.Addr{}, err
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, fmt.Errorf("bad gateway address %v", ip)
	}
	return addr.Unmap(), nil
}

// searchDestinations are where M-SEARCHes go: the gateway's SSDP port and
// the SSDP multicast group.
func searchDestinations(gw netip.Addr, opts DiscoverOptions) []netip.AddrPort {
	var dsts []netip.AddrPort
	if !opts.noUnicast {
		port := opts.unicastPort
		if port == 0 {
			port = ssdpPort
		}
		dsts = append(dsts, netip.AddrPortFrom(gw, port))
	}
	if !opts.noMulticast {
		mc := opts.multicast
		if !mc.IsValid() {
			mc = ssdpMulticast
		}
		dsts = append(dsts, mc)
	}
	return dsts
}

// sendSearches sends the re-send rounds of M-SEARCHes, each at its
// resendAfter offset from the first round, sent just before.
func sendSearches(ctx context.Context, conn *net.UDPConn, dsts []netip.AddrPort) {
	start := time.Now()
	for round := 1; round < len(resendAfter); round++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(resendAfter[round]))):
		}
		sendRound(conn, dsts, round)
	}
}

// sendRound sends round n's M-SEARCHes to every destination: the first
// round only for firstTarget, the re-sends for every search target. Send
// errors are ignored: multicast fails on hosts without a multicast route,
// and the unicast search may still succeed.
func sendRound(conn *net.UDPConn, dsts []netip.AddrPort, n int) {
	for _, dst := range dsts {
		for _, st := range roundTargets(n) {
			_, _ = conn.WriteToUDPAddrPort(mSearch(dst, st), dst)
		}
	}
}

// roundTargets are the search targets of re-send round n (0 is the first
// send; the last is the fallback). miniupnpd answers each M-SEARCH only after ~50 ms and serves
// nothing else meanwhile: ten M-SEARCHes at once kept it busy long enough
// to slow the description fetch and the first SOAP call that follow ten
// times over (measured in the lab). So the first round asks once.
func roundTargets(n int) []string {
	switch n {
	case 0:
		return []string{firstTarget}
	case len(resendAfter) - 1:
		return fallbackTargets
	}
	return searchTargets
}

// ssdpAnswer is one parsed datagram and who sent it.
type ssdpAnswer struct {
	resp ssdpResponse
	from netip.Addr
}

// readAnswers parses datagrams from conn until it is closed, passing on the
// valid M-SEARCH answers. Anything unparsable is dropped: the socket is
// open to the whole LAN.
func readAnswers(ctx context.Context, conn *net.UDPConn, out chan<- ssdpAnswer) {
	buf := make([]byte, 4096)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		resp, err := parseSSDPResponse(buf[:n])
		if err != nil {
			continue
		}
		select {
		case out <- ssdpAnswer{resp: resp, from: from.Addr().Unmap()}:
		case <-ctx.Done():
			return
		}
	}
}

// await takes answers until one names a usable IGD on gw.
func (s *searchState) await(ctx context.Context, gw netip.Addr, timeout time.Duration, answers <-chan ssdpAnswer) (*IGD, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, s.failure(ctx, gw, timeout)
		case a := <-answers:
			if igd := s.try(ctx, gw, a); igd != nil {
				return igd, nil
			}
		}
	}
}

// searchState remembers what discovery saw, for the error when it fails.
type searchState struct {
	// answered stops the re-sends once the gateway has answered: every
	// M-SEARCH costs the router one answer per search target, and
	// miniupnpd queues them, delaying the next client's answers.
	answered func()
	tried    map[string]bool
	failed   []error      // descriptions on the gateway that could not be used
	foreign  []netip.Addr // devices that answered but are not the gateway, or that its answer named
}

// try uses answer a if it came from the gateway, its LOCATION is on the
// gateway too, and it is new. Other answers are refused: any LAN device can
// answer SSDP, and only the router itself may be believed to be the router
// — neither a device naming the router's address (its admin pages) nor the
// router naming another device.
func (s *searchState) try(ctx context.Context, gw netip.Addr, a ssdpAnswer) *IGD {
	if host := answerHost(a, gw); host != gw {
		if !slices.Contains(s.foreign, host) {
			s.foreign = append(s.foreign, host)
		}
		return nil
	}
	s.answered()
	loc := a.resp.Location.String()
	if s.tried[loc] {
		return nil
	}
	if s.tried == nil {
		s.tried = map[string]bool{}
	}
	s.tried[loc] = true
	igd, err := newIGDAt(ctx, a.resp.Location, addrHost(gw))
	if err != nil {
		s.failed = append(s.failed, err)
		return nil
	}
	return igd
}

// answerHost is the host answer a speaks for, which must be gw: its
// sender when that is not gw, else the host its LOCATION names.
func answerHost(a ssdpAnswer, gw netip.Addr) netip.Addr {
	if from := a.from.WithZone(""); from != gw {
		return from
	}
	return locationHost(a.resp.Location)
}

// failure is the error for a discovery that found nothing usable.
func (s *searchState) failure(ctx context.Context, gw netip.Addr, timeout time.Duration) error {
	if errors.Is(context.Cause(ctx), context.Canceled) {
		return fmt.Errorf("discovering the UPnP gateway: %w", ctx.Err())
	}
	if len(s.failed) > 0 {
		return forward.NoGateway(fmt.Errorf("the gateway %s answered SSDP but its UPnP description is unusable (%w); %s",
			gw, errors.Join(s.failed...), otherProtocols))
	}
	hint := ""
	if len(s.foreign) > 0 {
		hint = fmt.Sprintf(" (UPnP devices at %v answered, but they are not the gateway; if one is your router, set gateway.address to it)", s.foreign)
	}
	return forward.NoGateway(fmt.Errorf("no UPnP gateway answered at %s within %s%s; is UPnP enabled on the router? if it is slow to answer, raise --timeout",
		gw, timeout, hint))
}
