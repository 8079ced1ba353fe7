package mongotenant

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
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
// Turns go to callers that wait when a slot frees, and a light tenant,
// between two reads, often is not waiting then: while callers wait, a few
// slots are kept for such tenants (see [WithFairReserve]), so that their
// next read does not wait for a heavy tenant's lease to end. With them, a
// tenant that holds leases may wait beyond its turn while the kept slots
// serve tenants that hold none.
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

// WithFairReserve sets how many of a fairly shared client's slots
// ([WithFairSharing]) are kept free, while callers wait for a turn there,
// for tenants that released their last lease on it within the last idle
// and whose share of its capacity is a slot or more (their weight over
// the weights of the tenants waiting or kept there). Such a tenant's next
// Acquire takes a kept slot at once, before the callers of tenants that
// hold leases; so may a tenant that holds none. A freed slot goes to a
// tenant that holds leases only if it leaves a slot free for each tenant
// kept for, up to slots. A tenant is kept until it comes back, for idle
// (to within 10 ms), until no caller waits, or until it leaves the client
// (a new route, Evict, Forget, a suspension).
//
// This is what keeps a light tenant's latency near its quiet figure next
// to a heavy one: without it, the light tenant's read, coming a moment
// after its last one ended, finds every slot taken by the heavy tenant's
// waiting callers and waits for one of their leases to end. The cost is
// capacity: up to slots stand free while the heavy tenant's callers wait,
// for up to idle after the light tenants stop, and a tenant that holds
// leases waits, beyond its turn, while the kept slots serve tenants that
// hold none (the bound of one turn per other tenant holds for a caller
// whose tenant holds no lease). A lone tenant is never kept from a slot.
//
// Default: a quarter of the capacity (none for capacities under 4) and one
// second. slots is at most the capacity minus one; slots or idle 0 turns
// keeping off.
func WithFairReserve(slots int, idle time.Duration) Option {
	return func(c *config) { c.fairReserve, c.fairReserveIdle, c.fairReserveSet = slots, idle, true }
}

// DefaultFairReserveIdle is how long a fairly shared client keeps a slot
// for a tenant that released its last lease there; see [WithFairReserve].
const DefaultFairReserveIdle = time.Second

// A fairGate admits leases on a client several tenants share: at most
// capacity at once, and while more are wanted, each slot freed goes to the
// tenant whose turn it is (see fairQueue), or is kept for a tenant that
// has just left (see fairReserve). A lease is granted without the lock
// while no one waits and nothing is kept; once either holds, every grant
// and release goes through the lock, so that no newcomer takes a slot
// ahead of the queue or a kept one. Slots are kept only while callers
// wait: when none does, the reserve forgets everyone.
type fairGate struct {
	// state is the hot path's word: bits 0-31 count the slots in use (never
	// more than capacity), and gateQueued is set while the queue holds a
	// flow or the reserve keeps a slot for someone.
	state    atomic.Uint64
	capacity uint32
	reserve  int32 // most slots kept free for tenants in r
	idle     int64 // how long r remembers a tenant, ns
	now      func() int64
	watch    func(*fairGate) // has the housekeeper poke the gate at its next tick; nil if nothing does

	// mu guards q, r, watched, and every change to gateQueued.
	mu      sync.Mutex
	q       fairQueue
	r       fairReserve
	watched bool // watch was called, and the poke has not come yet
}

const gateQueued = 1 << 32

// newFairGate returns a gate of capacity that keeps up to reserve slots
// for up to idle ns, reading the time from now.
func newFairGate(capacity, reserve int, idle int64, now func() int64) *fairGate {
	return &fairGate{capacity: uint32(capacity), reserve: int32(reserve), idle: idle, now: now}
}

// fairGateFor returns the fair gate for a new client with key, or nil if
// it needs none. watch is the gate's watch.
func (c *config) fairGateFor(key clientKey, clk clock, watch func(*fairGate)) *fairGate {
	if !c.fair || key.dedicated {
		return nil
	}
	n := c.fairCapacity
	if n == 0 {
		n = int(min(key.poolSize, maxFairCapacity))
	}
	reserve := c.fairReserve
	if !c.fairReserveSet {
		reserve = n / 4
	}
	if c.fairReserveIdle == 0 {
		reserve = 0
	}
	g := newFairGate(n, min(reserve, n-1), int64(c.fairReserveIdle), clk.now)
	g.watch = watch
	return g
}

