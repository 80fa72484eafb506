package forward_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/portfwd/portfwd/forward"
	"github.com/portfwd/portfwd/forward/forwardtest"
)

// batching is an in-memory gateway that can batch (forward.Batcher). A
// batch answers from a preview of the gateway and writes at Commit; direct
// counts the Add and Delete calls made on the gateway itself, change by
// change.
type batching struct {
	*forwardtest.Memory
	refuse     func(forward.Mapping) error // a direct Add of such a mapping fails
	failBegin  error
	failCommit error // Commit writes the first staged change, then fails
	begins     int
	commits    int
	direct     int
}

var _ forward.Batcher = (*batching)(nil)

func newBatching() *batching { return &batching{Memory: forwardtest.NewMemory(self)} }

func (g *batching) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	g.direct++
	if g.refuse != nil {
		if err := g.refuse(m); err != nil {
			return forward.Mapping{}, err
		}
	}
	return g.Memory.Add(ctx, m)
}

func (g *batching) Delete(ctx context.Context, m forward.Mapping) error {
	g.direct++
	return g.Memory.Delete(ctx, m)
}

func (g *batching) Begin(ctx context.Context) (forward.Batch, error) {
	g.begins++
	if g.failBegin != nil {
		return nil, g.failBegin
	}
	preview := forwardtest.NewMemory(self)
	ms, err := g.Memory.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		preview.Put(m)
	}
	return &memBatch{g: g, preview: preview}, nil
}

// memBatch stages on a preview and replays what staged on the gateway at
// Commit.
type memBatch struct {
	g       *batching
	preview *forwardtest.Memory
	staged  []func(context.Context) error
}

func (b *memBatch) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	got, err := b.preview.Add(ctx, m)
	if err == nil {
		b.staged = append(b.staged, func(ctx context.Context) error { _, err := b.g.Memory.Add(ctx, m); return err })
	}
	return got, err
}

func (b *memBatch) Delete(ctx context.Context, m forward.Mapping) error {
	err := b.preview.Delete(ctx, m)
	if err == nil {
		b.staged = append(b.staged, func(ctx context.Context) error { return b.g.Memory.Delete(ctx, m) })
	}
	return err
}

func (b *memBatch) Commit(ctx context.Context) error {
	b.g.commits++
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, op := range b.staged {
		if b.g.failCommit != nil && i > 0 {
			return b.g.failCommit
		}
		if err := op(ctx); err != nil {
			return err
		}
	}
	return b.g.failCommit
}

func plan(t *testing.T, g forward.Backend, desired []forward.Mapping) forward.Plan {
	t.Helper()
	observed, err := g.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return forward.Diff(desired, observed, forward.DiffOptions{Config: "t", Prune: true, Hosts: []netip.Addr{self}})
}

func ports(t *testing.T, g forward.Backend) []uint16 {
	t.Helper()
	ms, err := g.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []uint16
	for _, m := range ms {
		out = append(out, m.ExternalPort)
	}
	return out
}

func TestApplyBatchesWhenItCan(t *testing.T) {
	g := newBatching()
	g.Put(mapping(forward.TCP, 9, self, "pf:t:old", 0))            // pruned
	g.Put(withPort(mapping(forward.TCP, 2, self, "pf:t:b", 0), 1)) // replaced
	desired := []forward.Mapping{
		mapping(forward.TCP, 1, self, "pf:t:a", 0),
		mapping(forward.TCP, 2, self, "pf:t:b", 0),
	}
	res := forward.Apply(context.Background(), g, plan(t, g, desired), nil)
	if res.Failed() != 0 || res.Made() != 3 || len(res.Outcomes) != 3 {
		t.Fatalf("outcomes %+v; want 3 made", res.Outcomes)
	}
	for _, o := range res.Outcomes {
		if o.Change.Action != forward.Delete && (o.Granted == nil || o.Granted.Key != o.Change.Key) {
			t.Errorf("%v %v: granted %v", o.Change.Action, o.Change.Key, o.Granted)
		}
	}
	if g.begins != 1 || g.commits != 1 || g.direct != 0 {
		t.Errorf("%d batches, %d commits, %d direct calls; want one batch and no direct call", g.begins, g.commits, g.direct)
	}
	if got := ports(t, g); !slices.Equal(got, []uint16{1, 2}) {
		t.Errorf("gateway holds ports %v, want [1 2]", got)
	}
	res = forward.Apply(context.Background(), g, plan(t, g, desired), nil)
	if res.Made() != 0 || g.begins != 1 {
		t.Errorf("a no-op apply made %d changes and began %d batches; want none", res.Made(), g.begins-1)
	}
}

