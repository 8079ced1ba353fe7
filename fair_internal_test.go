package mongotenant

import (
	"cmp"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fairSim drives a fairGate on fake time, in one goroutine: workers of
// tenants ask for a turn, hold it for their tenant's hold time, pause for
// its think time, and ask again. It records every grant.
type fairSim struct {
	t       *testing.T
	g       *fairGate
	now     int64
	events  simEvents
	seq     int
	queued  map[*fairWaiter]*simWorker // waiters not yet granted
	grants  []*simWorker               // in order
	inUse   int
	peak    int
	onAsk   func(w *simWorker) // called when a worker asks, if set
	onGrant func(w *simWorker) // called after each grant, if set
}

type simTenant struct {
	name        string
	t           *tenant
	weight      int32
	hold, think int64
	grants      int
}

type simWorker struct {
	tenant  *simTenant
	askedAt int64
	stopped bool
}

type simEvent struct {
	at  int64
	seq int
	fn  func()
}

type simEvents []simEvent

func (h simEvents) Len() int { return len(h) }
func (h simEvents) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h simEvents) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *simEvents) Push(x any)   { *h = append(*h, x.(simEvent)) }
func (h *simEvents) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func newFairSim(t *testing.T, capacity int) *fairSim {
	return &fairSim{t: t, g: newFairGate(capacity), queued: map[*fairWaiter]*simWorker{}}
}

func (s *fairSim) tenant(name string, weight int32, hold, think int64) *simTenant {
	return &simTenant{name: name, t: &tenant{id: name}, weight: weight, hold: hold, think: think}
}

func (s *fairSim) at(d int64, fn func()) {
	s.seq++
	heap.Push(&s.events, simEvent{at: s.now + d, seq: s.seq, fn: fn})
}

// start starts n workers of st, asking for their first turn after delay.
func (s *fairSim) start(st *simTenant, n int, delay int64) []*simWorker {
	ws := make([]*simWorker, n)
	for i := range ws {
		w := &simWorker{tenant: st}
		ws[i] = w
		s.at(delay, func() { s.ask(w) })
	}
	return ws
}

func (s *fairSim) ask(w *simWorker) {
	if w.stopped {
		return
	}
	w.askedAt = s.now
	if s.onAsk != nil {
		s.onAsk(w)
	}
	if fw := s.g.enter(w.tenant.t, w.tenant.weight); fw != nil {
		s.queued[fw] = w
		return
	}
	s.granted(w)
}

func (s *fairSim) granted(w *simWorker) {
	s.inUse++
	s.peak = max(s.peak, s.inUse)
	if s.inUse > int(s.g.capacity) { // a plain check: it runs on every grant
		s.t.Fatalf("%d turns, capacity %d", s.inUse, s.g.capacity)
	}
	w.tenant.grants++
	s.grants = append(s.grants, w)
	if s.onGrant != nil {
		s.onGrant(w)
	}
	s.at(w.tenant.hold, func() {
		s.inUse--
		s.g.release()
		s.collect()
		s.at(w.tenant.think, func() { s.ask(w) })
	})
}

// collect finds the waiter the last release granted, if any.
func (s *fairSim) collect() {
	for fw, w := range s.queued {
		select {
		case <-fw.ready:
			delete(s.queued, fw)
			s.granted(w)
			return // one release grants at most one waiter
		default:
		}
	}
}

// run runs events until none is left before until, or until grants
// grants have been made.
func (s *fairSim) run(until int64, grants int) {
	for s.events.Len() > 0 && len(s.grants) < grants {
		e := heap.Pop(&s.events).(simEvent)
		if e.at > until {
			return
		}
		s.now = e.at
		e.fn()
	}
}

// TestFairLightTenantWaitsOneTurnPerOtherTenant: 1 light and 10 noisy
// tenants on a capacity of 4. The light tenant, with one caller at a
// time, never waits behind more than one grant to each other tenant,
// however many callers each noisy tenant has queued.
func TestFairLightTenantWaitsOneTurnPerOtherTenant(t *testing.T) {
	s := newFairSim(t, 4)
	light := s.tenant("light", 1, 1, 7)
	var noisy []*simTenant
	for i := range 10 {
		n := s.tenant(fmt.Sprintf("noisy%d", i), 1, 20, 0)
		noisy = append(noisy, n)
		s.start(n, 16, int64(i))
	}
	s.start(light, 1, 50) // once the noisy tenants have filled the queue

	var behind map[*simTenant]int // grants to others since the light tenant asked
	lightWaited, worst := 0, 0
	s.onAsk = func(w *simWorker) {
		if w.tenant == light {
			behind = map[*simTenant]int{}
		}
	}
	s.onGrant = func(w *simWorker) {
		if w.tenant != light {
			if behind != nil {
				behind[w.tenant]++
			}
			return
		}
		total := 0
		for n, k := range behind {
			if k > 1 {
				t.Fatalf("the light tenant waited behind %d grants to %s", k, n.name)
			}
			total += k
		}
		if total > 0 {
			lightWaited++
		}
		worst = max(worst, total)
		behind = nil
	}
	s.run(1_000_000, 20_000)

	require.Greater(t, light.grants, 100)
	require.Greater(t, lightWaited, light.grants/2, "the light tenant seldom waited: the test did not load the gate")
	require.LessOrEqual(t, worst, len(noisy))
	for _, n := range noisy {
		require.Greater(t, n.grants, 100, "noisy tenant %s starved", n.name)
	}
	require.Equal(t, 4, s.peak)
}

