package forward_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

func reconcile(t *testing.T, gw *forwardtest.Memory, desired []forward.Mapping) forward.Result {
	t.Helper()
	observed, err := gw.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	plan := forward.Diff(desired, observed, forward.DiffOptions{Config: "t", Prune: true, Hosts: []netip.Addr{gw.Self}})
	return forward.Apply(context.Background(), gw, plan, nil)
}

func TestApplyIsIdempotent(t *testing.T) {
	gw := forwardtest.NewMemory(self)
	desired := []forward.Mapping{
		mapping(forward.TCP, 25565, self, "pf:t:mc", time.Hour),
		mapping(forward.UDP, 2456, self, "pf:t:vh", time.Hour),
	}
	if res := reconcile(t, gw, desired); res.Failed() != 0 || res.Made() != 2 {
		t.Fatalf("first apply: %d failed, %d calls", res.Failed(), res.Made())
	}
	adds, _ := gw.Calls()
	res := reconcile(t, gw, desired)
	if again, _ := gw.Calls(); again != adds || res.Made() != 0 {
		t.Errorf("second apply made %d Add calls, want 0", again-adds)
	}
}

func TestApplyConflictDoesNotStopOthers(t *testing.T) {
	gw := forwardtest.NewMemory(self)
	foreign := retarget(mapping(forward.TCP, 25565, self, "libminiupnpc", 0), self, 25570)
	gw.Put(foreign)
	desired := []forward.Mapping{
		mapping(forward.TCP, 25565, self, "pf:t:mc", time.Hour),
		mapping(forward.UDP, 2456, self, "pf:t:vh", time.Hour),
	}
	res := reconcile(t, gw, desired)
	if res.Failed() != 1 {
		t.Fatalf("Failed = %d, want 1", res.Failed())
	}
	var ce *forward.ConflictError
	if !errors.As(res.Outcomes[0].Err, &ce) || ce.Holder.Description != "libminiupnpc" {
		t.Errorf("outcome 0: %v; want a conflict naming libminiupnpc", res.Outcomes[0].Err)
	}
	if res.Outcomes[1].Err != nil {
		t.Errorf("outcome 1: %v", res.Outcomes[1].Err)
	}
	ms, _ := gw.List(context.Background())
	for _, m := range ms {
		if m.Key == foreign.Key && m != foreign {
			t.Errorf("foreign mapping changed: %+v", m)
		}
	}
}

func TestApplyUpdateReplaces(t *testing.T) {
	gw := forwardtest.NewMemory(self)
	gw.Put(withPort(mapping(forward.TCP, 25565, self, "pf:t:mc", time.Hour), 1))
	res := reconcile(t, gw, []forward.Mapping{mapping(forward.TCP, 25565, self, "pf:t:mc", time.Hour)})
	if res.Failed() != 0 || res.Outcomes[0].Change.Action != forward.Update {
		t.Fatalf("outcomes: %+v", res.Outcomes)
	}
	ms, _ := gw.List(context.Background())
	if len(ms) != 1 || ms[0].InternalPort != 25565 {
		t.Errorf("gateway holds %+v", ms)
	}
}

func TestApplyRefusedNamesError(t *testing.T) {
	gw := forwardtest.NewMemory(self)
	res := reconcile(t, gw, []forward.Mapping{mapping(forward.TCP, 25565, other, "pf:t:mc", time.Hour)})
	if !errors.Is(res.Outcomes[0].Err, forward.ErrNotAuthorized) {
		t.Errorf("err = %v, want ErrNotAuthorized", res.Outcomes[0].Err)
	}
}

type permanentOnly struct{ *forwardtest.Memory }

func (p permanentOnly) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	m.Lease = 0
	return p.Memory.Add(ctx, m)
}

func TestApplyNotesPermanentGrant(t *testing.T) {
	gw := permanentOnly{forwardtest.NewMemory(self)}
	want := mapping(forward.TCP, 25565, self, "pf:t:mc", time.Hour)
	plan := forward.Diff([]forward.Mapping{want}, nil, forward.DiffOptions{Config: "t", Hosts: []netip.Addr{self}})
	res := forward.Apply(context.Background(), gw, plan, nil)
	if res.Outcomes[0].Note == "" || res.Outcomes[0].Granted.Lease != 0 {
		t.Errorf("outcome = %+v; want a note about the permanent lease", res.Outcomes[0])
	}
}

func TestApplyCancelled(t *testing.T) {
	gw := forwardtest.NewMemory(self)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	plan := forward.Diff([]forward.Mapping{mapping(forward.TCP, 1, self, "pf:t:x", 0)}, nil, forward.DiffOptions{Config: "t"})
	res := forward.Apply(ctx, gw, plan, nil)
	if !errors.Is(res.Outcomes[0].Err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", res.Outcomes[0].Err)
	}
	if adds, _ := gw.Calls(); adds != 0 {
		t.Errorf("cancelled apply made %d calls", adds)
	}
}
