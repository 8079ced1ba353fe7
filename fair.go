package mongotenant

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// WithFairSharing shares each client that several tenants use (the
// [Shared] and [Grouped] strategies) fairly between them: at most capacity
// leases on the client at once (0 means the client's pool size), and when
// more are wanted, each freed slot goes to the tenant whose turn it is, not
// to whoever asked first. Waiting tenants take turns round robin, so a
// tenant with one waiting Acquire waits behind at most one turn of each
// other tenant (one lease at weight 1), not behind another tenant's
// hundred; a tenant alone may use the whole capacity. Tenants are weighted
// by [Route.Weight] ([Tier.Weight]): a turn is as many leases in a row as
// the tenant's weight, so while both wait a tenant of weight 2 gets two
// leases for each one a tenant of weight 1 gets. A new weight applies from
// the tenant's next turn.
//
// The unit of admission is the lease: hold one only while talking to the
// database, and in a long handler call [Manager.Do] around each database
// step, so that slow work between steps does not hold a share. An Acquire
// waits for its turn until ctx ends, then fails with an error wrapping
// [ErrTenantBusy]. A tenant's bulkhead ([WithMaxLeases]) still applies, and
// counts its leases waiting for a turn. The init hook ([WithInit]) may run
// before its caller has a turn. A caller waiting for a turn on a client
// its tenant leaves (Evict, Forget, a new route, a suspension) stops
// waiting there and goes round again, to the tenant's next client. Clients
// made for one tenant ([Dedicated], or per-tenant credentials) have no fair
// queue: their pool is the tenant's.
//
// Default off: leases on a shared client are unlimited, and the driver's
// pool queues operations first come, first served.
func WithFairSharing(capacity int) Option {
	return func(c *config) { c.fair, c.fairCapacity = true, capacity }
}

// A fairGate admits leases on a client several tenants share: at most
// capacity at once, and while more are wanted, each slot freed goes to the
// tenant whose turn it is (see fairQueue). A lease is granted without the
// lock while no one waits; once someone does, releases hand their slots
// over under it, so that no newcomer takes a slot ahead of the queue.
type fairGate struct {
	// state is the hot path's word: bits 0-31 count the slots in use (never
	// more than capacity), and gateQueued is set while the queue holds a
	// flow: callers wait, or tenants keep their place in the round.
	state    atomic.Uint64
	capacity uint32

	// mu guards q, and every change to gateQueued. A slot handed to a
	// waiter stays counted in state: it passes from one lease to the next.
	mu sync.Mutex
	q  fairQueue
}

const gateQueued = 1 << 32

func newFairGate(capacity int) *fairGate {
	return &fairGate{capacity: uint32(capacity)}
}

// fairGateFor returns the fair gate for a new client with key, or nil if
// it needs none.
func (c *config) fairGateFor(key clientKey) *fairGate {
	if !c.fair || key.dedicated {
		return nil
	}
	n := c.fairCapacity
	if n == 0 {
		n = int(min(key.poolSize, maxFairCapacity))
	}
	return newFairGate(n)
}

// maxFairCapacity bounds the capacity, so that it fits the gate's count.
const maxFairCapacity = 1 << 30

// tryTake takes a slot if one is free and no one waits.
func (g *fairGate) tryTake() bool {
	for {
		s := g.state.Load()
		if s&gateQueued != 0 || uint32(s) >= g.capacity {
			return false
		}
		if g.state.CompareAndSwap(s, s+1) {
			return true
		}
	}
}

// release gives a slot back: to the waiter whose turn it is, if any.
func (g *fairGate) release() {
	for {
		s := g.state.Load()
		if s&gateQueued != 0 {
			break
		}
		if g.state.CompareAndSwap(s, s-1) {
			return
		}
	}
	g.mu.Lock()
	w := g.q.pop()
	if w == nil { // only placeholders: a slot goes free, their round ends
		g.q.reset()
		g.state.Add(^uint64(gateQueued)) // clear gateQueued and free the slot
		g.mu.Unlock()
		return
	}
	w.granted = true
	g.mu.Unlock()
	w.ready <- struct{}{}
}

