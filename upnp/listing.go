package upnp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/portfwd/portfwd/forward"
)

// soapPerformer sends one SOAP action; goupnp's *soap.SOAPClient is one,
// and timedSOAP bounds one's time.
type soapPerformer interface {
	PerformActionCtx(ctx context.Context, actionNamespace, actionName string, inAction, outAction interface{}) error
}

// listPage is how many entries one GetListOfPortMappings asks for; see
// listRange for what happens when a router returns that many.
var listPage = 1000

// errBadListing: the router answered GetListOfPortMappings with a listing
// that cannot be read.
var errBadListing = errors.New("unreadable port listing")

// maxListingRequests bounds the GetListOfPortMappings requests of one
// List. A router answering every range with a full page would otherwise be
// split down to single ports, 2×65,535 requests (a review saw 426 before
// the timeout). Real tables need few: 10,000 mappings of one protocol,
// spread evenly, take 31 requests in pages of listPage — far more mappings
// than a home router keeps. Past the budget List falls back to
// GetGenericPortMappingEntry.
const maxListingRequests = 64

// errListingBudget: the router kept answering full pages.
var errListingBudget = fmt.Errorf("%w: every page came back full", errBadListing)

// listBudget counts down the listing requests one List may still send; the
// two protocols share it.
type listBudget struct{ left atomic.Int32 }

// take reports whether one more request may be sent.
func (b *listBudget) take() bool { return b.left.Add(-1) >= 0 }

