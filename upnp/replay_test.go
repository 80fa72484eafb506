package upnp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A replayGateway plays one real router from its captures in
// testdata/routers/<name>/ (see README.md there): its SSDP answer and its
// root description byte for byte, HTTP framing included, over real UDP and
// raw TCP, with every address the router named moved onto loopback. The
// port-mapping table behind it is fakeIGD's, with the router's reported
// behaviour (the behaviour file) as its knobs, and the router's captured
// faults and answers served where they exist.
type replayGateway struct {
	t      testing.TB
	router replayRouter
	igd    *fakeIGD // the table; its mutex guards the gateway's state too
	ssdp   *net.UDPConn
	addr   *regexp.Regexp    // the router's captured address, with or without a port
	hosts  map[string]string // captured "host:port" → the loopback "127.0.0.1:port" serving it
	desc   []byte            // desc.http, addresses moved
	loc    *url.URL          // the LOCATION, moved
	down   map[string]bool   // control paths of the WAN connections that are down
	urn    map[string]string // control path → service type
	conns  int               // TCP connections accepted
}

// replayRouter is one router directory.
type replayRouter struct {
	name  string
	dir   string
	ssdp  []byte            // ssdp.http
	desc  []byte            // desc.http
	files map[string][]byte // every other *.http, by name without the extension
	beh   behaviour
}

// behaviour is the router's behaviour file: what its sources report.
type behaviour struct {
	search     string // "all-targets" (default), "ssdp-all-only", or the one ST answered
	ssdpDelay  time.Duration
	ephemeral  bool   // SSDP answers come from a random port, not the one searched
	finite     string // "ok" (default), "725", "402": the answer to a finite lease
	endOfTable string // "713" (default), "714", "402"
	otherHost  string // "718" (default), "606": the answer to a mapping for another host
	connection string // "close" (default), "keep-open", "close-without-header"
	wan        int    // the WAN connection that is up, among several (tree order)
	own        []fakeEntry
	fix606     string
}

// loadRouter reads testdata/routers/<name>.
func loadRouter(t testing.TB, name string) replayRouter {
	t.Helper()
	dir := filepath.Join("testdata", "routers", name)
	r := replayRouter{name: name, dir: dir, files: map[string][]byte{}}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.http"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		switch base := strings.TrimSuffix(filepath.Base(p), ".http"); base {
		case "ssdp":
			r.ssdp = b
		case "desc":
			r.desc = b
		default:
			r.files[base] = b
		}
	}
	if r.ssdp == nil || r.desc == nil {
		t.Fatalf("%s: needs ssdp.http and desc.http", dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, "behaviour"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	r.beh = parseBehaviour(t, string(b))
	return r
}

// parseBehaviour reads "key: value" lines; "#" starts a comment.
func parseBehaviour(t testing.TB, s string) behaviour {
	t.Helper()
	b := behaviour{search: "all-targets", finite: "ok", endOfTable: "713", otherHost: "718", connection: "close"}
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		k, v, ok := strings.Cut(line, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			continue
		}
		if err := b.set(k, v); err != nil {
			t.Fatalf("behaviour %s: %v", k, err)
		}
	}
	return b
}

func (b *behaviour) set(k, v string) error {
	var err error
	switch k {
	case "search":
		b.search = v
	case "ssdp-delay":
		b.ssdpDelay, err = time.ParseDuration(v)
	case "ssdp-source-port":
		b.ephemeral = v == "ephemeral"
	case "finite-lease":
		b.finite = v
	case "end-of-table":
		b.endOfTable = v
	case "other-host":
		b.otherHost = v
	case "connection":
		b.connection = v
	case "wan":
		b.wan, err = strconv.Atoi(v)
	case "own-mapping":
		var e fakeEntry
		e, err = parseOwn(v)
		b.own = append(b.own, e)
	case "fix-606":
		b.fix606 = v
	default:
		err = fmt.Errorf("unknown key")
	}
	return err
}

