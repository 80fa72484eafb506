package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// formatVersion is the version of every JSON document portfwd prints. It
// is a compatibility promise: fields are only added; a rename or removal
// bumps it.
const formatVersion = 1

// printer writes a command's result: tables on a terminal, tab-separated
// when piped, or one JSON document with -o json. It remembers whether it
// wrote a document, so a failure after one (a partial apply) does not
// print a second.
type printer struct {
	io    IOStreams
	json  bool
	wrote bool
}

// JSON prints v, indented, as one document on Out.
func (p *printer) JSON(v any) error {
	p.wrote = true
	enc := json.NewEncoder(p.io.Out)
	enc.SetIndent("", "  ")
	// Not for a web page: "->" stays "->", not "-\u003e".
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table writes rows aligned for a terminal, or tab-separated for a pipe.
type table struct {
	w     io.Writer
	flush func() error
}

// table starts a table with its header row.
func (p *printer) table(header ...string) *table {
	t := &table{w: p.io.Out, flush: func() error { return nil }}
	if p.io.Terminal {
		tw := tabwriter.NewWriter(p.io.Out, 0, 4, 2, ' ', 0)
		t.w, t.flush = tw, tw.Flush
	}
	t.row(header...)
	return t
}

// progress is where progress lines go: stderr on a terminal, else nowhere.
func (p *printer) progress() io.Writer {
	if p.io.Terminal {
		return p.io.ErrOut
	}
	return nil
}

// errf prints a diagnostic line on stderr.
func (p *printer) errf(format string, a ...any) { fmt.Fprintf(p.io.ErrOut, format, a...) }

// row writes one row. Every cell is made printable (forward.Printable):
// cells carry what routers and servers said (descriptions, names,
// errors), and a tab, a line break or an escape sequence there would forge
// a row or move the terminal's cursor.
func (t *table) row(cells ...string) {
	for i, c := range cells {
		cells[i] = forward.Printable(c)
	}
	fmt.Fprintln(t.w, strings.Join(cells, "\t"))
}

type mappingView struct {
	Protocol     string `json:"protocol"`
	ExternalPort uint16 `json:"external_port"`
	InternalHost string `json:"internal_host"`
	InternalPort uint16 `json:"internal_port"`
	Description  string `json:"description"`
	LeaseSeconds int64  `json:"lease_seconds"` // 0 = permanent
	Enabled      bool   `json:"enabled"`
	Rule         string `json:"rule,omitempty"` // the portfwd rule named in the description
	// Hairpin: LAN clients reach it through the public address too
	// (iptables backend).
	Hairpin bool `json:"hairpin,omitempty"`
	// key is the mapping's key as tables show it ("tcp6/25565"); it is
	// not part of the JSON document.
	key forward.Key
}

// proto is the PROTO column of tables: "tcp", or "tcp6" for an IPv6
// pinhole (the key's spelling without the port).
func (v mappingView) proto() string {
	if v.key.Protocol == "" {
		return v.Protocol
	}
	p, _, _ := strings.Cut(v.key.String(), "/")
	return p
}

// internal is the INTERNAL column: host:port, an IPv6 host in brackets.
func (v mappingView) internal() string {
	return net.JoinHostPort(v.InternalHost, strconv.Itoa(int(v.InternalPort)))
}

func viewMapping(m *forward.Mapping) *mappingView {
	if m == nil {
		return nil
	}
	return &mappingView{Protocol: string(m.Protocol), ExternalPort: m.ExternalPort,
		InternalHost: m.InternalHost.String(), InternalPort: m.InternalPort, Description: m.Description,
		LeaseSeconds: int64(m.Lease.Seconds()), Enabled: m.Enabled, Rule: m.Owner(), Hairpin: m.Hairpin, key: m.Key}
}

type gatewayView struct {
	Backend   string   `json:"backend"`
	URL       string   `json:"url"`
	Protocols []string `json:"protocols"`
	ThisHost  string   `json:"this_host"`
	Asked     []string `json:"asked,omitempty"`     // backend: auto: the protocols asked
	Answered  []string `json:"answered,omitempty"`  // the protocols that answered
	Detection string   `json:"detection,omitempty"` // what was asked and how long was waited, for people
	Why       string   `json:"why,omitempty"`       // and why this one was chosen
	// Remembered: auto detection opened the protocol an earlier run
	// chose, alone; answered is that one.
	Remembered bool `json:"remembered,omitempty"`
	// FromState: the protocol cannot list mappings, so those shown are
	// the ones portfwd recorded making (NAT-PMP, PCP).
	FromState bool `json:"mappings_from_state,omitempty"`
}

func viewGateway(g *forward.Gateway) gatewayView {
	p := g.Backend.Properties()
	v := gatewayView{Backend: p.Name, URL: p.Gateway, Protocols: p.Protocols, ThisHost: g.Self.String(), FromState: p.ListsFromState}
	if g.Detection != nil {
		d := g.Detection
		v.Asked, v.Answered, v.Detection, v.Why, v.Remembered = d.Asked, d.Answered, d.Asking(), d.Why, d.Remembered
	}
	return v
}

// gatewayWords names a gateway for people: where it is, and the protocols
// it answered when they say more than the backend's name —
// "http://192.168.1.1:5000/rootDesc.xml (UPnP …:2, WANIPConnection:2)",
// "iptables://localhost/eth0 (iptables-nft)". The backend's name is said
// where detection chose it (detectionWords).
func gatewayWords(v gatewayView) string {
	protocols := slices.DeleteFunc(slices.Clone(v.Protocols), func(p string) bool { return strings.EqualFold(p, v.Backend) })
	words := forward.Printable(v.URL)
	if len(protocols) > 0 {
		words += " (" + forward.Printable(strings.Join(protocols, ", ")) + ")"
	}
	return words
}

// detectionWords says how auto detection chose the backend: what it
// asked, what answered, and why this one; "" without detection.
func detectionWords(v gatewayView) string {
	if v.Detection == "" {
		return ""
	}
	return v.Detection + "; chose " + v.Backend + ": " + v.Why
}

// gatewayLine says on stderr which gateway the command talks to, and how
// detection chose it.
func (p *printer) gatewayLine(g *forward.Gateway) {
	v := viewGateway(g)
	p.errf("gateway: %s, this host %s\n", gatewayWords(v), v.ThisHost)
	if d := detectionWords(v); d != "" {
		p.errf("gateway: %s\n", d)
	}
}

type changeView struct {
	Action  string       `json:"action"`
	Rule    string       `json:"rule"`
	Mapping string       `json:"mapping"` // "tcp/25565"
	Before  *mappingView `json:"before,omitempty"`
	After   *mappingView `json:"after,omitempty"`
	Reason  string       `json:"reason,omitempty"`
	// Set by apply and down only.
	Result  string       `json:"result,omitempty"` // ok | failed
	Granted *mappingView `json:"granted,omitempty"`
	Note    string       `json:"note,omitempty"`
	Error   string       `json:"error,omitempty"`
}

func viewChange(c forward.Change) changeView {
	return changeView{Action: c.Action.String(), Rule: c.Rule, Mapping: c.Key.String(),
		Before: viewMapping(c.Before), After: viewMapping(c.After), Reason: c.Reason}
}

func viewOutcome(o forward.Outcome) changeView {
	v := viewChange(o.Change)
	v.Result, v.Granted, v.Note = "ok", viewMapping(o.Granted), o.Note
	if o.Err != nil {
		v.Result, v.Error = "failed", o.Err.Error()
	}
	return v
}

// target is where a change sends traffic, for tables.
func target(c forward.Change) string {
	m := c.After
	if m == nil {
		m = c.Before
	}
	return netip.AddrPortFrom(m.InternalHost, m.InternalPort).String()
}

// summary counts a plan's changes by action, for the closing line and JSON.
func summary(p forward.Plan) map[string]int {
	out := map[string]int{}
	for _, c := range p.Changes {
		out[c.Action.String()]++
	}
	return out
}

func summaryLine(p forward.Plan) string {
	return fmt.Sprintf("%d to create, %d to update, %d to renew, %d to delete, %d conflict(s), %d unchanged",
		p.Count(forward.Create), p.Count(forward.Update), p.Count(forward.Renew), p.Count(forward.Delete),
		p.Count(forward.Conflict), p.Count(forward.Noop)) + heldSuffix(p)
}

// heldSuffix counts the forwards in place but held by someone else, when
// there are any.
func heldSuffix(p forward.Plan) string {
	if n := p.Count(forward.Held); n > 0 {
		return fmt.Sprintf(", %d in place but held by another program", n)
	}
	return ""
}

func secondsDuration(s int64) time.Duration { return time.Duration(s) * time.Second }

// errorDoc is what -o json prints on stdout when a command fails before it
// has a result, so scripts always get a document to read.
type errorDoc struct {
	FormatVersion int `json:"format_version"`
	Error         struct {
		Message  string        `json:"message"`
		ExitCode int           `json:"exit_code"`
		Problems []problemView `json:"problems,omitempty"` // config errors, one per problem
	} `json:"error"`
}

type problemView struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

// errorDocument prints, with -o json, the document of a command that
// failed before it printed its own.
func (p *printer) errorDocument(err error, code int) {
	if !p.json || p.wrote {
		return
	}
	doc := errorDoc{FormatVersion: formatVersion}
	doc.Error.Message, doc.Error.ExitCode = err.Error(), code
	var ce *forward.ConfigError
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			doc.Error.Problems = append(doc.Error.Problems, problemView(p))
		}
	}
	_ = p.JSON(doc)
}
