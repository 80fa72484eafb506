package forward

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// ErrReadOnly: a change was asked of a backend opened to inspect only.
var ErrReadOnly = errors.New("the gateway was opened read-only")

// ReadOnly wraps b for the commands that only look (plan, status, check):
// List and ExternalAddr pass through, Add and Delete are refused with
// ErrReadOnly and never reach the gateway. It is a decorator, so As still
// finds b's capabilities; a batch (Batcher) is its own, refusing the same
// way, so b's batch is never found through it.
func ReadOnly(b Backend) Backend { return readOnly{b} }

type readOnly struct{ b Backend }

var (
	_ Backend = readOnly{}
	_ Batcher = readOnly{}
)

// Unwrap implements Unwrapper.
func (r readOnly) Unwrap() Backend { return r.b }

// Properties implements Backend.
func (r readOnly) Properties() Properties { return r.b.Properties() }

// List implements Backend.
func (r readOnly) List(ctx context.Context) ([]Mapping, error) { return r.b.List(ctx) }

// ExternalAddr implements Backend.
func (r readOnly) ExternalAddr(ctx context.Context) (netip.Addr, error) { return r.b.ExternalAddr(ctx) }

// Add implements Backend: refused.
func (r readOnly) Add(_ context.Context, m Mapping) (Mapping, error) {
	return Mapping{}, fmt.Errorf("adding mapping %s: %w", m.Key, ErrReadOnly)
}

// Delete implements Backend: refused.
func (r readOnly) Delete(_ context.Context, m Mapping) error {
	return fmt.Errorf("deleting mapping %s: %w", m.Key, ErrReadOnly)
}

// Begin implements Batcher: a batch whose Add and Delete are refused as
// readOnly's own, and whose Commit writes nothing.
func (r readOnly) Begin(context.Context) (Batch, error) { return readOnlyBatch{r}, nil }

// readOnlyBatch is readOnly's Batch.
type readOnlyBatch struct{ readOnly }

// Commit implements Batch: nothing was staged.
func (readOnlyBatch) Commit(context.Context) error { return nil }
