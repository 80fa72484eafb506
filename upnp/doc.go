// Package upnp finds the home router and talks to it over UPnP IGD
// (Internet Gateway Device, v1 and v2) as a forward.Backend (type IGD).
// The router's other port-mapping protocols, PCP and NAT-PMP, live in
// package upnp/pcp; GatewayAddr, the default gateway, serves both.
//
// Discovery is built for speed: the default gateway comes from
// github.com/jackpal/gateway, and one UDP socket sends SSDP M-SEARCH both
// unicast to gateway:1900 and multicast to 239.255.255.250:1900 at once,
// re-sending a couple of times in case of loss. The first answer sent by
// the gateway whose LOCATION points at the gateway itself wins; answers
// from or naming another host are ignored, so a rogue LAN device cannot
// pose as the router. Every request after that — the description, each
// redirect hop, the control URL, also as remembered in the discovery cache
// — must go to that same address (another port is fine), and every answer
// is read whole up to a bound no router reaches, with the characters XML
// forbids (raw or referenced) made printable instead of failing the whole
// answer. The root device description is parsed into github.com/huin/goupnp's
// types, and the port-mapping service is chosen by service type whatever
// device version is advertised: WANIPConnection:2, then WANIPConnection:1,
// then WANPPPConnection:1.
//
// The backend (IGD) turns the UPnP error codes routers really send into the
// errors forward callers branch on: 718 becomes a *forward.ConflictError
// naming the holder, 606 and secure-mode refusals wrap
// forward.ErrNotAuthorized, a 501 on a router whose own WAN address is
// private or shared wraps forward.ErrDoubleNAT, and 725 or 402 on a finite
// lease is retried as a permanent lease. Every SOAP fault is also available
// as a *SOAPError.
//
// IPv6 mappings (Key.Family IPv6) are pinholes in the router's firewall,
// opened with WANIPv6FirewallControl:1 (pinhole.go's client) by the IGD's
// IPv6 side (pinholes.go). Secure mode grants a pinhole only to the
// address asking, so the same router is found again over IPv6
// (discover6.go: SSDP on ff02::c from this host's IPv6 address, else the
// IPv6 default gateway; its description must carry the IPv4 IGD's UDN),
// remembered in the discovery cache, and every pinhole request is sent
// from the internal client's own address. Routers cannot list pinholes,
// so their UniqueIDs are kept in the state directory
// (pinholerecords.go), and List reports them from there after asking the
// router about one of them: a router that lost it restarted, and every
// pinhole is opened again.
//
// Speed comes from few requests, since a router with many mappings is slow
// to answer each: List uses GetListOfPortMappings (WANIPConnection:2) where
// it works, Add trusts what List saw moments ago instead of asking first,
// and with DiscoverOptions.CacheDir a repeated run skips SSDP and the
// description fetch, rediscovering only when the cached gateway stops
// answering.
//
// Files: ssdp.go (M-SEARCH and response parsing), discover.go (the search),
// cache.go (the discovery cache), stale.go (proving a cached IGD),
// description.go (root description and service choice), gatewayhttp.go
// (the HTTP client every request goes through: the gateway rule and the
// size bound), lenient.go (characters XML forbids, as routers send them),
// igd.go (the backend), listing.go (GetListOfPortMappings), snapshot.go
// (what List saw, for Add), add.go (AddPortMapping and its quirks),
// soaperror.go (SOAP faults and UPnP error codes), diagnose.go (WAN address
// checks), arp.go (the gateway's hardware address for the cache key),
// pinhole.go (the WANIPv6FirewallControl:1 client), pinholes.go (the
// IGD's IPv6 side), discover6.go (the router over IPv6), pinholerecords.go
// (the pinholes' UniqueIDs).
package upnp

// otherProtocols is the advice when UPnP cannot do the job.
const otherProtocols = "try backend pcp or natpmp, or forward the port in the router's web page"