// TestFairWeights: backlogged tenants of weights 1, 2, 3 and 4 share
// 10,000 grants in proportion to their weights, within 10%.
func TestFairWeights(t *testing.T) {
	s := newFairSim(t, 4)
	var tenants []*simTenant
	sum := 0
	for w := int32(1); w <= 4; w++ {
		st := s.tenant(fmt.Sprintf("w%d", w), w, 10, 0)
		tenants = append(tenants, st)
		s.start(st, 8, 0)
		sum += int(w)
	}
	const grants = 10_000
	s.run(1<<62, grants)
	require.Len(t, s.grants, grants)
	for _, st := range tenants {
		want := float64(grants) * float64(st.weight) / float64(sum)
		assert.InEpsilon(t, want, float64(st.grants), 0.10, "tenant %s: %d grants, want about %.0f", st.name, st.grants, want)
	}
}

// TestFairLoneTenantUsesWholeCapacity: a tenant alone gets every turn,
// without waiting.
func TestFairLoneTenantUsesWholeCapacity(t *testing.T) {
	s := newFairSim(t, 4)
	st := s.tenant("alone", 1, 10, 0)
	s.start(st, 4, 0)
	waited := 0
	s.onGrant = func(w *simWorker) {
		if w.askedAt != s.now {
			waited++
		}
	}
	s.run(999, 1<<30)
	require.Equal(t, 4, s.peak)
	require.Zero(t, waited)
	require.Equal(t, 4*100, st.grants) // 4 turns every 10 ticks, 0 to 990

	// With more callers than turns, it still holds them all.
	s = newFairSim(t, 4)
	st = s.tenant("alone", 1, 10, 0)
	s.start(st, 16, 0)
	s.run(999, 1<<30)
	require.Equal(t, 4, s.peak)
	require.Equal(t, 4*100, st.grants)
}

// TestFairCancelledWaiterLeavesNoTrace: a caller that gives up changes
// nothing: the grants that follow are those of a run in which it never
// came, and the queue is left as it was.
func TestFairCancelledWaiterLeavesNoTrace(t *testing.T) {
	for _, where := range []string{"head", "middle", "tail", "alone"} {
		t.Run(where, func(t *testing.T) {
			run := func(cancel bool) (order []string, snapshot string) {
				g := newFairGate(1)
				a, b, c, d := &tenant{id: "a"}, &tenant{id: "b"}, &tenant{id: "c"}, &tenant{id: "d"}
				require.Nil(t, g.enter(a, 1)) // holds the only turn
				// Two grants to d move the queue on first.
				d1, d2 := g.enter(d, 1), g.enter(d, 1)
				g.release()
				require.True(t, d1.granted)
				g.release()
				require.True(t, d2.granted)
				require.NotZero(t, g.q.clock)

				var ws []*fairWaiter
				var extra *fairWaiter
				push := func(tt *tenant, w int32) { ws = append(ws, g.enter(tt, w)) }
				maybe := func(tt *tenant) {
					if cancel {
						extra = g.enter(tt, 1)
					}
				}
				switch where {
				case "head":
					maybe(b)
					push(b, 1)
					push(c, 2)
					push(b, 1)
				case "middle":
					push(b, 1)
					maybe(b)
					push(b, 1)
					push(c, 2)
				case "tail":
					push(b, 1)
					push(c, 2)
					push(c, 2)
					maybe(c)
				case "alone":
					maybe(b)
					push(a, 1)
				}
				push(a, 1)
				if cancel {
					require.False(t, extra.granted)
					require.True(t, g.leave(extra))
				}
				g.release() // d2's turn
				snapshot = fairState(g)
				for {
					granted := -1
					for i, w := range ws {
						if w != nil && w.granted {
							granted = i
						}
					}
					if granted >= 0 {
						order = append(order, ws[granted].flow.t.id+fmt.Sprint(granted))
						ws[granted] = nil
						g.release()
						continue
					}
					break
				}
				require.Zero(t, g.q.n)
				require.Empty(t, g.q.flows)
				require.Empty(t, g.q.order)
				require.Equal(t, uint64(0), g.state.Load()&gateQueued)
				return order, snapshot
			}
			// The reference run needs the same grant before: a waiter that
			// never came cannot be granted.
			want, wantState := run(false)
			got, gotState := run(true)
			require.Equal(t, want, got)
			require.Equal(t, wantState, gotState)
		})
	}
}