// maxFairCapacity bounds the capacity, so that it fits the gate's count.
const maxFairCapacity = 1 << 30

// tryTake takes a slot if one is free, no one waits and nothing is kept.
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

// release gives back a slot a lease of t held on t's binding of
// generation gen: to the waiter whose turn it is, if any, or to the
// reserve.
func (g *fairGate) release(t *tenant, gen uint32) {
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
	defer g.mu.Unlock()
	g.state.Add(^uint64(0)) // the slot is free
	g.r.expire(g.now())
	// Under g.mu: a detach moves the generation on before its forget takes
	// g.mu, so either this sees the move or the forget comes after the keep.
	gone := t // t's word still counts the lease
	if genOf(t.word.Load()) != gen {
		gone = nil // t left the binding, and will not come back here: do not keep it
	} else {
		g.keepLocked(t)
	}
	g.promoteLocked(g.q.flows[t], gone)
	g.dispatchLocked(gone)
	if g.q.n == 0 && g.free() > 0 { // a slot went free with no caller: the placeholders' round ends
		g.q.reset()
	}
	g.settleLocked()
}

// enter takes a slot for t if one is free and no one waits, and otherwise
// queues t's caller with t's weight. It returns nil if it took a slot.
func (g *fairGate) enter(t *tenant, weight int32) *fairWaiter {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state.Load()&gateQueued == 0 { // the queue and the reserve are empty, and only this lock fills them
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
	} else {
		g.r.expire(g.now())
	}
	w := g.q.push(t, weight)
	if g.r.by[t] != nil {
		g.q.markFirst(w) // it holds none: it was kept, and no caller of it came since
	} else {
		g.promoteLocked(w.flow, nil)
	}
	g.dispatchLocked(nil) // a slot kept for t is still kept: no one else takes it first
	if g.r.drop(t) {      // it is back
		g.dispatchLocked(nil)
	}
	if w.granted {
		g.settleLocked()
		return nil
	}
	return w
}

// leave takes w out of the queue after its wait ended without a turn. It
// reports false if w got its turn meanwhile: the caller holds the slot.
func (g *fairGate) leave(w *fairWaiter) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.granted {
		return false
	}
	t := w.flow.t
	g.q.remove(w)
	g.promoteLocked(g.q.flows[t], t) // w may have been t's first
	g.dispatchLocked(t)              // w may have stood before a caller a kept slot can go to
	g.settleLocked()
	return true
}

// forget drops t from the reserve, and grants what that frees: t left
// the client.
func (g *fairGate) forget(t *tenant) {
	if g.state.Load()&gateQueued == 0 {
		return // nothing is kept: the common case, as when idle tenants are reaped
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.r.drop(t) {
		g.dispatchLocked(nil)
		g.settleLocked()
	}
}

// poke forgets the tenants kept too long, and grants what that frees: the
// housekeeper calls it when watch asked.
func (g *fairGate) poke() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.watched = false
	g.expireLocked()
}

// expireLocked forgets the tenants kept too long, and grants what that
// frees.
func (g *fairGate) expireLocked() {
	g.r.expire(g.now())
	g.dispatchLocked(nil)
	g.settleLocked()
}

// dispatchLocked grants free slots to waiters: to the flow whose turn it
// is, if that leaves a slot for each tenant kept for or its tenant holds
// no lease; otherwise to the first caller whose tenant holds none;
// otherwise it keeps them, and has the housekeeper poke the gate when
// time may have freed them. gone is a tenant whose word still counts a
// lease that has just ended, or nil.
func (g *fairGate) dispatchLocked(gone *tenant) {
	for {
		free := g.free()
		if free <= 0 {
			return
		}
		f := g.q.top()
		if f == nil {
			return
		}
		var w *fairWaiter
		switch {
		case free > g.keptLocked() || !holdsLease(f.t, f, gone):
			w = g.q.pop()
		case g.q.firsts.head != nil: // out of its place: as a grant of its tenant's turn
			w = g.q.serve(g.q.firsts.head.flow)
		default:
			if !g.watched && g.watch != nil {
				g.watched = true
				g.watch(g)
			}
			return
		}
		g.state.Add(1)
		w.granted = true
		w.ready <- struct{}{}
	}
}

