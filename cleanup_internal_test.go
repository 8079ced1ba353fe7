package mongotenant

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestIdleDecision table-tests the reaper's decision.
func TestIdleDecision(t *testing.T) {
	const timeout = int64(10 * time.Second)
	sec := int64(time.Second)
	res := int64(clockResolution)
	for _, tc := range []struct {
		name     string
		busy     bool
		lastUsed int64
		now      int64
		expire   bool
		next     int64
	}{
		{"fresh", false, 99 * sec, 100 * sec, false, 109*sec + res},
		{"at the timeout, within the clock's resolution", false, 90 * sec, 100 * sec, false, 100*sec + res},
		{"past the timeout and the resolution", false, 90 * sec, 100*sec + res, true, 0},
		{"long idle", false, 0, 1000 * sec, true, 0},
		{"busy is never idle", true, 0, 1000 * sec, false, 1010 * sec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expire, next := idleDecision(tc.busy, tc.lastUsed, tc.now, timeout)
			if expire != tc.expire || next != tc.next {
				t.Fatalf("idleDecision = %t, %d; want %t, %d", expire, next, tc.expire, tc.next)
			}
		})
	}
}

// TestExpiryIndex: tenants come out in time order, never early, at most
// one slot late, and removed ones never.
func TestExpiryIndex(t *testing.T) {
	e := newExpiry(10 * time.Second) // slot: 1 s
	sec := int64(time.Second)
	ts := make([]*tenant, 6)
	for i := range ts {
		ts[i] = &tenant{id: string(rune('a' + i))}
	}
	e.add(ts[0], 5*sec)
	e.add(ts[1], 5*sec+1) // rounds up to 6 s
	e.add(ts[2], 3*sec)
	e.add(ts[3], 3*sec)
	e.add(ts[4], 9*sec)
	e.add(ts[4], 1*sec) // filed already: ignored
	e.add(ts[5], 4*sec)
	e.remove(ts[5])
	e.remove(ts[5])
	ids := func(b []*tenant) string {
		s := make([]string, len(b))
		for i, t := range b {
			s[i] = t.id
		}
		slices.Sort(s)
		return fmt.Sprint(s)
	}
	if got := e.due(3*sec-1, 10, nil); len(got) != 0 {
		t.Fatalf("early: %s", ids(got))
	}
	if got := ids(e.due(5*sec, 10, nil)); got != "[a c d]" {
		t.Fatalf("due at 5 s: %s", got)
	}
	if got := ids(e.due(6*sec, 1, nil)); got != "[b]" {
		t.Fatalf("due at 6 s: %s", got)
	}
	if got := ids(e.due(100*sec, 10, nil)); got != "[e]" {
		t.Fatalf("due at 100 s: %s", got)
	}
	if e.len() != 0 {
		t.Fatalf("%d left", e.len())
	}
}

// TestVictimSamplingQuality: at 4,000 clients, the sampled LRU victim is
// on average among the oldest 1/(victimSamples+1) of clients, and almost
// never among the newer three quarters; with few clients it is exact.
func TestVictimSamplingQuality(t *testing.T) {
	m := &Manager{rng: rand.New(rand.NewPCG(1, 2))}
	uses := rand.New(rand.NewPCG(3, 4))
	const n = 4000
	for i := range n {
		c := &client{created: int64(i)}
		c.lastUsed.Store(uses.Int64N(1 << 40))
		m.cacheLocked(c)
	}
	rank := func(v *client) int { // how many clients were used before v
		r := 0
		for _, c := range m.cached {
			if c.recentUseLocked() < v.recentUseLocked() {
				r++
			}
		}
		return r
	}
	const draws = 2000
	total, late := 0, 0
	for range draws {
		r := rank(m.victimLocked(false, nil))
		total += r
		if r > n/4 {
			late++
		}
	}
	mean := float64(total) / draws / n
	t.Logf("mean rank %.3f of clients, %d of %d draws beyond the oldest quarter", mean, late, draws)
	if mean > 1.5/float64(victimSamples+1) {
		t.Errorf("mean rank %.3f, want about %.3f", mean, 1/float64(victimSamples+1))
	}
	if late > draws/50 {
		t.Errorf("%d draws beyond the oldest quarter", late)
	}

	// Leased clients are passed over while an unleased one exists.
	for _, c := range m.cached[1:] {
		c.pins = 2 // cached, and a binding with leases
	}
	if v := m.victimLocked(false, nil); v != m.cached[0] {
		t.Error("the only unleased client must be the victim")
	}
	if v := m.victimLocked(true, m.cached[0]); v != nil {
		t.Error("unleased only, and the unleased one excepted: no victim")
	}

	// Up to victimSamples clients, the choice is exact.
	small := &Manager{rng: rand.New(rand.NewPCG(1, 2))}
	for i := range victimSamples {
		c := &client{}
		c.lastUsed.Store(int64(100 - i))
		small.cacheLocked(c)
	}
	if v := small.victimLocked(false, nil); v != small.cached[victimSamples-1] {
		t.Error("with few clients, the least recently used is the victim")
	}
}

// len is how many tenants are filed.
func (e *expiry) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, b := range e.buckets {
		n += len(b.tenants)
	}
	return n
}
