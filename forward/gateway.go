package forward

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Opener opens one backend. The caller (cmd/portfwd) supplies one per
// protocol, in order of preference; only it names concrete backends.
type Opener struct {
	// Name is the backend's name as gateway.backend spells it.
	Name string
	// Detect puts the backend among those auto detection asks. A backend
	// that must be chosen on purpose (iptables on the router itself) leaves
	// it false.
	Detect bool
	// Open connects and proves the gateway speaks the protocol. An error
	// that wraps ErrNoGateway, or a context error, means it did not answer;
	// any other error is an answer (a refusal is one). With trial set,
	// auto detection is opening every protocol at once: the backend must
	// not write portfwd's records, and detection opens the one it keeps
	// again without trial if it keeps records (Properties.ListsFromState).
	// A protocol detection remembered (Memory) is opened without trial,
	// alone.
	Open func(ctx context.Context, trial bool) (Backend, error)
	// Wait is how long Open may wait for the gateway to answer, its
	// request timeout. Auto detection's second pass waits for the
	// longest Wait of the openers it asks (DetectLongBudget when that is
	// longer), so that a router slow to answer is found when the timeout
	// allows it. Zero: no wait of its own.
	Wait time.Duration
}

// Gateway is an open backend and what a run needs to know about it.
type Gateway struct {
	Backend Backend
	// Self is the address this host has toward the gateway: what
	// "internal_host: self" stands for (SelfOf).
	Self netip.Addr
	// Self6 is this host's stable global IPv6 address, what self stands
	// for on IPv6 rules, and why it was chosen (ChooseSelfIPv6).
	Self6 SelfIPv6
	// Detection says how auto detection chose Backend; nil when it was
	// named in the config or on the command line.
	Detection *Detection
	// Release ends a pass that borrowed the gateway (Loop.Connect); err is
	// the gateway failure that ended it, or nil. Nil means nothing to do.
	Release func(err error)
}

// Detection is what auto detection saw and decided.
type Detection struct {
	// Asked are the backends asked, in order of preference: every one
	// that detects, or the remembered one alone.
	Asked    []string
	Answered []string // the backends that answered, in order of preference
	Why      string   // why the chosen one, for people
	// Remembered: the choice of an earlier run (Memory) was opened alone,
	// and Asked and Answered are that one backend.
	Remembered bool
	// FirstEnded: the most preferred backend answered, which ended the
	// wait at once, so the others were not waited for and Answered holds
	// only it; otherwise each was given DetectWindow after the first
	// answer. Answered differs between runs on the same router unless
	// this is read with it.
	FirstEnded bool
}

// Asking says for people what detection asked and how long it waited,
// without which Answered would read as all a router speaks: "asked upnp,
// pcp, natpmp; answered: upnp (the first choice, so the others were not
// waited for)".
func (d *Detection) Asking() string {
	asked, answered := strings.Join(d.Asked, ", "), strings.Join(d.Answered, ", ")
	switch {
	case d.Remembered:
		return "asked " + asked + " alone (remembered)"
	case d.FirstEnded:
		return fmt.Sprintf("asked %s; answered: %s (%s is the first choice, so the others were not waited for)", asked, answered, d.Asked[0])
	case len(d.Asked) > 1:
		return fmt.Sprintf("asked %s; answered: %s (the others had up to %s after the first answer)", asked, answered, DetectWindow)
	}
	return fmt.Sprintf("asked %s; answered: %s", asked, answered)
}

// NewGateway is the Gateway of backend b, with Self from b (Locator) and
// Self6 from b (Locator6) or chosen among this host's IPv6 addresses.
func NewGateway(b Backend) *Gateway {
	self := SelfOf(b)
	return &Gateway{Backend: b, Self: self, Self6: Self6Of(b, self)}
}

// Hosts are the addresses self stands for on g.
func (g *Gateway) Hosts() Hosts { return Hosts{Self: g.Self, Self6: g.Self6.Addr} }

// Done calls Release, if any.
func (g *Gateway) Done(err error) {
	if g != nil && g.Release != nil {
		g.Release(err)
	}
}