// A failed commit: each change that had staged is made again alone, so the
// one bad change fails with its own error and the others are made; a
// change refused while staging keeps its refusal.
func TestApplyBatchCommitFailsChangeByChange(t *testing.T) {
	g := newBatching()
	g.failCommit = errors.New("transaction refused")
	bad := errors.New("port 2 is bad")
	g.refuse = func(m forward.Mapping) error {
		if m.ExternalPort == 2 {
			return bad
		}
		return nil
	}
	desired := []forward.Mapping{
		mapping(forward.TCP, 1, self, "pf:t:a", 0),
		mapping(forward.TCP, 2, self, "pf:t:b", 0),
		mapping(forward.TCP, 3, other, "pf:t:c", 0), // secure mode: refused while staging
		mapping(forward.TCP, 4, self, "pf:t:d", 0),
	}
	res := forward.Apply(context.Background(), g, plan(t, g, desired), nil)
	want := []error{nil, bad, forward.ErrNotAuthorized, nil}
	for i, o := range res.Outcomes {
		if (want[i] == nil) != (o.Err == nil) || want[i] != nil && !errors.Is(o.Err, want[i]) {
			t.Errorf("outcome %d (%v): %v, want %v", i, o.Change.Key, o.Err, want[i])
		}
	}
	if g.commits != 1 || g.direct != 3 {
		t.Errorf("%d commits, %d direct calls; want 1, then the 3 staged changes again", g.commits, g.direct)
	}
	if got := ports(t, g); !slices.Equal(got, []uint16{1, 4}) {
		t.Errorf("gateway holds ports %v, want [1 4]", got)
	}
}

func TestApplyBatchBeginFailsGoesOneByOne(t *testing.T) {
	g := newBatching()
	g.failBegin = errors.New("no transactions here")
	res := forward.Apply(context.Background(), g, plan(t, g, []forward.Mapping{mapping(forward.TCP, 1, self, "pf:t:a", 0)}), nil)
	if res.Failed() != 0 || g.direct != 1 || g.commits != 0 {
		t.Errorf("outcomes %+v, %d direct calls, %d commits; want the change made directly", res.Outcomes, g.direct, g.commits)
	}
}

func TestApplyBatchCancelled(t *testing.T) {
	g := newBatching()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := forward.Apply(ctx, g, plan(t, g, []forward.Mapping{mapping(forward.TCP, 1, self, "pf:t:a", 0)}), nil)
	if !errors.Is(res.Outcomes[0].Err, context.Canceled) || len(ports(t, g)) != 0 || g.direct != 0 {
		t.Errorf("cancelled: %v, gateway holds %v, %d direct calls", res.Outcomes[0].Err, ports(t, g), g.direct)
	}
}

// ReadOnly has a batch of its own: Apply through it never reaches the
// batch of the backend it wraps.
func TestReadOnlyRefusesBatches(t *testing.T) {
	g := newBatching()
	g.Put(mapping(forward.TCP, 9, self, "pf:t:old", 0))
	ro := forward.ReadOnly(g)
	res := forward.Apply(context.Background(), ro, plan(t, ro, []forward.Mapping{mapping(forward.TCP, 1, self, "pf:t:a", 0)}), nil)
	if len(res.Outcomes) != 2 {
		t.Fatalf("outcomes %+v; want a create and a delete", res.Outcomes)
	}
	for _, o := range res.Outcomes {
		if !errors.Is(o.Err, forward.ErrReadOnly) {
			t.Errorf("%v %v through ReadOnly: %v; want ErrReadOnly", o.Change.Action, o.Change.Key, o.Err)
		}
	}
	if g.begins != 0 || g.direct != 0 || !slices.Equal(ports(t, g), []uint16{9}) {
		t.Errorf("ReadOnly let writes through: %d batches, %d direct calls, gateway holds %v", g.begins, g.direct, ports(t, g))
	}
}