// parseOwn reads "TCP 5060 192.168.1.1 SIP".
func parseOwn(v string) (fakeEntry, error) {
	f := strings.SplitN(v, " ", 4)
	if len(f) < 3 {
		return fakeEntry{}, fmt.Errorf("own-mapping %q: want PROTO PORT CLIENT [DESCRIPTION]", v)
	}
	port, err := strconv.Atoi(f[1])
	e := fakeEntry{proto: f[0], ext: port, port: port, client: f[2], enabled: true}
	if len(f) == 4 {
		e.desc = f[3]
	}
	return e, err
}

// faultFiles are the standard fault bodies (testdata/soap-*.xml) by code,
// served where the router's own capture of that fault is missing.
var faultFiles = map[string]string{
	"402": "soap-402-invalid-args.xml", "501": "soap-501-action-failed.xml", "606": "soap-606-not-authorized.xml",
	"713": "soap-713-array-index-invalid.xml", "714": "soap-714-no-such-entry.xml", "718": "soap-718-conflict.xml",
	"725": "soap-725-only-permanent.xml",
}

// startReplay serves r on loopback.
func startReplay(t testing.TB, r replayRouter) *replayGateway {
	t.Helper()
	g := &replayGateway{t: t, router: r, hosts: map[string]string{}, down: map[string]bool{}, urn: map[string]string{}}
	loc, err := parseSSDPResponse(r.ssdp)
	if err != nil {
		t.Fatalf("%s/ssdp.http: %v", r.dir, err)
	}
	all := append(append([]byte{}, r.ssdp...), r.desc...)
	for _, b := range r.files {
		all = append(all, b...)
	}
	g.listen(loc.Location.Hostname(), all)
	moved, err := parseSSDPResponse(g.move(r.ssdp))
	if err != nil {
		t.Fatal(err)
	}
	g.loc = moved.Location
	g.desc = fixContentLength(g.move(r.desc))
	g.igd = g.table()
	g.connections()
	g.serveSSDP()
	return g
}

// listen starts a TCP listener for every port at which the captures name
// host: the LOCATION's, a URLBase's, absolute control URLs'.
func (g *replayGateway) listen(host string, captures []byte) {
	// \b: 10.0.0.1 is not the start of 10.0.0.10.
	g.addr = regexp.MustCompile(regexp.QuoteMeta(host) + `(:\d+)?\b`)
	for _, m := range g.addr.FindAll(captures, -1) {
		hp := withPort(m)
		if _, ok := g.hosts[hp]; ok {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			g.t.Fatal(err)
		}
		g.t.Cleanup(func() { l.Close() })
		g.hosts[hp] = l.Addr().String()
		go g.accept(l)
	}
}

// withPort is a captured address as "host:port", port 80 when it has none.
func withPort(m []byte) string {
	if hp := string(m); strings.Contains(hp, ":") {
		return hp
	}
	return string(m) + ":80"
}

// move rewrites every captured address of the router onto loopback.
func (g *replayGateway) move(b []byte) []byte {
	return g.addr.ReplaceAllFunc(b, func(m []byte) []byte {
		if to, ok := g.hosts[withPort(m)]; ok {
			return []byte(to)
		}
		return m
	})
}

// Patterns of the raw messages the replay edits.
var (
	contentLength = regexp.MustCompile(`(?im)^(content-length:[ \t]*)\d+`)
	stLine        = regexp.MustCompile(`(?im)^(ST:[ \t]*)(.*)\r?$`)
	errorCode     = regexp.MustCompile(`errorCode>\s*(\d+)`)
)

// fixContentLength sets a raw response's Content-Length, when it has one,
// to its body's length after the addresses moved; the header keeps its
// spelling.
func fixContentLength(raw []byte) []byte {
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return raw
	}
	head = contentLength.ReplaceAll(head, []byte("${1}"+strconv.Itoa(len(body))))
	return append(append(head, "\r\n\r\n"...), body...)
}

