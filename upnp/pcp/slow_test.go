package pcp

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// TestSlowMappingRequestSaysSlow: once the gateway has answered, a
// mapping request it leaves unanswered within the request timeout fails
// as a slow gateway, naming the flag to raise — not as a gateway that
// does not speak the protocol (which a List of a gateway gone silent
// still says: TestSilenceMessage).
func TestSlowMappingRequestSaysSlow(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := &env{fake: newFakeGateway(t), dir: t.TempDir(), open: p.open, timeout: 300 * time.Millisecond}
			e.b = e.reopen(t)
			e.fake.set(func(f *fakeGateway) { f.silent = true })
			_, err := e.b.Add(testCtx(t), mapping(forward.TCP, 32048, time.Hour))
			want := "adding mapping tcp/32048: the gateway did not answer the " + e.b.m.facts().title +
				" mapping request within 300ms; it may be slow with many mappings: raise --timeout (now 300ms)"
			if err == nil || err.Error() != want || !errors.Is(err, forward.ErrSlowGateway) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Add = %v\nwant %s", err, want)
			}
		})
	}
}
