package pcp

import (
	"errors"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// labSameInternal are two rules forwarding two external ports to one
// internal port of the LAN host.
func (r *labRun) labSameInternal() (first, second forward.Mapping) {
	first, second = r.mapping(forward.TCP, 41606, time.Hour), r.mapping(forward.TCP, 41607, time.Hour)
	second.InternalPort = first.InternalPort
	second.Description = (forward.LegacyTagPrefix + "second")
	return first, second
}

// addBoth adds both rules on b and checks the router holds both.
func (r *labRun) addBoth(t *testing.T, b *Backend, first, second forward.Mapping) {
	t.Helper()
	forwardtest.MustAdd(t, b, first)
	forwardtest.MustAdd(t, b, second)
	if !r.routerHolds(t, first) || !r.routerHolds(t, second) {
		t.Fatalf("the router holds %v %v, %v %v; want both", first.Key, r.routerHolds(t, first), second.Key, r.routerHolds(t, second))
	}
}

// natpmpSameInternal: miniupnpd 2.3.1 maps both, and deletes every NAT-PMP
// mapping of the internal port when asked to delete one; the backend makes
// the other again, so it survives the delete, recorded and on the router.
func (r *labRun) natpmpSameInternal(t *testing.T) {
	dir := t.TempDir()
	b := r.reopen(t, dir)
	first, second := r.labSameInternal()
	r.addBoth(t, b, first, second)
	r.mustDelete(t, b, second)
	_, recorded := r.record(t, dir, first.Key)
	if !r.routerHolds(t, first) || r.routerHolds(t, second) || !recorded {
		t.Errorf("after deleting %v: the router holds %v %v, %v %v; %v recorded %v; want only %v, recorded",
			second.Key, first.Key, r.routerHolds(t, first), second.Key, r.routerHolds(t, second), first.Key, recorded, first.Key)
	}
	r.mustDelete(t, b, first)
}

// pcpSameInternal: miniupnpd 2.3.1 maps both, each with its own nonce,
// but matches a delete (RFC 6887 §15) to the first mapping it finds with
// the host, protocol and internal port — the newest — and answers
// NOT_AUTHORIZED when that one's nonce is another (pcpserver.c,
// DeletePCPMap), where §11.1 has the nonce tell the mappings apart. So the
// newer rule deletes, and the older cannot be deleted while the newer
// exists. This pins what the backend then does: the older rule's Delete
// fails, and both mappings and both records are kept; once the newer is
// deleted, the older renews and deletes.
func (r *labRun) pcpSameInternal(t *testing.T) {
	dir := t.TempDir()
	b := r.reopen(t, dir)
	first, second := r.labSameInternal()
	r.addBoth(t, b, first, second)
	err := b.Delete(testCtx(t), first)
	t.Logf("deleting %v, the older rule on internal port %d, beside %v: %v", first.Key, first.InternalPort, second.Key, err)
	var code ResultCode
	if !errors.As(err, &code) || code != NotAuthorized {
		t.Errorf("Delete of the older rule = %v; want miniupnpd 2.3.1's NOT_AUTHORIZED (if this changed, so did miniupnpd: see pcpSameInternal)", err)
	}
	_, recorded := r.record(t, dir, first.Key)
	if !r.routerHolds(t, first) || !r.routerHolds(t, second) || !recorded {
		t.Errorf("after the refused delete: the router holds %v %v, %v %v; %v recorded %v; want both kept",
			first.Key, r.routerHolds(t, first), second.Key, r.routerHolds(t, second), first.Key, recorded)
	}
	r.mustDelete(t, b, second)
	if !r.routerHolds(t, first) || r.routerHolds(t, second) {
		t.Errorf("after deleting the newer rule the router holds %v %v, %v %v; want only %v",
			first.Key, r.routerHolds(t, first), second.Key, r.routerHolds(t, second), first.Key)
	}
	forwardtest.MustAdd(t, b, first) // renewed with its nonce, alone on the port now
	r.mustDelete(t, b, first)
	if r.routerHolds(t, first) {
		t.Errorf("%v is still on the router after deleting the newer rule, then it", first.Key)
	}
}

// thirdPartyMap: with pcp_allow_thirdparty=yes a mapping to the LAN host's
// second address is granted (RFC 6887 §13.1) and listed with that host;
// the conformance suite's mapping for another host is granted too.
func (r *labRun) thirdPartyMap(t *testing.T) {
	m := labThirdParty(r.c.LANHost2)
	got := forwardtest.MustAdd(t, r.b, m)
	if got.InternalHost != m.InternalHost || got.Key != m.Key {
		t.Fatalf("Add for %v = %+v; want it granted as asked", m.InternalHost, got)
	}
	t.Logf("granted %v for %v", got.Lease, got)
	if ms := r.list(t, r.b); len(ms) != 1 || ms[0].InternalHost != m.InternalHost {
		t.Errorf("List = %+v; want the mapping to %v", ms, m.InternalHost)
	}
	t.Run("Conformance", r.conformance)
}

// thirdPartyDelete: the next run deletes the mapping for the other host
// (the parent checks it is gone from the router).
func (r *labRun) thirdPartyDelete(t *testing.T) {
	m := labThirdParty(r.c.LANHost2)
	if ms := r.list(t, r.b); len(ms) != 1 || ms[0].Key != m.Key {
		t.Fatalf("List in the next run = %+v; want %v", ms, m.Key)
	}
	r.mustDelete(t, r.b, m)
	if ms := r.list(t, r.b); len(ms) != 0 {
		t.Errorf("List after Delete = %+v", ms)
	}
}