// table is the port-mapping table with the router's knobs.
func (g *replayGateway) table() *fakeIGD {
	b := g.router.beh
	f := &fakeIGD{t: g.t, extIP: "50.60.70.1", secure: true, other: faultFiles[b.otherHost], listEnd: faultFiles[b.endOfTable]}
	if b.finite != "ok" {
		f.finite = faultFiles[b.finite]
	}
	f.entries = append(f.entries, b.own...)
	return f
}

// connections finds the description's port-mapping services: their types,
// and which are down (all but behaviour.wan when there are several).
func (g *replayGateway) connections() {
	root, err := decodeDescription(bytes.NewReader(body(g.desc)), g.loc)
	if err != nil {
		g.t.Fatalf("%s/desc.http: %v", g.router.dir, err)
	}
	for i, c := range portMappingServices(root) {
		g.urn[c.control.RequestURI()] = c.kind.Type
		g.down[c.control.RequestURI()] = i != g.router.beh.wan
		g.igd.v2 = g.igd.v2 || (!g.down[c.control.RequestURI()] && c.kind.listsPages())
	}
}

// body is a raw HTTP response's body.
func body(raw []byte) []byte {
	_, b, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	return b
}

// serveSSDP answers M-SEARCHes as the router does: ssdp.http, then
// ssdp-extra.http when the router sent a second datagram, from the
// searched socket or, as some routers do, from another one.
func (g *replayGateway) serveSSDP() {
	conn := g.udp()
	g.ssdp = conn
	from := conn
	if g.router.beh.ephemeral {
		from = g.udp()
	}
	answers := [][]byte{g.move(g.router.ssdp)}
	if extra, ok := g.router.files["ssdp-extra"]; ok {
		answers = append(answers, g.move(extra))
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, to, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if st := headerValue(buf[:n], "ST"); g.answers(st) {
				time.AfterFunc(g.router.beh.ssdpDelay, func() { g.sendSSDP(from, to, st, answers) })
			}
		}
	}()
}

// udp is a loopback UDP socket closed with the test.
func (g *replayGateway) udp() *net.UDPConn {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() { conn.Close() })
	return conn
}

// sendSSDP sends the answers to a search for st; each names st as its ST
// unless the search was ssdp:all or the answer names a device's uuid.
func (g *replayGateway) sendSSDP(from *net.UDPConn, to *net.UDPAddr, st string, answers [][]byte) {
	for _, a := range answers {
		if m := stLine.FindSubmatch(a); st != "ssdp:all" && m != nil && !bytes.HasPrefix(m[2], []byte("uuid:")) {
			a = stLine.ReplaceAll(a, []byte("${1}"+st+"\r"))
		}
		from.WriteToUDP(a, to)
	}
}

// answers reports whether the router answers a search for st.
func (g *replayGateway) answers(st string) bool {
	switch s := g.router.beh.search; s {
	case "all-targets":
		return true
	case "ssdp-all-only":
		return st == "ssdp:all"
	default:
		return st == s || st == "ssdp:all"
	}
}

// headerValue is the value of a header in a raw HTTP message.
func headerValue(msg []byte, name string) string {
	for _, line := range strings.Split(string(msg), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ssdpPort is where the replay answers M-SEARCH.
func (g *replayGateway) ssdpPort() uint16 { return uint16(g.ssdp.LocalAddr().(*net.UDPAddr).Port) }

// accept serves one listener's connections.
func (g *replayGateway) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		g.igd.mu.Lock()
		g.conns++
		g.igd.mu.Unlock()
		go g.serveConn(c)
	}
}

// serveConn answers requests on c until the router's framing ends it.
func (g *replayGateway) serveConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(io.LimitReader(c, 1<<20))
	for served := 0; ; served++ {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if served > 0 && g.router.beh.connection == "close-without-header" {
			return // the router already considers the connection over
		}
		raw, keep := g.respond(req)
		if _, err := c.Write(raw); err != nil || !keep {
			return
		}
	}
}