// fairState describes g's queue: what a cancelled waiter must not change.
// Positions are compared by order, not value: a waiter that never came
// would not have moved the clock.
func fairState(g *fairGate) string {
	q := &g.q
	flows := slices.Clone(q.order)
	slices.SortFunc(flows, func(a, b *fairFlow) int { return cmp.Compare(a.position(), b.position()) })
	out := fmt.Sprintf("n=%d state=%x;", q.n, g.state.Load())
	for _, f := range flows {
		out += fmt.Sprintf(" %s:weight=%d left=%d served=%v len=%d", f.t.id, f.weight, f.left, f.served, len(f.waiters)-f.head)
	}
	return out
}

// TestFairNoStarvation: tenants with one caller each, asking again as
// soon as they are served, do not starve a tenant with many callers; and
// the weights of backlogged tenants hold against them.
func TestFairNoStarvation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity int
		tenants  []struct{ weight, callers int }
		// want is each tenant's share of the grants.
		want []float64
	}{
		{"two single callers and a crowd", 1,
			[]struct{ weight, callers int }{{1, 1}, {1, 1}, {1, 20}}, []float64{1. / 3, 1. / 3, 1. / 3}},
		{"a heavy crowd and ten single callers", 4,
			[]struct{ weight, callers int }{{10, 20}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}},
			[]float64{.5, .05, .05, .05, .05, .05, .05, .05, .05, .05, .05}},
		{"weight 3 against a single caller", 1,
			[]struct{ weight, callers int }{{3, 8}, {1, 1}}, []float64{.75, .25}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFairSim(t, tc.capacity)
			var sts []*simTenant
			for i, x := range tc.tenants {
				st := s.tenant(fmt.Sprintf("t%d", i), int32(x.weight), 10, 0)
				sts = append(sts, st)
				s.start(st, x.callers, int64(i))
			}
			const grants = 10_000
			s.run(1<<62, grants)
			for i, st := range sts {
				want := grants * tc.want[i]
				assert.InEpsilon(t, want, float64(st.grants), 0.10, "tenant %s (weight %d, %d callers): %d grants, want about %.0f",
					st.name, st.weight, tc.tenants[i].callers, st.grants, want)
			}
		})
	}
}

// TestFairCancelledWaiterKeepsNoPlaceholder: a caller that gives up does
// not keep another tenant's place in the round alive: the order after it
// left is the order had it never come.
func TestFairCancelledWaiterKeepsNoPlaceholder(t *testing.T) {
	first := func(withW bool) string {
		g := newFairGate(1)
		a, b, c, w := &tenant{id: "a"}, &tenant{id: "b"}, &tenant{id: "c"}, &tenant{id: "w"}
		require.Nil(t, g.enter(a, 1))
		b1 := g.enter(b, 1)
		var W *fairWaiter
		if withW {
			W = g.enter(w, 1)
		}
		g.release()
		require.True(t, b1.granted)
		c1 := g.enter(c, 1)
		b2 := g.enter(b, 1)
		if withW {
			require.True(t, g.leave(W))
		}
		g.release()
		switch {
		case c1.granted:
			return "c"
		case b2.granted:
			return "b"
		}
		return "none"
	}
	require.Equal(t, first(false), first(true))
}

// TestFairNewWeightApplies: a tenant that stays backlogged gets its new
// weight from its next turn, raised or lowered.
func TestFairNewWeightApplies(t *testing.T) {
	g := newFairGate(1)
	a, x, y := &tenant{id: "a"}, &tenant{id: "x"}, &tenant{id: "y"}
	require.Nil(t, g.enter(a, 1))
	ws := map[*fairWaiter]*tenant{}
	for range 4 {
		ws[g.enter(x, 1)] = x
		ws[g.enter(y, 1)] = y
	}
	grants := map[*tenant]int{}
	for range 400 {
		g.release()
		for w, tt := range ws {
			if w.granted {
				delete(ws, w)
				grants[tt]++
				weight := int32(1)
				if tt == x {
					weight = 3 // x was upgraded, and asks again at once
				}
				ws[g.enter(tt, weight)] = tt
			}
		}
	}
	assert.InEpsilon(t, 300, grants[x], 0.1, "x's new weight 3: %d grants of 400", grants[x])

	// Lowered: b, backlogged at weight 2, now has weight 1: x waits
	// behind one lease of b, not two.
	g = newFairGate(1)
	b := &tenant{id: "b"}
	require.Nil(t, g.enter(a, 1))
	b0, b1 := g.enter(b, 2), g.enter(b, 1)
	x1 := g.enter(x, 1)
	g.release()
	require.True(t, b0.granted)
	g.release()
	require.True(t, x1.granted, "x waited behind a second lease of b")
	require.False(t, b1.granted)
}