// promoteLocked makes f's first caller one that may take a kept slot, if
// f's tenant now holds no lease: its callers came while it held some, and
// the last of those leases ended, or the caller that led the flow left.
// gone is as for dispatchLocked.
func (g *fairGate) promoteLocked(f *fairFlow, gone *tenant) {
	if f != nil && f.live() > 0 && !f.waiters[f.head].first && !holdsLease(f.t, f, gone) {
		g.q.markFirst(f.waiters[f.head])
	}
}

// keepLocked remembers t, whose lease just ended, in the reserve if
// callers wait, t now holds no lease here and has no caller waiting, and
// its share of the capacity is a slot or more. It takes the place of t's
// placeholder.
func (g *fairGate) keepLocked(t *tenant) {
	if g.reserve == 0 || g.q.n == 0 {
		return
	}
	f := g.q.flows[t]
	if (f != nil && f.live() > 0) || holdsLease(t, f, t) {
		return
	}
	weight := max(t.weight.Load(), 1)
	total := g.q.weight + g.r.weight + int64(weight) // t is not kept: it held a lease until now
	if f != nil {
		total -= int64(f.weight)
	}
	if int64(weight)*int64(g.capacity) < total {
		return
	}
	if f != nil {
		g.q.drop(f)
	}
	g.r.keep(t, weight, g.now()+g.idle)
}

// holdsLease reports whether t holds a lease at the gate: its word counts
// its leases on its current client, those of its callers waiting in its
// flow f (nil if it has none) among them, and one more if it is gone. It
// is an estimate: the word also counts callers on their way to the gate
// (the tenant then waits for its turn, as without a reserve), and a
// tenant that moved to another client is counted there.
func holdsLease(t *tenant, f *fairFlow, gone *tenant) bool {
	n := leasesOf(t.word.Load())
	if f != nil {
		n -= int32(f.live())
	}
	if t == gone {
		n--
	}
	return n > 0
}

// keptLocked returns the slots the reserve keeps free: one per tenant in
// it, at most reserve.
func (g *fairGate) keptLocked() int64 { return int64(min(g.reserve, int32(len(g.r.by)))) }

// free returns the slots not in use.
func (g *fairGate) free() int64 { return int64(g.capacity) - int64(uint32(g.state.Load())) }

// settleLocked forgets the kept tenants if no caller waits, and clears
// gateQueued once the queue and the reserve are empty: the hot path may
// grant again.
func (g *fairGate) settleLocked() {
	if g.q.n == 0 {
		g.r.reset()
	}
	if len(g.q.flows) == 0 && len(g.r.by) == 0 && g.state.Load()&gateQueued != 0 {
		g.state.Add(^uint64(gateQueued - 1))
	}
}

// snapshot returns the slots in use, the slots kept free, and the callers
// waiting, after forgetting the tenants kept too long.
func (g *fairGate) snapshot() (inUse, kept, waiting int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.expireLocked()
	return int(uint32(g.state.Load())), int(min(g.keptLocked(), g.free())), g.q.n
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
		g.release(a.t, a.b.gen)
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
		g.release(a.t, a.b.gen) // the turn came as the wait ended: pass it on
	}
	return err
}

// watchGate has the housekeeper poke g at its next tick: g's callers wait
// on slots it keeps for tenants, and only time may free those. g.mu is
// held. The housekeeper runs: the waiting callers' tenants keep it up.
func (m *Manager) watchGate(g *fairGate) {
	m.gatesMu.Lock()
	m.gatesToPoke = append(m.gatesToPoke, g)
	m.gatesMu.Unlock()
}

// pokeGates pokes the gates watchGate was given since the last tick.
func (m *Manager) pokeGates() {
	m.gatesMu.Lock()
	gates := m.gatesToPoke
	m.gatesToPoke = nil
	m.gatesMu.Unlock()
	for _, g := range gates {
		g.poke()
	}
}

// errMoved ends a wait for a turn at a client the tenant left.
var errMoved = errors.New("mongotenant: tenant left the client")