// enter takes a slot for t if one is free and no one waits, and otherwise
// queues t's caller with t's weight. It returns nil if it took a slot.
func (g *fairGate) enter(t *tenant, weight int32) *fairWaiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.q.flows) == 0 { // gateQueued is clear, and only this lock sets it
		for {
			s := g.state.Load()
			if uint32(s) < g.capacity {
				if g.state.CompareAndSwap(s, s+1) {
					return nil
				}
				continue
			}
			if g.state.CompareAndSwap(s, s|gateQueued) {
				break
			}
		}
	}
	return g.q.push(t, weight)
}

// leave takes w out of the queue after its wait ended without a turn. It
// reports false if w got its turn meanwhile: the caller holds the slot.
func (g *fairGate) leave(w *fairWaiter) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.granted {
		return false
	}
	g.q.remove(w)
	if len(g.q.flows) == 0 { // it was alone, in a flow never served
		g.state.Add(^uint64(gateQueued - 1))
	}
	return true
}

// snapshot returns the slots in use and the callers waiting.
func (g *fairGate) snapshot() (inUse, waiting int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return int(uint32(g.state.Load())), g.q.n
}

// admit waits for a's turn at gate g, with a's lease held. On
// failure it returns the error the acquisition ends with; the caller gives
// the lease back.
func (a *acquisition) admit(g *fairGate) error {
	w := g.enter(a.t, a.t.weight.Load())
	if w == nil {
		return nil
	}
	a.startWait()
	defer a.endWait()
	var err error
	select {
	case <-w.ready:
		if !a.m.closed.Load() {
			return nil
		}
		g.release()
		return ErrClosed
	case <-a.b.left:
		err = errMoved
	case <-a.m.done:
		err = ErrClosed
	case <-a.ctx.Done():
		err = fmt.Errorf("%w (its client's fair share, capacity %d): %w", ErrTenantBusy, g.capacity, ctxError(a.ctx))
	}
	if !g.leave(w) {
		if err == errMoved {
			return nil // the turn came as the tenant left: run sees the generation
		}
		g.release() // the turn came as the wait ended: pass it on
	}
	return err
}

// errMoved ends a wait for a turn at a client the tenant left.
var errMoved = errors.New("mongotenant: tenant left the client")

// maxWeight bounds Route.Weight: the grants a tenant may get in a row.
const maxWeight = 1 << 16

// A fairQueue orders the callers waiting at a fairGate by deficit round
// robin over tenants: each tenant's callers form a first-come,
// first-served flow; flows take turns in the order they became active,
// and a flow whose turn it is gets as many grants in a row as its weight
// (fewer if it runs out of callers), then goes to the back. So a tenant
// with one caller waits behind at most one turn of each other tenant (as
// many grants as that tenant's weight: one at weight 1), backlogged
// tenants share the grants in proportion to their weights, and no tenant
// starves. A turn takes the weight of the flow's newest caller, so that a
// tenant's new weight applies from its next turn.
//
// A flow that runs out of callers after it was served keeps its place
// until its place comes round, empty, so that a tenant with one caller,
// asking again as soon as it is served, is not sent to the back each
// time while a crowd keeps its place. Empty flows are dropped when their
// place comes round, and all at once when a slot goes free with no caller
// waiting (fairGate.release): the queue holds nothing for tenants that
// stopped waiting, and gateQueued stays set while it holds anything.
//
// Positions are derived where they can be: a flow not yet served since it
// became active stands where its first caller arrived, so a caller that
// gives up leaves no trace: the queue is as if it had never come.
//
// A fairQueue is not safe for concurrent use: fairGate.mu guards it.
type fairQueue struct {
	clock uint64                // ticks at each arrival and each turn's end: positions
	n     int                   // callers queued
	flows map[*tenant]*fairFlow // tenants with callers queued, or an empty flow keeping their place
	order flowHeap              // the same flows, by position
}

// A fairFlow is one tenant's queued callers.
type fairFlow struct {
	t       *tenant
	weight  int32         // grants per turn, from the tenant's weight when the flow became active
	left    int32         // grants left in its current turn; 0 before its first
	served  bool          // it has been served since it became active: pos holds its position
	pos     uint64        // its position once served
	waiters []*fairWaiter // first come, first served, from head
	head    int
	idx     int // position in fairQueue.order
}

