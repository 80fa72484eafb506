package forward

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// pairwiseFirstClaims is the check firstClaims replaced: every rule against
// every rule before it.
func pairwiseFirstClaims(inputs []*ruleInput) []int {
	first := make([]int, len(inputs))
	for j, b := range inputs {
		first[j] = -1
		if !b.portOK {
			continue
		}
		for i, a := range inputs[:j] {
			if _, shared := sharedProtocol(a.Protocols, b.Protocols); a.portOK && shared && a.External.Overlaps(b.External) {
				first[j] = i
				break
			}
		}
	}
	return first
}

// randomClaims is n rules on a few protocols and ports, crowded into a
// small port space so that they overlap often, some invalid.
func randomClaims(rng *rand.Rand, n int) []*ruleInput {
	protos := [][]Protocol{{TCP}, {UDP}, {TCP, UDP}, {UDP, TCP}}
	inputs := make([]*ruleInput, n)
	for j := range inputs {
		first := uint16(1 + rng.IntN(60))
		last := first + uint16(rng.IntN(3)*rng.IntN(8))
		inputs[j] = &ruleInput{Rule: Rule{Protocols: protos[rng.IntN(len(protos))], External: PortRange{first, last}}, portOK: rng.IntN(10) > 0}
	}
	return inputs
}

func TestFirstClaimsMatchesPairwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 2000 {
		inputs := randomClaims(rng, rng.IntN(40))
		if got, want := firstClaims(inputs), pairwiseFirstClaims(inputs); !slices.Equal(got, want) {
			for j, r := range inputs {
				t.Logf("%d: %v %s ok=%v", j, r.Protocols, r.External, r.portOK)
			}
			t.Fatalf("round %d: firstClaims = %v, want %v", round, got, want)
		}
	}
}

func TestFirstClaimsEdges(t *testing.T) {
	r := func(p Protocol, first, last uint16) *ruleInput {
		return &ruleInput{Rule: Rule{Protocols: []Protocol{p}, External: PortRange{first, last}}, portOK: true}
	}
	for _, tc := range []struct {
		name   string
		inputs []*ruleInput
		want   []int
	}{
		{"none", nil, []int{}},
		{"touching ranges do not overlap", []*ruleInput{r(TCP, 1, 10), r(TCP, 11, 20), r(TCP, 65535, 65535), r(TCP, 1, 1)}, []int{-1, -1, -1, 0}},
		{"the first of several, not the nearest", []*ruleInput{r(UDP, 5, 5), r(UDP, 1, 65535), r(UDP, 5, 6)}, []int{-1, 0, 0}},
		{"a later rule covering a gap", []*ruleInput{r(TCP, 10, 10), r(TCP, 30, 30), r(TCP, 1, 65535), r(TCP, 20, 20)}, []int{-1, -1, 0, 2}},
		{"other protocol", []*ruleInput{r(TCP, 1, 100), r(UDP, 50, 50)}, []int{-1, -1}},
	} {
		if got := firstClaims(tc.inputs); !slices.Equal(got, tc.want) {
			t.Errorf("%s: firstClaims = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCheckClaimsScales checks 131,070 rules, one per port and protocol
// (no overlaps, the worst case for comparing pairs: 8.6e9 comparisons,
// some 15 s), within a budget that only an O(n log n) check meets.
func TestCheckClaimsScales(t *testing.T) {
	var inputs []*ruleInput
	for _, p := range []Protocol{TCP, UDP} {
		for port := 1; port <= 65535; port++ {
			inputs = append(inputs, &ruleInput{Rule: Rule{Name: fmt.Sprint("r", len(inputs)), Protocols: []Protocol{p},
				External: PortRange{uint16(port), uint16(port)}}, portOK: true})
		}
	}
	inputs = append(inputs, &ruleInput{Rule: Rule{Name: "last", Protocols: []Protocol{UDP, TCP}, External: PortRange{2, 3}}, portOK: true})
	l := newLoader("portfwd.yaml", LoadOptions{})
	done := make(chan struct{})
	start := time.Now()
	go func() { l.checkClaims(inputs); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatalf("checkClaims of %d rules still running after 3s", len(inputs))
	}
	t.Logf("checkClaims of %d rules: %v", len(inputs), time.Since(start))
	if len(l.errs) != 1 || l.errs[0].Message != `rule "last" claims tcp 2-3, which overlaps tcp 2 of rule "r1" (line 0)` {
		t.Errorf("errors = %v", l.errs)
	}
}
