package probe

import (
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// distinct56 is the i-th IPv6 source of a test, each in a /56 of its own
// (all in one /40, as one provider's customer could have them).
func distinct56(i int) string {
	return fmt.Sprintf("[2001:db8:%02x:%02x00::1]:4711", i>>8, i&0xff)
}

// TestServerWrongTokensDoNotLockOutTheRightOne: a table's worth of sources
// sending a wrong token must not leave a client with the right token
// refused (it used to get 429 for as long as the flood went on).
func TestServerWrongTokensDoNotLockOutTheRightOne(t *testing.T) {
	clock := newFakeClock()
	s := &Server{Token: "s3cret", Now: clock.Now, Probe: (&probeLog{}).probe}
	wrong := map[string]string{"Authorization": "Bearer guess"}
	for i := range maxSources + 10 {
		if code, _ := serveFrom(t, s, distinct56(i), twoProbes, wrong); code != http.StatusUnauthorized && code != http.StatusTooManyRequests {
			t.Fatalf("wrong token from %s: HTTP %d", distinct56(i), code)
		}
	}
	right := map[string]string{"Authorization": "Bearer s3cret"}
	for _, src := range []string{"203.0.113.7:4711", "[2001:db8:ffff::1]:4711"} {
		if code, answer := serveFrom(t, s, src, twoProbes, right); code != http.StatusOK {
			t.Errorf("right token from %s during the flood: HTTP %d (%s), want 200", src, code, answer.Error)
		}
	}
}

// TestServerIPv6SourceIsA56: the addresses of one /56 (a home's usual
// delegation) are one source, however many /64s they span.
func TestServerIPv6SourceIsA56(t *testing.T) {
	s := &Server{Rate: 1.0 / 60, Burst: 1, Now: newFakeClock().Now, Probe: (&probeLog{}).probe}
	if code, _ := serveFrom(t, s, "[2001:db8:1:200::1]:4711", twoProbes, nil); code != http.StatusOK {
		t.Fatalf("first request: HTTP %d", code)
	}
	for _, other := range []string{"[2001:db8:1:201::1]:4711", "[2001:db8:1:2ff:ffff::9]:1"} {
		if code, _ := serveFrom(t, s, other, twoProbes, nil); code != http.StatusTooManyRequests {
			t.Errorf("from %s, in the same /56: HTTP %d, want 429", other, code)
		}
	}
	if code, _ := serveFrom(t, s, "[2001:db8:1:300::1]:4711", twoProbes, nil); code != http.StatusOK {
		t.Errorf("from the next /56: HTTP %d, want 200", code)
	}
}

// TestServerWrongTokenSpendsNoProbeSlot: the token is checked before the
// rate limit of probes is spent; wrong tokens have a budget of their own.
func TestServerWrongTokenSpendsNoProbeSlot(t *testing.T) {
	clock := newFakeClock()
	s := &Server{Token: "s3cret", Rate: 1.0 / 60, Burst: 2, Now: clock.Now, Probe: (&probeLog{}).probe}
	const src = "203.0.113.7:4711"
	if code, _ := serveFrom(t, s, src, twoProbes, map[string]string{"Authorization": "Bearer typo"}); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: HTTP %d, want 401", code)
	}
	right := map[string]string{"Authorization": "Bearer s3cret"}
	for i := range 2 {
		if code, answer := serveFrom(t, s, src, twoProbes, right); code != http.StatusOK {
			t.Errorf("right token, request %d of the burst, after a typo: HTTP %d (%s)", i+1, code, answer.Error)
		}
	}
}

// TestServerTokenGuessesAreRateLimited: a source out of failed attempts is
// refused before its token is looked at, so the right guess answers 429
// like the wrong ones and the token cannot be guessed faster than the rate.
func TestServerTokenGuessesAreRateLimited(t *testing.T) {
	clock := newFakeClock()
	s := &Server{Token: "s3cret", Rate: 1.0 / 60, Burst: 3, Now: clock.Now, Probe: (&probeLog{}).probe}
	const src = "203.0.113.7:4711"
	for i := range 3 {
		if code, _ := serveFrom(t, s, src, twoProbes, map[string]string{"Authorization": fmt.Sprint("Bearer guess", i)}); code != http.StatusUnauthorized {
			t.Fatalf("guess %d: HTTP %d, want 401", i+1, code)
		}
	}
	for _, auth := range []string{"Bearer guess4", "Bearer s3cret"} {
		if code, _ := serveFrom(t, s, src, twoProbes, map[string]string{"Authorization": auth}); code != http.StatusTooManyRequests {
			t.Errorf("%q after the guesses ran out: HTTP %d, want 429", auth, code)
		}
	}
	clock.Advance(time.Minute)
	if code, _ := serveFrom(t, s, src, twoProbes, map[string]string{"Authorization": "Bearer s3cret"}); code != http.StatusOK {
		t.Errorf("right token a minute later: HTTP %d, want 200", code)
	}
}

func TestSourceLimiterPeek(t *testing.T) {
	l := newSourceLimiter(1.0/10, 1)
	src := netip.MustParseAddr("198.51.100.7")
	now := time.Unix(1_000_000, 0)
	if ok, _ := l.peek(src, now); !ok || len(l.buckets) != 0 {
		t.Fatalf("peek at a new source: ok=%v, %d buckets; want ok and none made", ok, len(l.buckets))
	}
	l.allow(src, now)
	if ok, wait := l.peek(src, now.Add(4*time.Second)); ok || wait != 6*time.Second {
		t.Fatalf("peek at an empty bucket: ok=%v wait=%v, want refused for 6s", ok, wait)
	}
	if ok, _ := l.peek(src, now.Add(10*time.Second)); !ok {
		t.Fatal("peek after a refill: refused")
	}
	if ok, _ := l.allow(src, now.Add(10*time.Second)); !ok {
		t.Fatal("peek took the token it looked at")
	}
}
