package upnp

import (
	"strings"
	"testing"
)

// miniupnpdAnswer is an M-SEARCH answer as miniupnpd 2.3.1 sends it.
const miniupnpdAnswer = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n" +
	"ST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n" +
	"USN: uuid:12345678-0000-0000-0000-000000000001::urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n" +
	"EXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n" +
	"LOCATION: http://192.168.77.1:5000/rootDesc.xml\r\nOPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n" +
	"01-NLS: 1\r\nBOOTID.UPNP.ORG: 1\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n"

func TestParseSSDPResponse(t *testing.T) {
	tests := []struct {
		name, in, wantLoc, wantErr string
	}{
		{name: "miniupnpd", in: miniupnpdAnswer, wantLoc: "http://192.168.77.1:5000/rootDesc.xml"},
		{name: "bare LF line ends (quirk)", in: strings.ReplaceAll(miniupnpdAnswer, "\r\n", "\n"),
			wantLoc: "http://192.168.77.1:5000/rootDesc.xml"},
		{name: "no blank line at the end (quirk)", in: strings.TrimSuffix(miniupnpdAnswer, "\r\n"),
			wantLoc: "http://192.168.77.1:5000/rootDesc.xml"},
		{name: "lower-case headers, HTTP/1.0", in: "HTTP/1.0 200 OK\r\nlocation:  http://10.0.0.1/igd.xml \r\nst: upnp:rootdevice\r\n\r\n",
			wantLoc: "http://10.0.0.1/igd.xml"},
		{name: "IPv6 literal", in: "HTTP/1.1 200 OK\r\nLOCATION: http://[fe80::1]:5000/d.xml\r\n\r\n", wantLoc: "http://[fe80::1]:5000/d.xml"},
		{name: "NOTIFY is not an answer", in: "NOTIFY * HTTP/1.1\r\nLOCATION: http://10.0.0.1/\r\n\r\n", wantErr: "reading SSDP answer"},
		{name: "error status", in: "HTTP/1.1 404 Not Found\r\nLOCATION: http://10.0.0.1/\r\n\r\n", wantErr: "status"},
		{name: "no location", in: "HTTP/1.1 200 OK\r\nST: x\r\n\r\n", wantErr: "no LOCATION"},
		{name: "https location", in: "HTTP/1.1 200 OK\r\nLOCATION: https://10.0.0.1/\r\n\r\n", wantErr: "not an http URL"},
		{name: "host name location", in: "HTTP/1.1 200 OK\r\nLOCATION: http://router.lan:5000/\r\n\r\n", wantErr: "does not name an IP"},
		{name: "empty", in: "", wantErr: "reading SSDP answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSSDPResponse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Location.String() != tt.wantLoc {
				t.Fatalf("= %+v, %v; want LOCATION %s", got, err, tt.wantLoc)
			}
		})
	}
}

func TestMSearchFormat(t *testing.T) {
	got := string(mSearch(ssdpMulticast, searchTargets[0]))
	for _, line := range []string{"M-SEARCH * HTTP/1.1\r\n", "HOST: 239.255.255.250:1900\r\n", "MAN: \"ssdp:discover\"\r\n",
		"MX: 1\r\n", "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n"} {
		if !strings.Contains(got, line) {
			t.Errorf("M-SEARCH lacks %q:\n%s", line, got)
		}
	}
	if !strings.HasSuffix(got, "\r\n\r\n") {
		t.Errorf("M-SEARCH does not end with a blank line")
	}
}

func FuzzParseSSDPResponse(f *testing.F) {
	f.Add([]byte(miniupnpdAnswer))
	f.Add([]byte(strings.ReplaceAll(miniupnpdAnswer, "\r\n", "\n")))
	f.Add([]byte("HTTP/1.1 200 OK\r\nLOCATION: http://[::1]:1/\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nLOCATION: http://1.2.3.4/\r\n\r\nab"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseSSDPResponse(b)
		if err == nil && !locationHost(r.Location).IsValid() {
			t.Fatalf("accepted LOCATION %v without an IP host", r.Location)
		}
	})
}
