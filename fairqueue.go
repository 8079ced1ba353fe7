package mongotenant

import (
	"container/heap"
	"slices"
)

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
// The first caller of each tenant that holds no lease is also listed in
// firsts, in the order they were found so: the gate may give them a slot
// it keeps (fairGate.dispatchLocked), out of their turn.
//
// A fairQueue is not safe for concurrent use: fairGate.mu guards it.
type fairQueue struct {
	clock  uint64                        // ticks at each arrival and each turn's end: positions
	n      int                           // callers queued
	flows  map[*tenant]*fairFlow         // tenants with callers queued, or an empty flow keeping their place
	order  flowHeap                      // the same flows, by position
	weight int64                         // the sum of the flows' weights
	firsts list[fairWaiter, *fairWaiter] // the callers that came holding no lease, first come first
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
	first   bool   // it leads its flow, and its tenant held no lease when it was marked: it is in firsts

	listLinks[fairWaiter] // in firsts

	ready chan struct{}
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
	q.weight += int64(f.weight)
	heap.Push(&q.order, f)
	return w
}

// markFirst lists w, the first caller of its flow, in firsts: its tenant
// holds no lease.
func (q *fairQueue) markFirst(w *fairWaiter) {
	w.first = true
	q.firsts.pushBack(w)
}

// top returns the flow whose turn it is, or nil if no caller waits.
func (q *fairQueue) top() *fairFlow {
	if q.n == 0 {
		return nil // placeholders stay until a slot goes free
	}
	for q.order[0].live() == 0 { // an empty flow's place came round
		q.drop(q.order[0])
	}
	return q.order[0]
}

// pop takes the caller whose turn it is, or returns nil if none waits.
func (q *fairQueue) pop() *fairWaiter {
	f := q.top()
	if f == nil {
		return nil
	}
	return q.serve(f)
}

// serve takes f's first caller, as a grant of f's turn: the turn starts
// if it had not, and ends, sending f to the back, if this was its last
// grant. The gate serves a flow out of its place only through its first
// caller (firsts), which stands at its head.
func (q *fairQueue) serve(f *fairFlow) *fairWaiter {
	if f.left == 0 { // its turn starts, at the weight of its latest caller
		weight := f.waiters[len(f.waiters)-1].weight
		q.weight += int64(weight - f.weight)
		f.weight, f.left = weight, weight
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
	if w := f.waiters[i]; w.first {
		q.firsts.remove(w)
	}
	if i == f.head {
		f.waiters[i] = nil
		f.head++
	} else {
		f.waiters = slices.Delete(f.waiters, i, i+1)
	}
	switch live := f.live(); {
	case live == 0 && !f.served: // as if it had never come
		q.drop(f)
		return
	case f.head > live: // compact, so that a long queue's slice does not only grow
		n := copy(f.waiters, f.waiters[f.head:])
		clear(f.waiters[n:])
		f.waiters, f.head = f.waiters[:n], 0
	}
	heap.Fix(&q.order, f.idx)
}

// drop takes f, which has no callers, out of the queue.
func (q *fairQueue) drop(f *fairFlow) {
	heap.Remove(&q.order, f.idx)
	delete(q.flows, f.t)
	q.weight -= int64(f.weight)
}

// reset drops every placeholder: the gate has a free slot, and no caller.
func (q *fairQueue) reset() {
	clear(q.order)
	q.order = q.order[:0]
	clear(q.flows)
	q.weight = 0
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
