package firewall

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/portfwd/portfwd/forward"
)

// A pass's changes in one iptables-restore --noflush (forward.Batcher):
// the batch's Add and Delete run the same editor as Add and Delete, on a
// copy of the view, and stage each write as one line of a restore script
// instead of an iptables call; Commit runs the script. 200 new mappings
// are then one process instead of 400 (--noflush leaves every rule it is
// not told about alone).

// restorer runs iptables-restore --noflush on a script; the tests fake it.
type restorer interface {
	restore(ctx context.Context, script string) error
}

// restoreTimeout bounds one iptables-restore. Hundreds of rules take well
// under a second; one that takes longer waits for the xtables lock
// another program holds.
const restoreTimeout = 30 * time.Second

// restoreOutputLimit bounds how much of iptables-restore's output an
// error quotes.
const restoreOutputLimit = 2048

var errRestoreTimeout = fmt.Errorf("it did not finish within %v; another program may hold the xtables lock (/run/xtables.lock)", restoreTimeout)

// restoreCmd runs path, the binary restoreBinary found (usually the
// xtables multi-binary the iptables command is), under name,
// iptables-restore or ip6tables-restore: so it writes the tables of the
// same family and flavour, nf_tables or legacy, as the iptables calls do.
type restoreCmd struct{ path, name string }