// respond is the raw answer to req, and whether the connection stays open.
func (g *replayGateway) respond(req *http.Request) ([]byte, bool) {
	if req.Method == http.MethodGet {
		return g.get(req.URL.Path)
	}
	_, action, _ := strings.Cut(strings.Trim(req.Header.Get("SOAPAction"), `"`), "#")
	status, xmlBody := g.soap(req.URL.RequestURI(), action, soapArgs(io.LimitReader(req.Body, 1<<16)), "127.0.0.1")
	if captured, ok := g.router.files[action+"-"+strconv.Itoa(faultCode(xmlBody))]; ok && status != 200 {
		return captured, false
	}
	return g.frame(status, xmlBody)
}

// get answers a GET: the root description at its LOCATION, a second tree
// (tr64desc.http) at its usual path.
func (g *replayGateway) get(path string) ([]byte, bool) {
	switch {
	case path == g.loc.Path:
		return g.desc, keepsOpen(g.desc)
	case path == "/tr64desc.xml" && g.router.files["tr64desc"] != nil:
		b := fixContentLength(g.move(g.router.files["tr64desc"]))
		return b, keepsOpen(b)
	}
	return []byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), false
}

// keepsOpen reports whether a raw response lets the connection be reused.
func keepsOpen(raw []byte) bool {
	return bytes.HasPrefix(raw, []byte("HTTP/1.1")) && headerValue(raw, "Content-Length") != "" &&
		!strings.EqualFold(headerValue(raw, "Connection"), "close")
}

// faultCode is the errorCode in a fault body, 0 if none.
func faultCode(b []byte) int {
	m := errorCode.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// frame wraps a SOAP body in the router's HTTP framing.
func (g *replayGateway) frame(status int, b []byte) ([]byte, bool) {
	var h bytes.Buffer
	fmt.Fprintf(&h, "HTTP/1.1 %d %s\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n", status, http.StatusText(status))
	keep := g.router.beh.connection != "close"
	if !keep {
		h.WriteString("Connection: close\r\n")
	}
	fmt.Fprintf(&h, "Content-Length: %d\r\n\r\n", len(b))
	return append(h.Bytes(), b...), keep
}

// soap runs one action on the control path: the status and body.
func (g *replayGateway) soap(path, action string, args map[string]string, requester string) (int, []byte) {
	f := g.igd
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, action)
	if g.down[path] {
		return g.downAnswer(path, action)
	}
	if b, ok := g.router.files[action]; ok && (action == "GetExternalIPAddress" || action == "GetStatusInfo") {
		return 200, body(b)
	}
	if action == "GetStatusInfo" {
		return 200, g.envelope(path, action, "<NewConnectionStatus>Connected</NewConnectionStatus><NewLastConnectionError>ERROR_NONE</NewLastConnectionError><NewUptime>4242</NewUptime>")
	}
	out, fault := f.act(action, args, requester)
	if fault != "" {
		return 500, testdata(g.t, fault)
	}
	if strings.HasPrefix(out, "<?xml") {
		return 200, []byte(out)
	}
	return 200, g.envelope(path, action, out)
}

// downAnswer is what a WAN connection that is down answers.
func (g *replayGateway) downAnswer(path, action string) (int, []byte) {
	switch action {
	case "GetStatusInfo":
		return 200, g.envelope(path, action, "<NewConnectionStatus>Disconnected</NewConnectionStatus><NewLastConnectionError>ERROR_NO_CARRIER</NewLastConnectionError><NewUptime>0</NewUptime>")
	case "GetExternalIPAddress":
		return 200, g.envelope(path, action, "<NewExternalIPAddress>0.0.0.0</NewExternalIPAddress>")
	}
	return 500, testdata(g.t, faultFiles["501"])
}

// envelope is a SOAP answer to action in the service's namespace.
func (g *replayGateway) envelope(path, action, args string) []byte {
	return []byte(fmt.Sprintf(`<?xml version="1.0"?>`+"\r\n"+`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="%s">%s</u:%sResponse></s:Body></s:Envelope>`+"\r\n",
		action, g.urn[path], args, action))
}

// gatewayAddr is the address the replayed router answers on.
func (g *replayGateway) gatewayAddr() netip.Addr { return netip.MustParseAddr("127.0.0.1") }
