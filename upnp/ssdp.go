package upnp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// ssdpMulticast is the SSDP group and port (UPnP Device Architecture 1.1,
// §1.1.2).
var ssdpMulticast = netip.MustParseAddrPort("239.255.255.250:1900")

// ssdpPort is the port a device answers unicast M-SEARCH on (UDA 1.1,
// §1.3.2: "unicast M-SEARCH … to the device's port 1900").
const ssdpPort = 1900

// searchTargets are the STs portfwd searches for: both IGD versions, the
// three common port-mapping services, and the DSL Forum's IGD (TR-064
// boxes declare every type under urn:dslforum-org). A router answers with a LOCATION that points
// at its root description whichever ST matched, so any one answer is
// enough; asking for all of them finds routers that only answer for the
// exact service type (seen on some ISP boxes) or only for IGD:1.
var searchTargets = []string{
	"urn:schemas-upnp-org:device:InternetGatewayDevice:2",
	"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
	"urn:schemas-upnp-org:service:WANIPConnection:2",
	"urn:schemas-upnp-org:service:WANIPConnection:1",
	"urn:schemas-upnp-org:service:WANPPPConnection:1",
	"urn:dslforum-org:device:InternetGatewayDevice:1",
}

// fallbackTargets are searched when the gateway answered none of
// searchTargets within a second: ssdp:all, which every SSDP device must
// answer (UDA 1.1 §1.3.2), for ISP boxes that answer nothing narrower
// (reported for Huawei HG531). It is the last resort because a device
// answers it once per device and service it has: a dozen datagrams from a
// router, more from every other device on the LAN.
var fallbackTargets = []string{"ssdp:all"}

// firstTarget is the one ST of the first search round. IGD:1 because every
// IGD answers it: UDA 1.1 §1.3.2 has a device answer a search for an older
// version of its type, and IGD:2 routers keep answering IGD:1 searches for
// the many IGD:1-only clients (miniupnpd does in IGD:2 mode). Routers that
// answer only some other ST get it in the re-send rounds.
const firstTarget = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"

// mSearch builds one M-SEARCH request (UDA 1.1, §1.3.2). host is the
// destination as it goes in the HOST header. MX is the multicast response
// window in seconds: 1 is the spec's minimum, keeping the devices' random
// answer delay short. UDA 1.1 says unicast requests carry no MX and are
// answered at once; it is sent anyway because some stacks drop requests
// without it, and they treat unicast the same.
func mSearch(host netip.AddrPort, st string) []byte {
	return []byte("M-SEARCH * HTTP/1.1\r\n" +
		"HOST: " + host.String() + "\r\n" +
		"MAN: \"ssdp:discover\"\r\n" +
		"MX: 1\r\n" +
		"ST: " + st + "\r\n" +
		"USER-AGENT: Linux/1 UPnP/1.1 portfwd/1\r\n" +
		"\r\n")
}

// ssdpResponse is the part of an M-SEARCH answer portfwd uses.
type ssdpResponse struct {
	Location *url.URL // the root device description
	ST       string
	USN      string
	Server   string
}

// parseSSDPResponse parses one M-SEARCH answer: an HTTP/1.x 200 response
// over UDP with no body (UDA 1.1, §1.3.3). It accepts only answers with an
// absolute http LOCATION whose host is an IP literal, since the caller
// compares that host with the gateway's address.
func parseSSDPResponse(b []byte) (ssdpResponse, error) {
	// Quirk: some devices end header lines with a bare "\n" or forget the
	// blank line that ends the header; net/textproto accepts the first, and
	// appending the terminator fixes the second.
	if !bytes.HasSuffix(b, []byte("\r\n\r\n")) && !bytes.HasSuffix(b, []byte("\n\n")) {
		b = append(b[:len(b):len(b)], "\r\n\r\n"...)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		return ssdpResponse{}, fmt.Errorf("reading SSDP answer: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ssdpResponse{}, fmt.Errorf("SSDP answer status %q", resp.Status)
	}
	loc, err := parseLocation(resp.Header.Get("Location"))
	if err != nil {
		return ssdpResponse{}, err
	}
	return ssdpResponse{
		Location: loc,
		ST:       strings.TrimSpace(resp.Header.Get("St")),
		USN:      strings.TrimSpace(resp.Header.Get("Usn")),
		Server:   strings.TrimSpace(resp.Header.Get("Server")),
	}, nil
}

// parseLocation checks a LOCATION header: an absolute http URL whose host is
// an IPv4 or IPv6 literal.
func parseLocation(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("SSDP answer has no LOCATION")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("SSDP LOCATION %q: %w", s, err)
	}
	if !strings.EqualFold(u.Scheme, "http") {
		return nil, fmt.Errorf("SSDP LOCATION %q is not an http URL", s)
	}
	if _, err := netip.ParseAddr(u.Hostname()); err != nil {
		return nil, fmt.Errorf("SSDP LOCATION %q does not name an IP address", s)
	}
	return u, nil
}

// locationHost is the IP address a LOCATION URL names; parseLocation has
// checked that it is one.
func locationHost(u *url.URL) netip.Addr {
	a, _ := netip.ParseAddr(u.Hostname())
	return a.Unmap()
}
