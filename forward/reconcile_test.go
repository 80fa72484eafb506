package forward_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

const mcAndSSH = `gateway: {lease: 0}
rules:
  - {name: minecraft, service: minecraft-java}
  - {name: ssh, protocol: tcp, external_port: 2222, internal_port: 22}
`

func reconcileOn(t *testing.T, gw *forwardtest.Memory, src string, opts forward.ReconcileOptions) *forward.Reconciliation {
	t.Helper()
	r, err := forward.Reconcile(context.Background(), forward.NewGateway(gw), loopConfig(t, src), opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReconcileModes(t *testing.T) {
	gw := forwardtest.NewMemory(lanSelf)
	foreign := forward.Mapping{Key: forward.Key{Protocol: forward.UDP, ExternalPort: 19132}, InternalHost: lanSelf, InternalPort: 19132, Description: "bedrock", Enabled: true}
	gw.Put(foreign)

	r := reconcileOn(t, gw, mcAndSSH, forward.ReconcileOptions{Mode: forward.ModePlan})
	if adds, _ := gw.Calls(); r.Result != nil || adds != 0 || r.Plan.Count(forward.Create) != 2 || len(r.Observed) != 1 {
		t.Errorf("plan: result %v, %d adds, plan %+v; want 2 creates planned and nothing done", r.Result, adds, r.Plan)
	}
	r = reconcileOn(t, gw, mcAndSSH, forward.ReconcileOptions{Mode: forward.ModeApply})
	if r.Result == nil || r.Result.Made() != 2 || r.Result.Failed() != 0 {
		t.Fatalf("apply: %+v", r.Result)
	}
	r = reconcileOn(t, gw, mcAndSSH, forward.ReconcileOptions{Mode: forward.ModeApply})
	if r.Plan.Pending() || r.Result.Made() != 0 {
		t.Errorf("re-apply: %+v; want nothing pending", r.Plan)
	}
	r = reconcileOn(t, gw, mcAndSSH, forward.ReconcileOptions{Mode: forward.ModeApply,
		Due: func(k forward.Key) bool { return k.ExternalPort == 2222 }})
	if r.Plan.Count(forward.Renew) != 1 || r.Plan.Count(forward.Noop) != 1 {
		t.Errorf("with ssh due: %+v; want ssh renewed", r.Plan)
	}
	r = reconcileOn(t, gw, mcAndSSH, forward.ReconcileOptions{Mode: forward.ModeDown})
	if r.Result.Made() != 2 || r.Plan.Count(forward.Delete) != 2 {
		t.Errorf("down: %+v", r.Plan)
	}
	if ms, _ := gw.List(context.Background()); len(ms) != 1 || ms[0] != foreign {
		t.Errorf("after down the gateway holds %v; want only the foreign mapping", ms)
	}
}

type failingList struct{ *forwardtest.Memory }

func (failingList) List(context.Context) ([]forward.Mapping, error) {
	return nil, errors.New("connection reset")
}

func TestReconcileListFails(t *testing.T) {
	g := forward.NewGateway(failingList{forwardtest.NewMemory(lanSelf)})
	_, err := forward.Reconcile(context.Background(), g, loopConfig(t, mcAndSSH), forward.ReconcileOptions{Mode: forward.ModeApply})
	if err == nil || !strings.HasPrefix(err.Error(), "listing the gateway's mappings: connection reset") {
		t.Errorf("err = %v", err)
	}
}

func TestActionWords(t *testing.T) {
	for a, want := range map[forward.Action][3]string{
		forward.Noop: {"noop", "unchanged", ""}, forward.Create: {"create", "created", ""},
		forward.Update: {"update", "updated", "replace"}, forward.Renew: {"renew", "renewed", ""},
		forward.Delete: {"delete", "deleted", ""}, forward.Conflict: {"conflict", "conflict", ""},
	} {
		if a.String() != want[0] || a.Past() != want[1] || a.IsReplace() != (want[2] == "replace") {
			t.Errorf("%d: %s %s %v", a, a, a.Past(), a.IsReplace())
		}
	}
	if forward.Action(99).String() != "unknown" || forward.Action(99).Past() != "unknown" {
		t.Error("an unknown action should say so")
	}
}