// Auto is the gateway.backend value that asks detection to choose.
const Auto = "auto"

// Open opens the backend called name among openers, or with name "" or
// Auto the best of those that answer for rules (Detect), remembered in
// mem (nil: nothing is remembered).
func Open(ctx context.Context, openers []Opener, name string, rules []Rule, mem Memory) (*Gateway, error) {
	if name == "" || name == Auto {
		return Detect(ctx, openers, rules, mem)
	}
	i := slices.IndexFunc(openers, func(o Opener) bool { return o.Name == name })
	if i < 0 {
		return nil, fmt.Errorf("gateway.backend %q is not available in this version of portfwd; use %s", name, backendChoices(openers))
	}
	b, err := openers[i].Open(ctx, false)
	if err != nil {
		return nil, err
	}
	return NewGateway(b), nil
}

// backendChoices is "auto, upnp, natpmp, pcp or iptables".
func backendChoices(openers []Opener) string {
	names := []string{Auto}
	for _, o := range openers {
		names = append(names, o.Name)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Auto detection asks every protocol at once and keeps the best that
// answered. The first pass gives them DetectBudget; once one has answered,
// the others get DetectWindow more: UPnP needs an SSDP answer and a
// description (miniupnpd waits ~50 ms before it answers an M-SEARCH) where
// PCP and NAT-PMP answer in one round trip, and the first opener is
// preferred, so the window is wide enough for it on a busy machine. The
// first opener answering ends the wait at once. Only when nothing answered
// does a second, longer pass run: DetectLongBudget, or the openers' Wait
// (the CLI's --timeout) when longer, so a gateway that speaks nothing
// costs that long, never a hang.
const (
	DetectBudget     = 250 * time.Millisecond
	DetectWindow     = 200 * time.Millisecond
	DetectLongBudget = 2 * time.Second
)

// Detect opens every opener with Detect set, at once and on trial, and
// keeps the best that answered for rules (choose). With a Memory, it first
// opens the choice an earlier run made alone (recall), and remembers what
// it chose when it asked every protocol.
func Detect(ctx context.Context, openers []Opener, rules []Rule, mem Memory) (*Gateway, error) {
	start := time.Now()
	auto := slices.DeleteFunc(slices.Clone(openers), func(o Opener) bool { return !o.Detect })
	if g := recall(ctx, auto, rules, mem); g != nil {
		return g, nil
	}
	firstEnds := otherHostRule(rules) == ""
	found, errs, ended := detect(ctx, auto, DetectBudget, firstEnds)
	if len(found) == 0 && ctx.Err() == nil {
		found, errs, ended = detect(ctx, auto, longBudget(auto), firstEnds)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("detecting the gateway's protocol: %w", err)
	}
	if len(found) == 0 {
		return nil, noAnswer(auto, errs, time.Since(start))
	}
	chosen, det, err := choose(found, rules)
	if err != nil {
		return nil, err
	}
	det.Asked, det.FirstEnded = openerNames(auto), ended
	b := chosen.backend
	if b.Properties().ListsFromState {
		if b, err = chosen.opener.Open(ctx, false); err != nil {
			return nil, err
		}
	}
	if mem != nil {
		mem.Remember(Choice{Backend: chosen.opener.Name, Answered: det.Answered, OtherHost: otherHostRule(rules) != "", At: time.Now()})
	}
	g := NewGateway(b)
	g.Detection = det
	return g, nil
}

// A remembered choice (Memory) is used for DetectMemoryAge after the
// detection that asked every protocol; then they are all asked again. That
// is when a protocol detection would now prefer — UPnP switched on in the
// router, which lists every mapping — is noticed: at the first run a day
// later, at once with --rediscover (which recalls nothing), or as soon as
// the remembered protocol stops answering. Until then portfwd keeps the
// protocol whose mappings it made, as a daemon keeps its backend (Dialer):
// the mappings one protocol made look foreign to UPnP.
const DetectMemoryAge = 24 * time.Hour

// recall opens the choice mem remembers for rules alone, for real, within
// DetectBudget, and returns its gateway. It returns nil when there is no
// memory or no choice; when the choice names no opener in auto, is older
// than DetectMemoryAge (or from the future), or was made for the other
// kind of rules; and when its backend does not open or does not fit the
// rules (a rule for another host needs a backend that may map for one):
// the last two are forgotten, and the full detection that follows
// remembers anew.
func recall(ctx context.Context, auto []Opener, rules []Rule, mem Memory) *Gateway {
	if mem == nil || ctx.Err() != nil {
		return nil
	}
	other := otherHostRule(rules)
	c, ok := mem.Recall(other != "")
	i := slices.IndexFunc(auto, func(o Opener) bool { return o.Name == c.Backend })
	if !ok || i < 0 || !usable(c, other != "", time.Now()) {
		return nil
	}
	b, err := openAlone(ctx, auto[i])
	if err == nil && (other == "" || b.Properties().ThirdParty != ThirdPartyNo) {
		g := NewGateway(b)
		g.Detection = remembered(c, auto)
		return g
	}
	if ctx.Err() == nil { // an interruption says nothing about the gateway
		mem.Forget(other != "")
	}
	return nil
}

// usable reports whether choice c may be used at now for rules of which
// one forwards to another host (otherHost).
func usable(c Choice, otherHost bool, now time.Time) bool {
	age := now.Sub(c.At)
	return c.OtherHost == otherHost && age >= 0 && age < DetectMemoryAge
}

// openAlone opens o for real, the only protocol asked, within DetectBudget.
func openAlone(ctx context.Context, o Opener) (Backend, error) {
	ctx, cancel := context.WithTimeout(ctx, DetectBudget)
	defer cancel()
	return o.Open(ctx, false)
}

// remembered is the Detection of the recalled choice c. Of the names
// Answered held, only those of openers in auto are shown: the memory is a
// file anyone with the user's rights may write.
func remembered(c Choice, auto []Opener) *Detection {
	var then []string
	for _, o := range auto {
		if o.Name == c.Backend || slices.Contains(c.Answered, o.Name) {
			then = append(then, o.Name)
		}
	}
	return &Detection{Asked: []string{c.Backend}, Answered: []string{c.Backend}, Remembered: true,
		Why: fmt.Sprintf("remembered from the detection of %s, when %s answered and %s was chosen; every protocol is asked again %.0f h after it, or at once with --rediscover",
			c.At.Local().Format("2006-01-02 15:04"), strings.Join(then, ", "), c.Backend, DetectMemoryAge.Hours())}
}

// longBudget is how long detection's second pass waits: DetectLongBudget,
// or the longest Wait of openers.
func longBudget(openers []Opener) time.Duration {
	d := DetectLongBudget
	for _, o := range openers {
		d = max(d, o.Wait)
	}
	return d
}

// answer is an opener that answered, with its backend opened on trial.
type answer struct {
	opener  Opener
	backend Backend
}

// detect opens every opener at once within budget and returns those that
// answered, in the openers' order, the errors of the others (nil for
// those that answered), and whether the first opener's answer ended the
// wait (ended). With firstEnds, the first opener answering ends the wait;
// without it (a rule for another host, where a later opener made for
// third parties ranks higher) the others get the DetectWindow too.
func detect(ctx context.Context, openers []Opener, budget time.Duration, firstEnds bool) (out []answer, errs []error, ended bool) {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	found := make([]Backend, len(openers))
	errs = make([]error, len(openers))
	var once sync.Once
	var wg sync.WaitGroup
	for i, o := range openers {
		wg.Go(func() {
			b, err := o.Open(ctx, true)
			if err != nil {
				errs[i] = err
				return
			}
			found[i] = b
			if i == 0 && firstEnds {
				cancel() // the first choice answered: nothing better can come
			}
			once.Do(func() { time.AfterFunc(DetectWindow, cancel) })
		})
	}
	wg.Wait()
	for i, b := range found {
		if b != nil {
			out = append(out, answer{openers[i], b})
		}
	}
	// Only the first opener's answer ends the wait early; when it came,
	// whatever else is in found answered before it.
	return out, errs, firstEnds && found[0] != nil && len(openers) > 1
}

// noAnswer is the error when none of the openers asked answered, after
// waited (measured: what the user waited, not a budget). When they all
// failed alike before the wait was over (no default route), that failure
// is the news. Whether gateway.address is worth setting is for the
// caller, which knows whether it was given.
func noAnswer(asked []Opener, errs []error, waited time.Duration) error {
	if same := sameError(errs); same != nil {
		return NoGateway(fmt.Errorf("none of %s could ask the gateway: %w", strings.Join(openerNames(asked), ", "), same))
	}
	return NoGateway(fmt.Errorf("the gateway answered none of %s (asked at once, waited %s): is port forwarding (UPnP, PCP or NAT-PMP) switched on in the router? if it is slow to answer, raise --timeout",
		strings.Join(openerNames(asked), ", "), waited.Round(100*time.Millisecond)))
}

// sameError is the error every opener failed with when they all failed
// with the same message and not by waiting in vain, else nil.
func sameError(errs []error) error {
	if len(errs) < 2 || errs[0] == nil || errors.Is(errs[0], context.DeadlineExceeded) || errors.Is(errs[0], context.Canceled) {
		return nil
	}
	for _, err := range errs[1:] {
		if err == nil || err.Error() != errs[0].Error() {
			return nil
		}
	}
	return errs[0]
}

// choose picks among the answers by their Properties. For rules that all
// forward to this host, the first that lists the gateway's mappings by
// itself (it sees conflicts with other programs before they happen), else
// the first answer. A rule for another host needs a backend that may map
// for third parties: the one made for it first (ThirdPartyYes), then one
// whose router may allow it; never one whose protocol cannot. found is
// not empty.
func choose(found []answer, rules []Rule) (answer, *Detection, error) {
	det := &Detection{}
	for _, a := range found {
		det.Answered = append(det.Answered, a.opener.Name)
	}
	other := otherHostRule(rules)
	ranked := slices.Clone(found)
	slices.SortStableFunc(ranked, func(a, b answer) int { return rank(b, other) - rank(a, other) })
	best := ranked[0]
	if other != "" && best.backend.Properties().ThirdParty == ThirdPartyNo {
		return answer{}, nil, fmt.Errorf("rule %q forwards to another host, which none of the protocols the gateway answered (%s) can do; run portfwd on that host instead",
			other, strings.Join(det.Answered, ", "))
	}
	det.Why = why(best, found[0], other)
	return best, det, nil
}

// rank orders answers for choose: higher is better.
func rank(a answer, other string) int {
	p := a.backend.Properties()
	if other != "" {
		return int(p.ThirdParty)
	}
	if !p.ListsFromState {
		return 1
	}
	return 0
}

// why says, for people, why best was chosen; first is the most preferred
// answer.
func why(best, first answer, other string) string {
	name, p := best.opener.Name, best.backend.Properties()
	switch {
	case other != "" && p.ThirdParty == ThirdPartyYes:
		return fmt.Sprintf("rule %q forwards to another host, and %s is made to map ports for other hosts", other, name)
	case other != "":
		return fmt.Sprintf("rule %q forwards to another host, which %s does only if the router allows it", other, name)
	case !p.ListsFromState:
		return name + " lists every mapping on the router, so conflicts with other programs are seen"
	case best.opener.Name == first.opener.Name:
		return "no protocol that lists the router's mappings answered; " + name + " is preferred among the others"
	}
	return name + " answered"
}

// otherHostRule names a rule whose internal_host is not this machine.
func otherHostRule(rules []Rule) string {
	for _, r := range rules {
		if r.InternalAddr.IsValid() {
			return r.Name
		}
	}
	return ""
}

func openerNames(openers []Opener) []string {
	out := make([]string, len(openers))
	for i, o := range openers {
		out[i] = o.Name
	}
	return out
}

// IsSilence reports whether err from Opener.Open means the protocol did
// not answer at all, as opposed to answering with a refusal.
func IsSilence(err error) bool {
	return errors.Is(err, ErrNoGateway) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