// A fairWaiter is one queued caller. ready has room for the one signal it
// gets, so that granting never blocks.
type fairWaiter struct {
	flow    *fairFlow
	arrived uint64 // the queue's clock when it arrived
	weight  int32  // its tenant's weight when it arrived
	granted bool   // it has its slot; guarded by fairGate.mu
	ready   chan struct{}
}

// push queues a caller of t, whose weight is weight (0 counts as 1).
func (q *fairQueue) push(t *tenant, weight int32) *fairWaiter {
	q.clock++
	q.n++
	w := &fairWaiter{arrived: q.clock, weight: max(weight, 1), ready: make(chan struct{}, 1)}
	if f := q.flows[t]; f != nil { // a flow has callers, or keeps its place: its position stays
		w.flow = f
		f.waiters = append(f.waiters, w)
		return w
	}
	if q.flows == nil {
		q.flows = make(map[*tenant]*fairFlow)
	}
	f := &fairFlow{t: t, weight: max(weight, 1), waiters: []*fairWaiter{w}}
	w.flow = f
	q.flows[t] = f
	heap.Push(&q.order, f)
	return w
}

// pop takes the caller whose turn it is, or returns nil if none waits.
func (q *fairQueue) pop() *fairWaiter {
	if q.n == 0 {
		return nil // placeholders stay until a slot goes free
	}
	for q.order[0].live() == 0 { // an empty flow's place came round
		f := heap.Pop(&q.order).(*fairFlow)
		delete(q.flows, f.t)
	}
	f := q.order[0]
	if f.left == 0 { // its turn starts, at the weight of its latest caller
		f.weight = f.waiters[len(f.waiters)-1].weight
		f.left = f.weight
	}
	f.left--
	f.pos, f.served = f.position(), true
	w := f.waiters[f.head]
	if f.left == 0 { // its turn ends: to the back
		q.clock++
		f.pos = q.clock
	}
	q.removeAt(f, f.head)
	return w
}

// remove takes w out of the queue, as if it had never come.
func (q *fairQueue) remove(w *fairWaiter) {
	f := w.flow
	for i := f.head; i < len(f.waiters); i++ {
		if f.waiters[i] == w {
			q.removeAt(f, i)
			return
		}
	}
}

func (q *fairQueue) removeAt(f *fairFlow, i int) {
	q.n--
	if i == f.head {
		f.waiters[i] = nil
		f.head++
	} else {
		f.waiters = slices.Delete(f.waiters, i, i+1)
	}
	switch live := f.live(); {
	case live == 0 && !f.served: // as if it had never come
		heap.Remove(&q.order, f.idx)
		delete(q.flows, f.t)
		return
	case f.head > live: // compact, so that a long queue's slice does not only grow
		n := copy(f.waiters, f.waiters[f.head:])
		clear(f.waiters[n:])
		f.waiters, f.head = f.waiters[:n], 0
	}
	heap.Fix(&q.order, f.idx)
}

// reset drops every placeholder: the gate has a free slot.
func (q *fairQueue) reset() {
	clear(q.order)
	q.order = q.order[:0]
	clear(q.flows)
}

// live returns the number of f's callers.
func (f *fairFlow) live() int { return len(f.waiters) - f.head }

// position is where f stands: where it was when last served, or where its
// first caller arrived if it has not been served since it became active.
func (f *fairFlow) position() uint64 {
	if f.served {
		return f.pos
	}
	return f.waiters[f.head].arrived
}

// flowHeap orders flows by position.
type flowHeap []*fairFlow

func (h flowHeap) Len() int           { return len(h) }
func (h flowHeap) Less(i, j int) bool { return h[i].position() < h[j].position() }
func (h flowHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *flowHeap) Push(x any) {
	f := x.(*fairFlow)
	f.idx = len(*h)
	*h = append(*h, f)
}
func (h *flowHeap) Pop() any {
	old := *h
	f := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return f
}
