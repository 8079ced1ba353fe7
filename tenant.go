package mongotenant

import (
	"sync"
	"sync/atomic"
	"unique"
)

// tenant is everything that belongs to one tenant ID: its route, its
// bulkhead and lease count, its init state and last use. There is one per
// ID, in the tenant map, for as long as anything refers to it: a binding to
// a client, a live lease, or a caller working on it or waiting for it.
// When nothing does, it is dropped, and the ID's next Acquire starts afresh.
//
// What belongs to the tenant's current client (the client and the database
// handle) is in its [binding], which the tenant replaces when it moves to
// another client; its bulkhead, lease count and init state stay here.
type tenant struct {
	// The first cache line is all the hot path reads or writes.

	// word is the hot path's gate and the bulkhead's count, in one atomic
	// so that a lease is granted with one compare-and-swap:
	//
	//	bits 0-29   leases on the current binding
	//	bit 30      readyBit: bound, initialized and open; the hot path may grant
	//	bit 31      waitersBit: callers wait in the bulkhead queue; the hot path may not grant
	//	bits 32-63  generation: bumped each time the tenant leaves a binding
	//
	// The generation lets Release tell a lease on the current binding from
	// one on a binding the tenant has left, and keeps a hot path that read
	// cur from granting after the binding changed under it.
	word      atomic.Uint64
	lastUsed  atomic.Int64            // coarse clock at the last Release, or when created
	cur       atomic.Pointer[binding] // current binding, nil while unbound; written under mu while readyBit is clear
	maxLeases atomic.Int32            // the bulkhead, 0 for none: the route's, or the adaptive limit's; written under mu
	carried   atomic.Int32            // leases on bindings the tenant has left, counted by the bulkhead; written under mu
	routedAt  atomic.Int64            // clock when the route was resolved or last confirmed
	hash      uint64                  // the tenant map's hash of id
	id        string

	refreshing atomic.Bool    // a background route refresh is under way
	weight     atomic.Int32   // the route's Weight, for fair gates; written under mu
	adapt      *adaptiveLimit // with WithAdaptiveLimit, else nil; set when the tenant is made

	// mu guards phase, work, initDone, refs, routeVer, route, flight and
	// queue; the draining count of the tenant's bindings; and every change
	// to cur, maxLeases, carried, adapt's ceiling, and the word's ready
	// bit, waiters bit and generation. Leases are added and taken from the
	// word without it.
	mu       sync.Mutex
	phase    phase
	work     work   // what the caller leading work on the tenant is doing
	initDone bool   // the init hook has succeeded for this tenant
	refs     int32  // callers in the slow path holding the tenant
	routeVer uint32 // bumped when the route changes or is forgotten
	expI     int32  // position in expB; guarded by expiry.mu
	route    unique.Handle[routeShape]
	flight   *flight        // waiters for the leader's work; nil until one arrives
	queue    *bulkheadQueue // callers waiting for a lease; nil until one does

	expB *bucket // the idle reaper's bucket holding the tenant; guarded by expiry.mu

	in *client // the client whose member list holds the tenant; guarded by Manager.mu

	listLinks[tenant] // in in's member list; guarded by Manager.mu
}

// The tenant's word.
const (
	leaseMask  = 1<<30 - 1
	readyBit   = 1 << 30
	waitersBit = 1 << 31
	genShift   = 32
)

func leasesOf(w uint64) int32 { return int32(w & leaseMask) }
func genOf(w uint64) uint32   { return uint32(w >> genShift) }

// phase is where a tenant is in its life. A tenant moves forward from
// unrouted to bound, back to routed when it leaves a client, back to
// unrouted when its route is forgotten, and ends dropped.
type phase uint8

const (
	phaseUnrouted phase = iota // no route: new, or forgotten by Evict or Forget
	phaseRouted                // a route, no client
	phaseBound                 // a client: cur is set
	phaseDropped               // out of the tenant map; callers holding it look again
)

// work is what a tenant's leader is doing while others wait on its flight.
type work uint8

const (
	workNone work = iota
	workResolving
	workBinding
	workInit
)

func (w work) String() string {
	switch w {
	case workResolving:
		return "the tenant's route"
	case workBinding:
		return "the tenant's client"
	default:
		return "the tenant's init hook"
	}
}

// endWorkLocked ends the work t's leader was doing and hands err to its
// waiters: errRetry, errRouteChanged or a timeout sends them to look again.
// The caller holds t.mu.
func (t *tenant) endWorkLocked(err error) {
	t.work = workNone
	t.flight.finish(err)
	t.flight = nil
}

// admits reports whether the hot path may grant a lease at word w.
func (t *tenant) admits(w uint64) bool {
	if w&(readyBit|waitersBit) != readyBit {
		return false
	}
	limit := t.maxLeases.Load()
	return limit == 0 || leasesOf(w)+t.carried.Load() < limit
}

