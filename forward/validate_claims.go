package forward

import (
	"fmt"
	"math"
	"slices"
)

// checkClaims reports rules whose external ports overlap on a protocol: a
// gateway holds one forward per external port and protocol, so the later
// rule would silently replace the earlier one on every apply. Each rule is
// reported once, against the first rule in the file it overlaps on a
// protocol both forward. Comparing every pair took 8 s for 100,000 rules;
// this takes O(n log n) (firstClaims).
func (l *loader) checkClaims(inputs []*ruleInput) {
	for j, a := range firstClaims(inputs) {
		if a >= 0 {
			p, _ := sharedProtocol(inputs[a].Protocols, inputs[j].Protocols)
			l.reportClaim(inputs[a], inputs[j], p)
		}
	}
}

// firstClaims gives, for each rule, the index of the first rule before it
// that claims one of its external ports on a protocol both forward, or -1.
// Only rules whose protocols and ports are valid (portOK) take part.
func firstClaims(inputs []*ruleInput) []int {
	first := make([]int, len(inputs))
	for j := range first {
		first[j] = -1
	}
	for _, idx := range claimantsByProtocol(inputs) {
		t := newClaimTable(inputs, idx)
		for _, j := range idx {
			if a := t.firstOver(inputs[j].External); a < j && (first[j] < 0 || a < first[j]) {
				first[j] = a
			}
		}
	}
	return first
}

// claimantsByProtocol lists, per protocol and family, the indexes of the
// valid rules that forward it, in file order: an IPv4 forward and an IPv6
// pinhole of the same port do not collide.
func claimantsByProtocol(inputs []*ruleInput) map[Key][]int {
	by := make(map[Key][]int)
	for j, r := range inputs {
		if !r.portOK {
			continue
		}
		for _, p := range r.Protocols {
			for _, f := range r.families() {
				k := Key{Protocol: p, Family: f}
				if idx := by[k]; len(idx) == 0 || idx[len(idx)-1] != j {
					by[k] = append(idx, j)
				}
			}
		}
	}
	return by
}

// claimTable tells which rule of one protocol first claims any port of a
// range. The rules' ranges cut the ports into segments, each claimed first
// by one rule (or none); a segment tree over the segments gives the
// lowest claimant of a run of them in O(log n).
type claimTable struct {
	cuts []int // segment k is the ports [cuts[k], cuts[k+1])
	// tree is an iterative segment tree of minimums: the leaves, at
	// len(cuts)-1 onwards, are the segments' first claimants.
	tree []int
}

// newClaimTable builds the table of the rules idx, given in file order.
func newClaimTable(inputs []*ruleInput, idx []int) *claimTable {
	cuts := make([]int, 0, 2*len(idx))
	for _, j := range idx {
		cuts = append(cuts, int(inputs[j].External.First), int(inputs[j].External.Last)+1)
	}
	slices.Sort(cuts)
	t := &claimTable{cuts: slices.Compact(cuts)}
	n := len(t.cuts) - 1
	t.tree = make([]int, 2*n)
	for i := range t.tree {
		t.tree[i] = math.MaxInt
	}
	t.claim(inputs, idx)
	for i := n - 1; i > 0; i-- {
		t.tree[i] = min(t.tree[2*i], t.tree[2*i+1])
	}
	return t
}

// claim gives every segment its first claimant. Each rule, in file order,
// takes the segments of its range that no earlier rule took; a
// union-find of "next segment not yet taken" skips the taken runs, so
// every segment is visited once.
func (t *claimTable) claim(inputs []*ruleInput, idx []int) {
	n := len(t.cuts) - 1
	next := make([]int, n+1)
	for k := range next {
		next[k] = k
	}
	free := func(k int) int {
		root := k
		for next[root] != root {
			root = next[root]
		}
		for next[k] != root {
			next[k], k = root, next[k]
		}
		return root
	}
	for _, j := range idx {
		lo, hi := t.segments(inputs[j].External)
		for k := free(lo); k < hi; k = free(k + 1) {
			t.tree[n+k] = j
			next[k] = k + 1
		}
	}
}

// segments is the run of segments [lo, hi) that r covers.
func (t *claimTable) segments(r PortRange) (lo, hi int) {
	lo, _ = slices.BinarySearch(t.cuts, int(r.First))
	hi, _ = slices.BinarySearch(t.cuts, int(r.Last)+1)
	return lo, hi
}

// firstOver is the lowest index of a rule that claims a port of r: a rule
// of the table always claims its own range, so for the table's rule j a
// result below j is an earlier rule.
func (t *claimTable) firstOver(r PortRange) int {
	lo, hi := t.segments(r)
	n := len(t.cuts) - 1
	best := math.MaxInt
	for lo, hi = lo+n, hi+n; lo < hi; lo, hi = lo/2, hi/2 {
		if lo&1 == 1 {
			best = min(best, t.tree[lo])
			lo++
		}
		if hi&1 == 1 {
			hi--
			best = min(best, t.tree[hi])
		}
	}
	return best
}

// reportClaim records that rule b claims ports rule a claimed first, on
// protocol p.
func (l *loader) reportClaim(a, b *ruleInput, p Protocol) {
	line, key := b.where("external_port")
	if a.External.Len() == 1 && b.External == a.External {
		l.errorf(line, key, "rule %s claims %s/%s, already claimed by rule %s (line %d)",
			ruleLabel(b), p, b.External, ruleLabel(a), a.Line)
		return
	}
	l.errorf(line, key, "rule %s claims %s %s, which overlaps %s %s of rule %s (line %d)",
		ruleLabel(b), p, b.External, p, a.External, ruleLabel(a), a.Line)
}

// sharedProtocol is the first protocol of a that b forwards too.
func sharedProtocol(a, b []Protocol) (Protocol, bool) {
	for _, p := range a {
		for _, q := range b {
			if p == q {
				return p, true
			}
		}
	}
	return "", false
}

// ruleLabel names a rule in messages: its name, or its index if it has none.
func ruleLabel(r *ruleInput) string {
	if r.Name != "" {
		return fmt.Sprintf("%q", r.Name)
	}
	return r.path
}
