package forward

import (
	"net/netip"
	"slices"
	"time"
)

// Action is what a Change does to one mapping on the gateway.
type Action int

// The actions a plan can hold, with what Change.Before and Change.After
// hold for each:
//
//	Noop      Before: the mapping in place; After: the same, wanted
//	Create    Before: nil;                  After: the mapping to add
//	Update    Before: the gateway's;        After: the mapping to add in its place
//	Renew     Before: the gateway's;        After: the same, with the lease to ask for
//	Delete    Before: the owned mapping;    After: nil
//	Conflict  Before: someone else's;       After: the mapping wanted on its key
//	Held      Before: someone else's;       After: the mapping wanted, which it already is
//
// Update is a replacement (IsReplace): Apply deletes Before, then adds
// After. Conflict is not something Apply can carry out: it reports a key
// held by someone else. Held is a key held by someone else (a game's own
// UPnP mapping, another config's) that already forwards where the rule
// wants: the forward works, but it is not portfwd's to renew or delete.
const (
	Noop Action = iota
	Create
	Update
	Renew
	Delete
	Conflict
	Held
)

var actionNames = [...]string{"noop", "create", "update", "renew", "delete", "conflict", "held"}

var actionPast = [...]string{"unchanged", "created", "updated", "renewed", "deleted", "conflict", "held"}

// String is the lower-case name used in tables and JSON.
func (a Action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return "unknown"
	}
	return actionNames[a]
}

// Past is what the action did, for results and logs: "created",
// "unchanged" for Noop, "conflict" for Conflict (nothing was done).
func (a Action) Past() string {
	if a < 0 || int(a) >= len(actionPast) {
		return "unknown"
	}
	return actionPast[a]
}

// IsReplace reports whether Apply carries the action out by deleting the
// gateway's mapping and then adding the wanted one: many gateways refuse
// to overwrite a mapping that points elsewhere (UPnP 718), even their own,
// so an Update is never done in place. The mapping is briefly absent.
func (a Action) IsReplace() bool { return a == Update }

// MarshalText makes JSON output carry the action's name.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Change is one entry of a plan. Before is the mapping observed on the
// gateway (nil for Create); After is the mapping wanted (nil for Delete).
type Change struct {
	Action Action
	Key    Key
	Rule   string   // the rule the change serves, or the owner of a deleted mapping
	Before *Mapping `json:",omitempty"`
	After  *Mapping `json:",omitempty"`
	Reason string   // for people only; never parsed
}

// Plan is the ordered list of changes that makes a gateway match a config.
type Plan struct {
	Changes []Change
}

// Pending reports whether the gateway differs from the config at all,
// conflicts included. A Held forward is in place: not pending.
func (p Plan) Pending() bool {
	return slices.ContainsFunc(p.Changes, func(c Change) bool { return c.Action != Noop && c.Action != Held })
}

