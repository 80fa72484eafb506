package probe

import (
	"net/netip"
	"testing"
	"time"
)

func TestSourceLimiterBurstThenRefill(t *testing.T) {
	l := newSourceLimiter(1.0/10, 2) // one request per 10 s, two at once
	src := netip.MustParseAddr("198.51.100.7")
	now := time.Unix(1_000_000, 0)
	for i := range 2 {
		if ok, _ := l.allow(src, now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.allow(src, now)
	if ok || wait != 10*time.Second {
		t.Fatalf("over the burst: ok=%v wait=%v, want refused for 10s", ok, wait)
	}
	if ok, wait := l.allow(src, now.Add(4*time.Second)); ok || wait != 6*time.Second {
		t.Fatalf("after 4s: ok=%v wait=%v, want refused for 6s", ok, wait)
	}
	if ok, _ := l.allow(src, now.Add(10*time.Second)); !ok {
		t.Fatal("after a full refill period the request is still refused")
	}
}

func TestSourceLimiterClockStepsBack(t *testing.T) {
	l := newSourceLimiter(1, 1)
	src := netip.MustParseAddr("198.51.100.7")
	now := time.Unix(1_000_000, 0)
	l.allow(src, now)
	if ok, _ := l.allow(src, now.Add(-time.Hour)); ok {
		t.Fatal("a clock stepping back earned a token")
	}
	if ok, _ := l.allow(src, now.Add(time.Second)); !ok {
		t.Fatal("a clock that stepped back left the bucket empty for good")
	}
}

func TestSourceKey(t *testing.T) {
	tests := []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"}, // one /64: one host
		{"2001:db8:1:200::1", "2001:db8:1:2ff::9"},  // one /56: one home
		{"::ffff:198.51.100.7", "198.51.100.7"},     // mapped IPv4 is IPv4
		{"fe80::1%eth0", "fe80::2%eth1"},            // zones do not split a source
	}
	for _, tt := range tests {
		if ka, kb := sourceKey(netip.MustParseAddr(tt.a)), sourceKey(netip.MustParseAddr(tt.b)); ka != kb {
			t.Errorf("sourceKey(%s) = %s, sourceKey(%s) = %s; want one bucket", tt.a, ka, tt.b, kb)
		}
	}
	if sourceKey(netip.MustParseAddr("198.51.100.7")) == sourceKey(netip.MustParseAddr("198.51.100.8")) {
		t.Error("two IPv4 hosts share a bucket")
	}
	if sourceKey(netip.MustParseAddr("2001:db8:1:100::1")) == sourceKey(netip.MustParseAddr("2001:db8:1:200::1")) {
		t.Error("two IPv6 /56s share a bucket")
	}
}

func TestSourceLimiterTableIsBounded(t *testing.T) {
	l := newSourceLimiter(1.0/60, 1)
	now := time.Unix(1_000_000, 0)
	base := netip.MustParseAddr("10.0.0.0")
	addr := base
	for range maxSources {
		addr = addr.Next()
		if ok, _ := l.allow(addr, now); !ok {
			t.Fatalf("source %s refused before the table was full", addr)
		}
	}
	newcomer := netip.MustParseAddr("192.0.2.1")
	if ok, _ := l.allow(newcomer, now.Add(time.Second)); ok {
		t.Fatal("a new source was let in while the table was full of active sources")
	}
	if len(l.buckets) > maxSources {
		t.Fatalf("table grew to %d entries, cap is %d", len(l.buckets), maxSources)
	}
	// Once the others have refilled they are idle, and are dropped.
	if ok, _ := l.allow(newcomer, now.Add(time.Minute)); !ok {
		t.Fatal("a new source is still refused after every bucket refilled")
	}
	if len(l.buckets) != 1 {
		t.Fatalf("idle sources not evicted: %d entries left", len(l.buckets))
	}
}
