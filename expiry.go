package mongotenant

import (
	"container/heap"
	"sync"
	"time"
)

// expiry is the idle reaper's index: every tenant, filed under the time at
// which it may first have been idle for the idle timeout. The reaper looks
// only at tenants whose time has come, so its work follows expirations, not
// the number of tenants. A tenant used since it was filed is filed again
// under its new time; each tenant is looked at about once per idle timeout.
//
// Times are grouped in buckets of width slot, so a tenant is reaped at most
// one slot late.
type expiry struct {
	mu      sync.Mutex // guards the fields below and every tenant's expB and expI
	slot    int64      // bucket width, ns
	buckets map[int64]*bucket
	keys    bucketKeys // keys of buckets, a min-heap
}

type bucket struct {
	key     int64
	tenants []*tenant
}

// expirySlot is the width of the index's buckets: reaping is at most this
// late, or a tenth of the idle timeout if that is shorter.
const expirySlot = time.Second

func newExpiry(timeout time.Duration) *expiry {
	return &expiry{slot: int64(min(expirySlot, max(timeout/10, time.Millisecond))), buckets: make(map[int64]*bucket)}
}

// add files t under time at, unless it is filed already.
func (e *expiry) add(t *tenant, at int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t.expB != nil {
		return
	}
	key := (at + e.slot - 1) / e.slot // rounded up: never early
	b := e.buckets[key]
	if b == nil {
		b = &bucket{key: key}
		e.buckets[key] = b
		heap.Push(&e.keys, key)
	}
	t.expB, t.expI = b, int32(len(b.tenants))
	b.tenants = append(b.tenants, t)
}

// remove takes t out of the index.
func (e *expiry) remove(t *tenant) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b := t.expB
	if b == nil {
		return
	}
	last := b.tenants[len(b.tenants)-1]
	b.tenants[t.expI], last.expI = last, t.expI
	b.tenants[len(b.tenants)-1] = nil
	b.tenants = b.tenants[:len(b.tenants)-1]
	t.expB, t.expI = nil, 0
	// An empty bucket stays until its time comes: the heap cannot drop it.
}

// due takes up to limit tenants whose time has come by now out of the
// index, into buf.
func (e *expiry) due(now int64, limit int, buf []*tenant) []*tenant {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(buf) < limit && len(e.keys) > 0 && e.keys[0]*e.slot <= now {
		b := e.buckets[e.keys[0]]
		for len(buf) < limit && len(b.tenants) > 0 {
			t := b.tenants[len(b.tenants)-1]
			b.tenants[len(b.tenants)-1] = nil
			b.tenants = b.tenants[:len(b.tenants)-1]
			t.expB, t.expI = nil, 0
			buf = append(buf, t)
		}
		if len(b.tenants) == 0 {
			delete(e.buckets, b.key)
			heap.Pop(&e.keys)
		}
	}
	return buf
}

// bucketKeys is a min-heap of bucket keys.
type bucketKeys []int64

func (h bucketKeys) Len() int           { return len(h) }
func (h bucketKeys) Less(i, j int) bool { return h[i] < h[j] }
func (h bucketKeys) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *bucketKeys) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *bucketKeys) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