// Count is the number of changes with action a.
func (p Plan) Count(a Action) int {
	n := 0
	for _, c := range p.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// DiffOptions tune Diff.
type DiffOptions struct {
	// Prune deletes owned mappings that no desired mapping claims.
	Prune bool
	// Config is the name of the config (Config.Name): an observed mapping
	// is owned only when its tag names it. Two configs on one PC never
	// touch each other's mappings.
	Config string
	// Rules are the config's rule names: a mapping tagged by an older
	// portfwd (LegacyTagPrefix) with one of them is owned, and re-tagged.
	Rules []string
	// Hosts are the internal hosts this config maps to. An observed
	// mapping is owned only when it carries the config's tag AND points at
	// one of them: another PC on the LAN running portfwd with a config of
	// the same name owns its own mappings, and they are foreign here.
	Hosts []netip.Addr
	// AnyHost makes every mapping with the config's tag owned, whatever
	// host it forwards to: the gateway is this machine (Properties.Local).
	AnyHost bool
}

// Owns reports whether the config these options describe may change o:
// it carries the config's tag (or an older portfwd's tag for one of its
// rules) and forwards to one of Hosts (or AnyHost).
func (opts DiffOptions) Owns(o Mapping) bool {
	return opts.Tags(o) && (opts.AnyHost || slices.Contains(opts.Hosts, o.InternalHost))
}

// Tags reports whether o's description names this config, whatever host
// it forwards to.
func (opts DiffOptions) Tags(o Mapping) bool {
	own, ok := OwnerOf(o.Description)
	switch {
	case !ok:
		return false
	case own.Legacy():
		return slices.Contains(opts.Rules, own.Rule)
	}
	return own.Config == opts.Config
}

// Diff compares the desired mappings with those observed on the gateway
// and returns the plan that reconciles them. It is pure: no I/O, and the
// same input always gives the same plan, sorted by key.
//
// Foreign mappings are never touched: one on a desired key is a Conflict,
// the rest are left out of the plan. A desired mapping with AnyExternal is
// satisfied by an owned mapping on any external port; see diffAny.
func Diff(desired, observed []Mapping, opts DiffOptions) Plan {
	seen := make(map[Key]Mapping, len(observed))
	for _, o := range observed {
		o = normalise(o)
		seen[o.Key] = o
	}
	var plan Plan
	want := make([]Mapping, len(desired))
	wanted := make(map[Key]bool, len(desired))
	for i, d := range desired {
		want[i] = normalise(d)
		if !d.AnyExternal {
			wanted[want[i].Key] = true
		}
	}
	byKey := sortedMappings(seen)
	for _, d := range want {
		if d.AnyExternal {
			plan.Changes = append(plan.Changes, diffAny(d, byKey, seen, wanted, opts))
			continue
		}
		o, ok := seen[d.Key]
		plan.Changes = append(plan.Changes, compare(d, o, ok, opts))
	}
	if opts.Prune {
		plan.Changes = append(plan.Changes, prune(byKey, wanted, opts)...)
	}
	slices.SortStableFunc(plan.Changes, func(a, b Change) int { return a.Key.Compare(b.Key) })
	return plan
}

// prune deletes the owned mappings no desired mapping claims.
func prune(observed []Mapping, wanted map[Key]bool, opts DiffOptions) []Change {
	var out []Change
	for _, o := range observed {
		if !wanted[o.Key] && opts.Owns(o) {
			out = append(out, Change{Action: Delete, Key: o.Key, Rule: o.Owner(),
				Before: ptr(o), Reason: "rule " + quote(o.Owner()) + " is no longer in the config"})
		}
	}
	return out
}

// sortedMappings lists seen by key, so that choices among them are
// deterministic.
func sortedMappings(seen map[Key]Mapping) []Mapping {
	out := make([]Mapping, 0, len(seen))
	for _, o := range seen {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b Mapping) int { return a.Key.Compare(b.Key) })
	return out
}

// diffAny plans a desired mapping that takes any external port. An owned
// mapping of the same rule, protocol and internal side is it, whatever
// port the gateway granted (the suggested port first, else the lowest):
// the change acts on that port and the mapping is claimed so that prune
// keeps it. Without one, the mapping is created on the suggested port; a
// foreign mapping there is no conflict, since the gateway grants another
// port. wanted gains the key claimed.
func diffAny(d Mapping, observed []Mapping, seen map[Key]Mapping, wanted map[Key]bool, opts DiffOptions) Change {
	if o, ok := matchAny(d, observed, wanted, opts); ok {
		wanted[o.Key] = true
		d.ExternalPort = o.ExternalPort
		return compare(d, o, true, opts)
	}
	o, present := seen[d.Key]
	if present && opts.Owns(o) && !wanted[d.Key] {
		// One of ours that no rule wants any more: replace it, as for a
		// fixed port, rather than have prune delete what Create just made.
		wanted[d.Key] = true
		return compare(d, o, true, opts)
	}
	c := Change{Action: Create, Key: d.Key, Rule: d.Owner(), After: ptr(d), Reason: "not on the gateway"}
	if present {
		c.Reason = "external port taken by " + holderName(o) + "; the gateway grants another"
	}
	return c
}

// matchAny finds the owned mapping that serves d on whichever port: same
// owner tag, protocol and internal side, on a key no other rule claims.
func matchAny(d Mapping, observed []Mapping, wanted map[Key]bool, opts DiffOptions) (Mapping, bool) {
	var found []Mapping
	for _, o := range observed {
		if !wanted[o.Key] && opts.Owns(o) && Adopts(o, d) && o.Protocol == d.Protocol &&
			o.InternalHost == d.InternalHost && o.InternalPort == d.InternalPort {
			found = append(found, o)
		}
	}
	if i := slices.IndexFunc(found, func(o Mapping) bool { return o.Key == d.Key }); i >= 0 {
		return found[i], true
	}
	if len(found) == 0 {
		return Mapping{}, false
	}
	return found[0], true
}