// tryGrantLocked takes a lease on the current binding if the bulkhead
// allows, whatever the ready bit says, and returns nil if it does not. It
// checks the limit in the compare-and-swap that takes the lease: holding
// t.mu keeps the binding from changing, not the hot path from granting.
// The caller holds t.mu.
func (t *tenant) tryGrantLocked() *binding {
	limit := t.maxLeases.Load()
	for {
		w := t.word.Load()
		if limit > 0 && leasesOf(w)+t.carried.Load() >= limit {
			return nil
		}
		if t.word.CompareAndSwap(w, w+1) {
			return t.cur.Load()
		}
	}
}

// setReadyLocked opens the hot path once the tenant is bound and
// initialized. The caller holds t.mu.
func (t *tenant) setReadyLocked() {
	for {
		w := t.word.Load()
		if w&readyBit != 0 || t.word.CompareAndSwap(w, w|readyBit) {
			return
		}
	}
}

// setWaitersLocked sets or clears waitersBit. The caller holds t.mu.
func (t *tenant) setWaitersLocked(on bool) {
	for {
		w := t.word.Load()
		nw := w &^ waitersBit
		if on {
			nw |= waitersBit
		}
		if w == nw || t.word.CompareAndSwap(w, nw) {
			return
		}
	}
}

// detachLocked ends the tenant's current binding: the hot path can no
// longer grant on it, its live leases move to carried, and it keeps count
// of them until they drain. It returns the binding and its live leases.
// The caller holds t.mu; the tenant is bound.
func (t *tenant) detachLocked() (b *binding, live int32) {
	b = t.cur.Load()
	for {
		w := t.word.Load()
		nw := uint64(genOf(w)+1)<<genShift | w&waitersBit
		if t.word.CompareAndSwap(w, nw) {
			live = leasesOf(w)
			break
		}
	}
	t.cur.Store(nil)
	if b.left != nil {
		close(b.left) // callers waiting for a turn on it go round again
	}
	if b.gate != nil {
		b.gate.forget(t) // a slot kept there for it would wait for a tenant that went
	}
	b.draining = live
	t.carried.Add(live)
	t.phase = phaseRouted
	return b, live
}

// detachIfIdleLocked detaches the tenant if it holds no lease and its last
// Release is still lastUsed, the one the caller judged idle. It first
// closes the hot path with the lease count checked in the same
// compare-and-swap; then an Acquire and Release that slipped in since the
// caller looked shows in lastUsed (Release stamps it before the count
// drops), and the hot path is opened again. The caller holds t.mu; the
// tenant is bound.
func (t *tenant) detachIfIdleLocked(lastUsed int64) (b *binding, ok bool) {
	var w uint64
	for {
		w = t.word.Load()
		if leasesOf(w) != 0 {
			return nil, false
		}
		if t.word.CompareAndSwap(w, w&^readyBit) {
			break
		}
	}
	if t.lastUsed.Load() != lastUsed {
		if w&readyBit != 0 {
			t.setReadyLocked()
		}
		return nil, false
	}
	b, _ = t.detachLocked() // no lease: the hot path was closed, and t.mu is held
	return b, true
}

// unusedLocked reports whether nothing refers to the tenant any more: no
// binding, no lease, no caller. The caller holds t.mu.
func (t *tenant) unusedLocked() bool {
	return (t.phase == phaseRouted || t.phase == phaseUnrouted) &&
		t.refs == 0 && leasesOf(t.word.Load()) == 0 && t.carried.Load() == 0 && t.queue == nil
}

// A bulkheadQueue holds the callers waiting for a lease of a tenant at its
// limit, first come first served.
type bulkheadQueue struct{ waiters []*bulkheadWaiter }

// A bulkheadWaiter is a caller in a bulkheadQueue. wake has room for one
// signal, so waking never blocks.
type bulkheadWaiter struct{ wake chan struct{} }

// enqueueLocked adds a waiter at the end of t's queue. The caller holds
// t.mu.
func (t *tenant) enqueueLocked() *bulkheadWaiter {
	w := &bulkheadWaiter{wake: make(chan struct{}, 1)}
	if t.queue == nil {
		t.queue = new(bulkheadQueue)
		t.setWaitersLocked(true)
	}
	t.queue.waiters = append(t.queue.waiters, w)
	return w
}

// firstInLineLocked reports whether w may take the next lease: it is first
// in t's queue, or the queue is empty and w is nil. The caller holds t.mu.
func (t *tenant) firstInLineLocked(w *bulkheadWaiter) bool {
	if t.queue == nil {
		return true
	}
	return t.queue.waiters[0] == w
}

// wakeLocked tells the first waiter to look again: a lease was released,
// the limit changed, or the tenant left its client. The caller holds t.mu.
func (t *tenant) wakeLocked() {
	if t.queue == nil {
		return
	}
	select {
	case t.queue.waiters[0].wake <- struct{}{}:
	default:
	}
}

// leaveQueueLocked removes w from the queue, passing its turn on if it was
// first. The caller holds t.mu.
func (t *tenant) leaveQueueLocked(w *bulkheadWaiter) {
	q := t.queue
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			if i == 0 && len(q.waiters) > 0 {
				t.wakeLocked()
			}
			break
		}
	}
	if len(q.waiters) == 0 {
		t.queue = nil
		t.setWaitersLocked(false)
	}
}