func (r restoreCmd) restore(ctx context.Context, script string) error {
	ctx, cancel := context.WithTimeoutCause(ctx, restoreTimeout, fmt.Errorf("%s: %w", r.name, errRestoreTimeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, r.path, "--noflush", "--wait")
	cmd.Args[0] = r.name
	cmd.Stdin = strings.NewReader(script)
	out := &headBuffer{limit: restoreOutputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return fmt.Errorf("%s --noflush: %w: %s", r.name, err, forward.Printable(out.String()))
}

// headBuffer keeps the first limit bytes written to it and drops the rest.
type headBuffer struct {
	b         []byte
	limit     int
	truncated bool
}

func (h *headBuffer) Write(p []byte) (int, error) {
	n := min(len(p), h.limit-len(h.b))
	h.b = append(h.b, p[:n]...)
	h.truncated = h.truncated || n < len(p)
	return len(p), nil
}

// String is what was kept, trimmed, with "…" when some was dropped.
func (h *headBuffer) String() string {
	s := strings.TrimSpace(string(h.b))
	if h.truncated {
		s += "…"
	}
	return s
}

// errBatchDone: a batch is committed once, and stages nothing after.
var errBatchDone = errors.New("the iptables-restore batch was already committed")

// Begin implements forward.Batcher. It reads the tables unless the last
// List did; without an iptables-restore (and ip6tables-restore, with the
// IPv6 side) of the flavour in use there is no batch, and Apply makes the
// changes one by one.
func (f *Firewall) Begin(ctx context.Context) (forward.Batch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := &batch{f: f}
	for _, t := range f.sides() {
		if t.restore == nil {
			return nil, fmt.Errorf("%s is no xtables multi-binary, so there is no %s-restore of its flavour", t.cmd(), t.cmd())
		}
		v, err := t.current()
		if err != nil {
			t.view = nil
			return nil, err
		}
		b.parts = append(b.parts, &part{t: t, base: v, s: newScript(v.clone())})
	}
	return b, nil
}

// batch is the iptables backend's forward.Batch: a part per family, each
// committed with its own -restore.
type batch struct {
	f     *Firewall
	parts []*part // IPv4, then IPv6 with the IPv6 side
	done  bool
}

// part is one family's share of a batch.
type part struct {
	t    *tables
	base *view   // the view it copied, which Commit replaces with its own
	s    *script // the staged writes and the view with them
}

var _ forward.Batch = (*batch)(nil)

// Add implements forward.Batch: Add's checks and writes, staged.
func (b *batch) Add(ctx context.Context, m forward.Mapping) (forward.Mapping, error) {
	if err := b.stage(ctx, m.Family, func(e editor) error { return e.add(ctx, m) }); err != nil {
		return forward.Mapping{}, fmt.Errorf("adding mapping %s: %w", m.Key, err)
	}
	return granted(m), nil
}

// Delete implements forward.Batch: Delete's writes, staged.
func (b *batch) Delete(ctx context.Context, m forward.Mapping) error {
	if err := b.stage(ctx, m.Family, func(e editor) error { return e.deleteRules(ctx, m.Key, e.t.owned()) }); err != nil {
		return fmt.Errorf("deleting mapping %s: %w", m.Key, err)
	}
	return nil
}

// stage runs one edit on the view of fam's part, staging its writes; a
// failed edit takes back what it staged, so the change fails alone.
func (b *batch) stage(ctx context.Context, fam forward.Family, do func(editor) error) error {
	if b.done {
		return errBatchDone
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := b.f.tablesOf(fam)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(b.parts, func(p *part) bool { return p.t == t })
	if i < 0 {
		return fmt.Errorf("the batch has no %s part", t.cmd())
	}
	p := b.parts[i]
	mark := p.s.mark()
	if err := do(editor{f: b.f, t: t, v: p.s.v, w: p.s}); err != nil {
		p.s.rollback(mark)
		return err
	}
	return nil
}

// Commit implements forward.Batch: every staged write of a family in one
// iptables-restore --noflush (ip6tables-restore for IPv6). The backend's
// view of it is then the batch's. After a failure that family's tables are
// read again: a -restore commits table by table, so part may be written;
// a Warning tells why the pass went one change at a time.
func (b *batch) Commit(ctx context.Context) error {
	f := b.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if b.done {
		return errBatchDone
	}
	b.done = true
	var errs []error
	for _, p := range b.parts {
		if err := f.commit(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// commit writes p's staged writes with its family's -restore.
func (f *Firewall) commit(ctx context.Context, p *part) error {
	t := p.t
	if p.s.writes() == 0 {
		return nil
	}
	if err := t.restore.restore(ctx, p.s.String()); err != nil {
		t.view = nil
		if ctx.Err() == nil {
			f.notes = append(f.notes, fmt.Sprintf("writing %d rule changes in one %s-restore failed (%v); portfwd made the changes one at a time with %s instead", p.s.writes(), t.cmd(), err, t.cmd()))
		}
		return err
	}
	if t.view == p.base {
		t.view = p.s.v
	} else {
		t.view = nil // read meanwhile: trust neither
	}
	return nil
}

// restoreTables are the tables a script writes, in order. iptables-restore
// commits each on its own; filter first puts each ACCEPT in place before
// its DNAT, the order Add keeps. (A deleted mapping's ACCEPT goes an
// instant before its DNAT: only packets of a forward being removed drop.)
var restoreTables = []string{"filter", "nat"}

// script is an iptables-restore --noflush input being staged, a writer:
// each write is one line of its table, recorded in v. undo takes the
// latest writes back, from the lines and from v.
type script struct {
	v     *view
	lines map[string][]string
	undo  []staged
}

// staged is one write of a script: its table, and how to take back its
// edit of the view.
type staged struct {
	table string
	view  func()
}

var _ writer = (*script)(nil)

func newScript(v *view) *script { return &script{v: v, lines: map[string][]string{}} }

func (s *script) newChain(table, chain string) error {
	return s.write(table, func() func() { return s.v.create(table, chain) }, "-N", chain)
}

func (s *script) insertFirst(table, chain string, spec []string) error {
	return s.write(table, func() func() { return s.v.add(table, chain, spec, true) }, append([]string{"-I", chain, "1"}, spec...)...)
}

func (s *script) append(table, chain string, spec []string) error {
	return s.write(table, func() func() { return s.v.add(table, chain, spec, false) }, append([]string{"-A", chain}, spec...)...)
}

func (s *script) delete(table, chain string, spec []string) error {
	return s.write(table, func() func() { return s.v.remove(table, chain, spec) }, append([]string{"-D", chain}, spec...)...)
}

// write stages the line of words in table and makes edit, the write's
// record in the view.
func (s *script) write(table string, edit func() func(), words ...string) error {
	if !slices.Contains(restoreTables, table) {
		return fmt.Errorf("table %s is not one a batch writes", table)
	}
	quoted := make([]string, len(words))
	for i, w := range words {
		if strings.ContainsAny(w, "\n\r\x00") {
			return fmt.Errorf("%s cannot be written on an iptables-restore line", forward.Printable(w))
		}
		quoted[i] = restoreWord(w)
	}
	s.lines[table] = append(s.lines[table], strings.Join(quoted, " "))
	s.undo = append(s.undo, staged{table: table, view: edit()})
	return nil
}

// restoreWord is w as iptables-restore reads it back into one argument
// (xtables' add_param_to_argv): a word that is empty or holds a blank, a
// double quote or a backslash goes in double quotes, with " and \ escaped.
func restoreWord(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\"\\") {
		return w
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(w) + `"`
}

// mark is where rollback goes back to.
func (s *script) mark() int { return len(s.undo) }

// rollback takes back the writes staged since mark, newest first.
func (s *script) rollback(mark int) {
	for len(s.undo) > mark {
		u := s.undo[len(s.undo)-1]
		s.undo = s.undo[:len(s.undo)-1]
		s.lines[u.table] = s.lines[u.table][:len(s.lines[u.table])-1]
		u.view()
	}
}

// writes is how many writes are staged.
func (s *script) writes() int { return len(s.undo) }

// String is the iptables-restore input: a *table ... COMMIT block per
// table with writes.
func (s *script) String() string {
	var b strings.Builder
	for _, t := range restoreTables {
		if len(s.lines[t]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", t)
		for _, l := range s.lines[t] {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}
