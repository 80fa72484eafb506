package upnp

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// serviceClient sends the port-mapping actions to one service's control
// URL. The actions and their arguments are the same in every version of
// WANIPConnection and WANPPPConnection, and in their urn:dslforum-org
// twins (WANIPConnection:1 §2.4, WANPPPConnection:1 §2.4, TR-064): only
// the service type in the SOAPAction header and the action's namespace
// differ. So one client serves every service a router may offer, with the
// type the router itself spells, where goupnp's generated clients fix one
// type each.
type serviceClient struct {
	sc  soapPerformer // goupnp's *soap.SOAPClient, or one bounding its time (timedSOAP)
	urn string        // the service type as the description spells it
}

// do sends action with the in arguments and decodes the answer's into out;
// both are pointers to structs of strings (goupnp's SOAP encoding).
func (c serviceClient) do(ctx context.Context, action string, in, out any) error {
	return c.sc.PerformActionCtx(ctx, c.urn, action, in, out)
}

// keyArgs are the arguments that name a mapping.
type keyArgs struct {
	NewRemoteHost   string
	NewExternalPort string
	NewProtocol     string
}

func mappingKey(remoteHost string, ext uint16, proto string) keyArgs {
	return keyArgs{NewRemoteHost: remoteHost, NewExternalPort: strconv.Itoa(int(ext)), NewProtocol: proto}
}

// AddPortMappingCtx sends AddPortMapping (WANIPConnection:1 §2.4.16).
func (c serviceClient) AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string,
	internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32) error {
	in := struct {
		NewRemoteHost             string
		NewExternalPort           string
		NewProtocol               string
		NewInternalPort           string
		NewInternalClient         string
		NewEnabled                string
		NewPortMappingDescription string
		NewLeaseDuration          string
	}{remoteHost, strconv.Itoa(int(externalPort)), protocol, strconv.Itoa(int(internalPort)), internalClient,
		soapBool(enabled), description, strconv.FormatUint(uint64(leaseSeconds), 10)}
	return c.do(ctx, "AddPortMapping", &in, nil)
}

// DeletePortMappingCtx sends DeletePortMapping (§2.4.17).
func (c serviceClient) DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error {
	in := mappingKey(remoteHost, externalPort, protocol)
	return c.do(ctx, "DeletePortMapping", &in, nil)
}

// entryArgs are the answer of GetSpecificPortMappingEntry, and the tail
// of GetGenericPortMappingEntry's.
type entryArgs struct {
	NewInternalPort           string
	NewInternalClient         string
	NewEnabled                string
	NewPortMappingDescription string
	NewLeaseDuration          string
}

// decode converts the answer's fields. Routers pad numbers with
// whitespace and spell booleans in several ways, so both are read
// leniently.
func (e entryArgs) decode() (internalPort uint16, client string, enabled bool, desc string, lease uint32, err error) {
	if internalPort, err = parseUint16("NewInternalPort", e.NewInternalPort); err != nil {
		return
	}
	var l uint64
	if s := strings.TrimSpace(e.NewLeaseDuration); s != "" {
		if l, err = strconv.ParseUint(s, 10, 32); err != nil {
			err = fmt.Errorf("NewLeaseDuration %q is not a number of seconds", e.NewLeaseDuration)
			return
		}
	}
	return internalPort, e.NewInternalClient, parseSOAPBool(e.NewEnabled), e.NewPortMappingDescription, uint32(l), nil
}

// GetSpecificPortMappingEntryCtx sends GetSpecificPortMappingEntry (§2.4.15).
func (c serviceClient) GetSpecificPortMappingEntryCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) (
	uint16, string, bool, string, uint32, error) {
	in := mappingKey(remoteHost, externalPort, protocol)
	var out entryArgs
	if err := c.do(ctx, "GetSpecificPortMappingEntry", &in, &out); err != nil {
		return 0, "", false, "", 0, err
	}
	return out.decode()
}

// GetGenericPortMappingEntryCtx sends GetGenericPortMappingEntry (§2.4.14).
func (c serviceClient) GetGenericPortMappingEntryCtx(ctx context.Context, index uint16) (remoteHost string, externalPort uint16, protocol string,
	internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32, err error) {
	in := struct{ NewPortMappingIndex string }{strconv.Itoa(int(index))}
	var out struct {
		keyArgs
		entryArgs
	}
	if err = c.do(ctx, "GetGenericPortMappingEntry", &in, &out); err != nil {
		return
	}
	if externalPort, err = parseUint16("NewExternalPort", out.NewExternalPort); err != nil {
		return
	}
	internalPort, internalClient, enabled, description, leaseSeconds, err = out.decode()
	return out.NewRemoteHost, externalPort, out.NewProtocol, internalPort, internalClient, enabled, description, leaseSeconds, err
}

// GetExternalIPAddressCtx sends GetExternalIPAddress (§2.4.18).
func (c serviceClient) GetExternalIPAddressCtx(ctx context.Context) (string, error) {
	var out struct{ NewExternalIPAddress string }
	err := c.do(ctx, "GetExternalIPAddress", nil, &out)
	return out.NewExternalIPAddress, err
}

// GetStatusInfoCtx sends GetStatusInfo (§2.4.11) and returns
// NewConnectionStatus: "Connected", "Disconnected", ….
func (c serviceClient) GetStatusInfoCtx(ctx context.Context) (string, error) {
	var out struct {
		NewConnectionStatus    string
		NewLastConnectionError string
		NewUptime              string
	}
	err := c.do(ctx, "GetStatusInfo", nil, &out)
	return strings.TrimSpace(out.NewConnectionStatus), err
}

// UptimeCtx sends GetStatusInfo (§2.4.11) and returns NewUptime, the
// seconds since the connection (on miniupnpd: the daemon, or with
// system_uptime the system) came up; 0 when the router does not say.
func (c serviceClient) UptimeCtx(ctx context.Context) (time.Duration, error) {
	var out struct {
		NewConnectionStatus    string
		NewLastConnectionError string
		NewUptime              string
	}
	if err := c.do(ctx, "GetStatusInfo", nil, &out); err != nil {
		return 0, err
	}
	s, err := strconv.ParseUint(strings.TrimSpace(out.NewUptime), 10, 32)
	if err != nil {
		return 0, nil
	}
	return time.Duration(s) * time.Second, nil
}

// soapBool is a UPnP boolean as routers best understand it: "1" or "0".
func soapBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// parseSOAPBool reads a UPnP boolean ("1", "true", "yes" in any case and
// padding); anything else is false.
func parseSOAPBool(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// parseUint16 reads a port number, tolerating padding.
func parseUint16(name, s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a port number", name, s)
	}
	return uint16(n), nil
}