// listFast reads the table with GetListOfPortMappings (WANIPConnection:2
// §2.5.20), one call per protocol and both at once: two requests replace
// one GetGenericPortMappingEntry per mapping, which on a slow router costs
// seconds for a few dozen mappings.
func (g *IGD) listFast(ctx context.Context) ([]forward.Mapping, error) {
	protos := []forward.Protocol{forward.TCP, forward.UDP}
	got := make([][]forward.Mapping, len(protos))
	errs := make([]error, len(protos))
	budget := &listBudget{}
	budget.left.Store(maxListingRequests)
	var wg sync.WaitGroup
	for i, p := range protos {
		wg.Go(func() { got[i], errs[i] = g.listRange(ctx, budget, p, 1, 65535) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return append(got[0], got[1]...), nil
}

// listRange reads the mappings of protocol p on external ports lo–hi. A
// full page may have been cut anywhere: miniupnpd cuts in rule order, not
// port order (captured in testdata/listing-miniupnpd-page-of-2.xml), so
// "continue after the last port" could skip mappings. Instead the range is
// halved and each half asked for until no answer is full, within budget.
func (g *IGD) listRange(ctx context.Context, budget *listBudget, p forward.Protocol, lo, hi uint16) ([]forward.Mapping, error) {
	if !budget.take() {
		return nil, fmt.Errorf("%w (%d GetListOfPortMappings requests)", errListingBudget, maxListingRequests)
	}
	page, err := g.listingPage(ctx, p, lo, hi)
	if soapCode(err) == codePortMappingNotFound {
		return nil, nil // IGD:2 §2.5.20: no mapping in the range
	}
	if err != nil {
		return nil, err
	}
	if err := checkRange(page, p, lo, hi); err != nil {
		return nil, err
	}
	if len(page) < listPage || lo == hi {
		return page, nil
	}
	mid := lo + (hi-lo)/2
	low, err := g.listRange(ctx, budget, p, lo, mid)
	if err != nil {
		return nil, err
	}
	high, err := g.listRange(ctx, budget, p, mid+1, hi)
	return append(low, high...), err
}

// checkRange refuses a page with mappings outside what was asked for: a
// router that ignores the range or protocol cannot be paged.
func checkRange(page []forward.Mapping, p forward.Protocol, lo, hi uint16) error {
	for _, m := range page {
		if m.Protocol != p || m.ExternalPort < lo || m.ExternalPort > hi {
			return fmt.Errorf("%w: %s answered for %s/%d-%d", errBadListing, m.Key, p, lo, hi)
		}
	}
	return nil
}

// listingPage sends one GetListOfPortMappings for ports lo–hi.
// NewManage=1 asks for every mapping, not only this host's (§2.5.20).
func (g *IGD) listingPage(ctx context.Context, p forward.Protocol, lo, hi uint16) ([]forward.Mapping, error) {
	in := struct{ NewStartPort, NewEndPort, NewProtocol, NewManage, NewNumberOfPorts string }{
		strconv.Itoa(int(lo)), strconv.Itoa(int(hi)), wireProtocol(p), "1", strconv.Itoa(listPage)}
	var out struct {
		NewPortListing struct {
			Text  string `xml:",chardata"`
			Inner []byte `xml:",innerxml"`
		}
	}
	err := g.client.do(ctx, "GetListOfPortMappings", &in, &out)
	if err != nil {
		return nil, asSOAPError("GetListOfPortMappings", err)
	}
	listing := []byte(out.NewPortListing.Text)
	if len(bytes.TrimSpace(listing)) == 0 {
		// Quirk: the listing sent as unescaped child elements.
		listing = out.NewPortListing.Inner
	}
	return parsePortListing(listing)
}

// parsePortListing reads a PortMappingList (WANIPConnection:2 §2.5.20 and
// its schema, WANIPConnection-v2.xsd). Element names are matched by local
// name, case-insensitively: miniupnpd prefixes them ("p:"), others use a
// default namespace or none. Blank text is an empty list. The listing is
// a document of its own inside the SOAP answer, so it is made lenient
// again (lenientXML): a reference such as &#27; only becomes a character
// here.
func parsePortListing(b []byte) ([]forward.Mapping, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	dec := xml.NewDecoder(bytes.NewReader(lenientXML(bytes.TrimSpace(b))))
	dec.Strict = false // bare "&" in descriptions
	var out []forward.Mapping
	sawList := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) && sawList {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadListing, err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch strings.ToLower(start.Name.Local) {
		case "portmappinglist":
			sawList = true
		case "portmappingentry":
			m, err := readListingEntry(dec)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", errBadListing, err)
			}
			out = append(out, m)
		}
	}
}

// readListingEntry reads the leaf elements of one PortMappingEntry, up to
// its end tag.
func readListingEntry(dec *xml.Decoder) (forward.Mapping, error) {
	f := map[string]string{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return forward.Mapping{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var v string
			if err := dec.DecodeElement(&v, &t); err != nil {
				return forward.Mapping{}, err
			}
			f[strings.ToLower(t.Name.Local)] = v
		case xml.EndElement:
			return listingMapping(f)
		}
	}
}

// listingMapping converts the fields of one PortMappingEntry.
// Numbers are trimmed; the description is kept as sent.
func listingMapping(f map[string]string) (forward.Mapping, error) {
	for _, k := range []string{"newexternalport", "newinternalport", "newleasetime", "newenabled", "newprotocol"} {
		f[k] = strings.TrimSpace(f[k])
	}
	ext, err := strconv.ParseUint(f["newexternalport"], 10, 16)
	if err != nil {
		return forward.Mapping{}, fmt.Errorf("external port %q", f["newexternalport"])
	}
	port, err := strconv.ParseUint(f["newinternalport"], 10, 16)
	if err != nil {
		return forward.Mapping{}, fmt.Errorf("internal port %q", f["newinternalport"])
	}
	lease, err := strconv.ParseUint(f["newleasetime"], 10, 32)
	if err != nil {
		return forward.Mapping{}, fmt.Errorf("lease %q", f["newleasetime"])
	}
	enabled := f["newenabled"] == "1" || strings.EqualFold(f["newenabled"], "true") || strings.EqualFold(f["newenabled"], "yes")
	return toMapping(uint16(ext), f["newprotocol"], uint16(port), f["newinternalclient"], enabled, f["newdescription"], uint32(lease))
}
