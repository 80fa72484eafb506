package probe

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// maxSources caps the rate limiter's table. Each entry is a few dozen
// bytes, so the cap bounds memory however many addresses a client owns.
const maxSources = 4096

// ipv6SourceBits is the prefix length of an IPv6 source (see sourceKey).
const ipv6SourceBits = 56

// sourceLimiter is a token bucket per source network. It is what keeps the probe
// server from being a cheap way to hammer someone's home: each source gets
// burst requests at once and rate requests per second after that.
//
// Memory stays bounded: a bucket that has refilled to burst carries no
// state a fresh bucket would not, so it is dropped; and when the table is
// full of sources that are all still active, new sources are refused
// rather than letting one client evict another's bucket and reset it.
type sourceLimiter struct {
	rate  float64 // tokens per second
	burst float64

	mu        sync.Mutex
	buckets   map[netip.Prefix]*sourceBucket
	lastSweep time.Time
}

// sourceBucket is one source's tokens as of last.
type sourceBucket struct {
	tokens float64
	last   time.Time
}

// newSourceLimiter returns a limiter granting burst requests at once and rate
// requests per second after that.
func newSourceLimiter(rate float64, burst int) *sourceLimiter {
	return &sourceLimiter{rate: rate, burst: float64(burst), buckets: map[netip.Prefix]*sourceBucket{}}
}

// allow takes a token for src at now. When there is none it reports how
// long until there is one.
func (l *sourceLimiter) allow(src netip.Addr, now time.Time) (ok bool, wait time.Duration) {
	key := sourceKey(src)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maybeSweep(now)
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxSources {
			return false, l.refillTime(1)
		}
		b = &sourceBucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if ok, wait := l.available(b, now); !ok {
		return false, wait
	}
	b.tokens--
	return true, 0
}

// peek reports whether src has a token left at now, without taking it. A
// source without a bucket has a full one; peek makes none for it, so
// looking costs no room in the table.
func (l *sourceLimiter) peek(src netip.Addr, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[sourceKey(src)]
	if b == nil {
		return true, 0
	}
	return l.available(b, now)
}

// available refills b to now and reports whether it holds a token, or
// how long until it does.
func (l *sourceLimiter) available(b *sourceBucket, now time.Time) (ok bool, wait time.Duration) {
	l.refill(b, now)
	if b.tokens < 1 {
		return false, l.refillTime(1 - b.tokens)
	}
	return true, 0
}

// refill adds the tokens earned since b.last, up to burst.
func (l *sourceLimiter) refill(b *sourceBucket, now time.Time) {
	// A clock that steps back earns nothing rather than a negative amount.
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
	}
	b.last = now
}

// refillTime is how long the bucket takes to earn tokens, to the
// millisecond: float error must not turn a 60 s wait into "61 s".
func (l *sourceLimiter) refillTime(tokens float64) time.Duration {
	d := time.Duration(tokens / l.rate * float64(time.Second))
	return max(d.Round(time.Millisecond), time.Millisecond)
}

// maybeSweep drops idle buckets when the table is full or a full refill
// period has passed since the last sweep, so the cost is paid rarely.
func (l *sourceLimiter) maybeSweep(now time.Time) {
	if len(l.buckets) < maxSources && now.Sub(l.lastSweep) < l.refillTime(l.burst) {
		return
	}
	l.lastSweep = now
	for key, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, key)
		}
	}
}

// sourceKey is the network a source is limited as. IPv4 sources get one
// bucket each. An IPv6 home is delegated a whole prefix, and can pick a new
// address, or a new /64, for every request: IPv6 sources share one bucket
// per /56, the prefix most ISPs delegate to a home (RIPE-690 §4.2), so a
// home is one source. A /48 would take more address space from someone
// filling the table, but would put up to 256 homes of the same ISP in one
// bucket; the table's room for clients with the token (Server.admit) is what
// keeps them from being locked out.
func sourceKey(src netip.Addr) netip.Prefix {
	src = src.Unmap().WithZone("")
	bits := 32
	if src.Is6() {
		bits = ipv6SourceBits
	}
	p, _ := src.Prefix(bits)
	return p
}