// compare decides what to do about one desired mapping d, given what the
// gateway holds on its key (o, when present).
func compare(d, o Mapping, present bool, opts DiffOptions) Change {
	c := Change{Key: d.Key, Rule: d.Owner(), After: ptr(d)}
	switch {
	case !present:
		c.Action, c.Reason = Create, "not on the gateway"
	case !opts.Owns(o) && heldInPlace(d, o):
		c.Action, c.Before = Held, ptr(o)
		c.Reason = "in place, held by " + holderName(o)
	case !opts.Owns(o):
		c.Action, c.Before = Conflict, ptr(o)
		c.Reason = "held by " + holderName(o)
	case isLegacy(o) && !isLegacy(d) && d.InternalPort == o.InternalPort && d.InternalHost == o.InternalHost:
		// Re-tag in place: an add over the mapping, no delete, so the port
		// is never free (every backend lets a mapping's own rule rewrite it:
		// Adopts).
		c.Action, c.Before = Renew, ptr(o)
		c.Reason = "re-tagging " + quote(o.Description) + " (made by an older portfwd) as " + quote(d.Description)
	case !same(d, o):
		c.Action, c.Before, c.Reason = Update, ptr(o), updateReason(d, o)
	case needsRenew(d.Lease, o.Lease, permanentCap(d.Key)):
		c.Action, c.Before = Renew, ptr(o)
		c.Reason = "lease has " + LeaseString(o.Lease) + " left"
	default:
		c.Action, c.Before = Noop, ptr(o)
	}
	return c
}

// heldInPlace reports whether someone else's mapping o already does what
// d asks: same internal host and port, switched on.
func heldInPlace(d, o Mapping) bool {
	return o.Enabled && o.InternalHost == d.InternalHost && o.InternalPort == d.InternalPort
}

// isLegacy reports whether o carries an older portfwd's tag.
func isLegacy(o Mapping) bool {
	own, ok := OwnerOf(o.Description)
	return ok && own.Legacy()
}

// same compares everything but the lease: where the traffic goes, who
// owns it (SameTarget), whether it is switched on and whether LAN clients
// may use it through the public address.
func same(d, o Mapping) bool {
	return d.SameTarget(o) && d.Enabled == o.Enabled && d.Hairpin == o.Hairpin
}

// updateReason says how the gateway's mapping o differs from d.
func updateReason(d, o Mapping) string {
	switch {
	case !d.SameTarget(o):
		return "gateway has " + o.String() + " (" + quote(o.Description) + ")"
	case !o.Enabled:
		return "disabled on the gateway"
	case d.Hairpin:
		return "hairpin is off on the gateway"
	}
	return "hairpin is on on the gateway"
}

// PermanentLeaseCap is the longest lease a gateway grants for a
// "permanent" request: UPnP IGD:2 turns a zero lease into 604800 s (one
// week, WANIPConnection:2 §2.3.16), and miniupnpd does so in IGD:1 mode too.
const PermanentLeaseCap = 7 * 24 * time.Hour

// PinholeLeaseCap is the longest lease a UPnP IPv6 pinhole is granted
// (WANIPv6FirewallControl:1: LeaseTime at most 86400 s), so what a
// "permanent" IPv6 rule gets in its place.
const PinholeLeaseCap = 24 * time.Hour

// permanentCap is the lease a permanent request on k is granted at most
// where a gateway caps it.
func permanentCap(k Key) time.Duration {
	if k.Family == IPv6 {
		return PinholeLeaseCap
	}
	return PermanentLeaseCap
}

// needsRenew: a mapping is refreshed once less than half its requested
// lease is left, so a timer running every lease/2 keeps it alive without
// touching the gateway on every run. A permanent mapping satisfies any
// request (gateways that only grant permanent leases would otherwise show a
// renewal forever). A permanent request is satisfied by the lease a
// gateway grants in its place, at most capped (a week; a day for an IPv6
// pinhole: permanentCap), until half of that is gone.
func needsRenew(want, have, capped time.Duration) bool {
	switch {
	case have == 0:
		return false
	case want == 0:
		return have < capped/2
	}
	return have < want/2
}

// normalise makes mappings from different sources comparable: protocol
// case, IPv4-mapped addresses, and lease rounding to whole seconds (UPnP
// and NAT-PMP speak seconds).
func normalise(m Mapping) Mapping {
	if p, err := ParseProtocol(string(m.Protocol)); err == nil {
		m.Protocol = p
	}
	m.InternalHost = m.InternalHost.Unmap()
	m.Lease = m.Lease.Round(time.Second)
	return m
}

func holderName(o Mapping) string {
	if o.Description == "" {
		return o.String()
	}
	return o.String() + " (" + quote(o.Description) + ")"
}

func quote(s string) string { return "\"" + s + "\"" }

func ptr(m Mapping) *Mapping { return &m }
