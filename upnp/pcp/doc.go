// Package pcp is the port mapping protocol family that gateways answer on
// UDP port 5351: the Port Control Protocol (PCP, RFC 6887) and its
// predecessor, the NAT Port Mapping Protocol (NAT-PMP, RFC 6886).
//
// PCP is NAT-PMP's successor on the same port, and the two tell each other
// apart by the first byte of every message, the version (RFC 6887 §9):
// version 0 is NAT-PMP, version 2 is PCP. A gateway that does not speak the
// version asked answers in the one it speaks, so an answer in the other
// version is not silence but a gateway that speaks the other protocol; it
// is reported as forward.ErrNoGateway, like silence, so auto detection
// tries the next protocol.
//
// The package is written in layers, each once for both protocols:
//
//   - The codecs: natpmp.go (RFC 6886 §3) and codec.go (RFC 6887 §7, §11,
//     §13.1), hand-written byte layouts with strict length checks. Result
//     codes are typed constants (NATPMPResultCode, ResultCode), never
//     parsed from strings.
//   - One exchange (exchange.go): a connected UDP socket to the gateway,
//     retransmission (RFC 6886 §3.1, RFC 6887 §8.1.1) bounded by a
//     deadline, strays dropped, ICMP port unreachable noted, cancellation
//     at once.
//   - A small mapper interface (mapper.go), implemented once per protocol
//     (natpmpmapper.go, pcpmapper.go): where the protocols and the routers
//     that speak them differ — who may be mapped, what a delete takes
//     along, how a restart shows in the epoch.
//   - One Backend (backend.go), a forward.Backend over a mapper: neither
//     protocol can list the gateway's mappings, so List answers from
//     portfwd's own records, after the gateway's epoch shows it has not
//     restarted since they were written.
//   - PCP over IPv6 (backend6.go): IPv6 pinholes are asked of the
//     gateway's PCP server on its IPv6 address (gateway6.go finds it on
//     the IPv6 default route) by a second Backend sharing the records,
//     from the address being opened; NAT-PMP has none (RFC 6886).
//   - The records (records.go): what portfwd made on each gateway, kept in
//     the state directory's state.json, written atomically and only when
//     something changed. records_read.go reads them as little as it
//     trusts them: a state directory only its owner can write, a regular
//     file of bounded size, each record checked and one portfwd cannot
//     act on dropped with a warning, the temp files of a killed save
//     removed.
package pcp