// TestFairQueueInvariants drives gates with random arrivals, releases,
// cancellations and new weights, and checks after every step: the heap
// and the flow map agree, counts add up, the queued bit is set exactly
// while the queue holds a flow, a turn never exceeds its weight, and a
// caller alone in its tenant's flow waits behind at most one turn of each
// other tenant (as many grants as the weight that turn started with).
func TestFairQueueInvariants(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 1))
		g := newFairGate(1 + r.IntN(3))
		ts := make([]*tenant, 1+r.IntN(5))
		weights := map[*tenant]int32{}
		for i := range ts {
			ts[i] = &tenant{id: fmt.Sprint(i)}
			weights[ts[i]] = int32(1 + r.IntN(3))
		}
		held := 0
		var waiting []*fairWaiter
		behind := map[*fairWaiter]map[*tenant]int{} // lone callers: grants to others since they came
		for step := range 2000 {
			switch op := r.IntN(10); {
			case op < 4:
				tt := ts[r.IntN(len(ts))]
				if r.IntN(20) == 0 {
					weights[tt] = int32(1 + r.IntN(3)) // from tt's next turn
				}
				w := g.enter(tt, weights[tt])
				if w == nil {
					held++
					break
				}
				waiting = append(waiting, w)
				if w.flow.live() == 1 {
					behind[w] = map[*tenant]int{}
				}
			case op < 8 && held > 0:
				g.release()
				held--
				for i := 0; i < len(waiting); i++ {
					w := waiting[i]
					if !w.granted {
						continue
					}
					gt := w.flow.t
					for x, m := range behind {
						if x.flow.t != gt {
							m[gt]++
							if m[gt] > int(w.flow.weight) {
								t.Fatalf("seed %d step %d: a lone caller waited behind %d grants of a tenant whose turn is %d", seed, step, m[gt], w.flow.weight)
							}
						}
					}
					delete(behind, w)
					held++
					waiting = slices.Delete(waiting, i, i+1)
					i--
				}
			case len(waiting) > 0:
				i := r.IntN(len(waiting))
				if g.leave(waiting[i]) {
					delete(behind, waiting[i])
					waiting = slices.Delete(waiting, i, i+1)
				}
			}
			checkFairQueue(t, g, seed, step)
		}
	}
}

func checkFairQueue(t *testing.T, g *fairGate, seed uint64, step int) {
	t.Helper()
	if problem := fairQueueProblem(g); problem != "" {
		t.Fatalf("seed %d step %d: %s", seed, step, problem)
	}
}

// fairQueueProblem returns the first invariant g's queue breaks, or "".
// Plain checks, not assertions: it runs after each of 600,000 steps.
func fairQueueProblem(g *fairGate) string {
	q := &g.q
	if len(q.order) != len(q.flows) {
		return fmt.Sprintf("%d flows in the heap, %d in the map", len(q.order), len(q.flows))
	}
	n := 0
	for i, f := range q.order {
		switch {
		case f.idx != i:
			return fmt.Sprintf("flow at %d thinks it is at %d", i, f.idx)
		case q.flows[f.t] != f:
			return "the map and the heap hold different flows"
		case f.live() == 0 && !f.served:
			return "an empty flow never served"
		case i > 0 && q.order.Less(i, (i-1)/2):
			return "heap order"
		case f.left < 0 || f.left >= max(f.weight, 1):
			return fmt.Sprintf("left %d, weight %d", f.left, f.weight)
		}
		for _, w := range f.waiters[f.head:] {
			if w == nil || w.granted {
				return "a granted or nil caller queued"
			}
		}
		n += f.live()
	}
	switch state := g.state.Load(); {
	case q.n != n:
		return fmt.Sprintf("n %d, %d callers in flows", q.n, n)
	case (len(q.flows) > 0) != (state&gateQueued != 0):
		return "queued bit"
	case uint32(state) > g.capacity:
		return fmt.Sprintf("%d slots in use, capacity %d", uint32(state), g.capacity)
	}
	return ""
}
