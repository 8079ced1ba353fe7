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

// simKeep is how long a simulated gate keeps a slot for a tenant that
// left: as WithFairReserve's default, many holds long.
const simKeep = 100

// newFairSim returns a simulation of a gate of capacity, with the default
// reserve.
func newFairSim(t *testing.T, capacity int) *fairSim {
	return newFairSimReserve(t, capacity, capacity/4)
}

func newFairSimReserve(t *testing.T, capacity, reserve int) *fairSim {
	s := &fairSim{t: t, queued: map[*fairWaiter]*simWorker{}}
	s.g = newFairGate(capacity, reserve, simKeep, func() int64 { return s.now })
	return s
}

// testGate returns a gate of capacity with the default reserve, on a
// clock that stands still.
func testGate(capacity int) *fairGate {
	return newFairGate(capacity, capacity/4, simKeep, func() int64 { return 0 })
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
	w.tenant.t.word.Add(1) // as Acquire counts the lease in the tenant's word, then waits for a turn
	fw := s.g.enter(w.tenant.t, w.tenant.weight)
	if fw == nil {
		s.granted(w)
	} else {
		s.queued[fw] = w
	}
	s.collect() // its coming may have let others in
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
		s.g.release(w.tenant.t, 0)
		w.tenant.t.word.Add(^uint64(0))
		s.collect()
		s.at(w.tenant.think, func() { s.ask(w) })
	})
}

// collect finds the waiters the gate granted, in the order they came.
func (s *fairSim) collect() {
	var got []*fairWaiter
	for fw := range s.queued {
		select {
		case <-fw.ready:
			got = append(got, fw)
		default:
		}
	}
	slices.SortFunc(got, func(a, b *fairWaiter) int { return cmp.Compare(a.arrived, b.arrived) })
	for _, fw := range got {
		w := s.queued[fw]
		delete(s.queued, fw)
		s.granted(w)
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
	t.Parallel() // a simulation on fake time: nothing shared, CPU only
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

// TestFairReserveKeepsSlotsForLightTenants: two light tenants, each
// reading one lease at a time with pauses between, next to a noisy tenant
// whose callers always wait, on a capacity of 8 (reserve 2). With the
// reserve, a light tenant's read never waits once both have been served
// (the first read of one may take the slot kept for the other), and the
// noisy tenant gets at least the other 6 slots; without it, the light
// reads find every slot taken. When the light tenants stop, the noisy
// tenant gets the whole capacity back once the reserve forgets them.
func TestFairReserveKeepsSlotsForLightTenants(t *testing.T) {
	t.Parallel() // a simulation on fake time: nothing shared, CPU only
	const capacity, stop, settled = 8, 2000, 100
	run := func(reserve int) (lightWaits, lightGrants, noisyPeakAfter int, noisyGrants int) {
		s := newFairSimReserve(t, capacity, reserve)
		noisy := s.tenant("noisy", 1, 20, 0)
		s.start(noisy, 32, 0)
		var lights []*simWorker
		for i := range 2 {
			lights = append(lights, s.start(s.tenant(fmt.Sprint("light", i), 1, 1, 3), 1, 50)...)
		}
		noisyHeld := 0
		s.onGrant = func(w *simWorker) {
			if w.tenant == noisy {
				noisyHeld++
				if s.now < stop {
					noisyGrants++
				}
				if s.now > stop+simKeep+20 { // the reserve has forgotten the light tenants
					noisyPeakAfter = max(noisyPeakAfter, noisyHeld)
				}
				s.at(w.tenant.hold, func() { noisyHeld-- })
				return
			}
			if w.askedAt > settled && w.askedAt != s.now {
				lightWaits++
			}
			lightGrants++
		}
		s.at(stop, func() {
			for _, w := range lights {
				w.stopped = true
			}
		})
		s.run(stop+simKeep+200, 1<<30)
		return lightWaits, lightGrants, noisyPeakAfter, noisyGrants
	}

	waits, grants, peak, noisyGrants := run(2)
	require.Greater(t, grants, 600) // every 4 ticks from 50 to 2000, each
	require.Zero(t, waits, "a light read waited with slots kept")
	require.Equal(t, capacity, peak, "the noisy tenant did not get the whole capacity back")
	// The noisy tenant's 20-tick leases on at least the 6 slots the reserve
	// leaves: 6 × 2000 / 20 = 600. (It gets more: the light tenants take
	// turns, and the slot one frees serves the other.)
	require.GreaterOrEqual(t, noisyGrants, 600)

	waits, grants, _, _ = run(0)
	require.Greater(t, waits, grants/2, "without a reserve the light reads should find the slots taken: the test did not load the gate")
}

// TestFairWeights: backlogged tenants of weights 1, 2, 3 and 4 share
// 10,000 grants in proportion to their weights, within 10%.
func TestFairWeights(t *testing.T) {
	t.Parallel() // a simulation on fake time: nothing shared, CPU only
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
				g := testGate(1)
				a, b, c, d := &tenant{id: "a"}, &tenant{id: "b"}, &tenant{id: "c"}, &tenant{id: "d"}
				require.Nil(t, g.enter(a, 1)) // holds the only turn
				// Two grants to d move the queue on first.
				d1, d2 := g.enter(d, 1), g.enter(d, 1)
				g.release(a, 0)
				require.True(t, d1.granted)
				g.release(a, 0)
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
				g.release(a, 0) // d2's turn
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
						g.release(a, 0)
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
	t.Parallel() // a simulation on fake time: nothing shared, CPU only
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
		g := testGate(1)
		a, b, c, w := &tenant{id: "a"}, &tenant{id: "b"}, &tenant{id: "c"}, &tenant{id: "w"}
		require.Nil(t, g.enter(a, 1))
		b1 := g.enter(b, 1)
		var W *fairWaiter
		if withW {
			W = g.enter(w, 1)
		}
		g.release(a, 0)
		require.True(t, b1.granted)
		c1 := g.enter(c, 1)
		b2 := g.enter(b, 1)
		if withW {
			require.True(t, g.leave(W))
		}
		g.release(a, 0)
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
	g := testGate(1)
	a, x, y := &tenant{id: "a"}, &tenant{id: "x"}, &tenant{id: "y"}
	require.Nil(t, g.enter(a, 1))
	ws := map[*fairWaiter]*tenant{}
	for range 4 {
		ws[g.enter(x, 1)] = x
		ws[g.enter(y, 1)] = y
	}
	grants := map[*tenant]int{}
	for range 400 {
		g.release(a, 0)
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
	g = testGate(1)
	b := &tenant{id: "b"}
	require.Nil(t, g.enter(a, 1))
	b0, b1 := g.enter(b, 2), g.enter(b, 1)
	x1 := g.enter(x, 1)
	g.release(a, 0)
	require.True(t, b0.granted)
	g.release(a, 0)
	require.True(t, x1.granted, "x waited behind a second lease of b")
	require.False(t, b1.granted)
}

// TestFairQueueInvariants drives gates with random arrivals, releases,
// cancellations, new weights and time, and checks after every step: the
// heap and the flow map agree, counts add up, the queued bit is set
// exactly while the queue holds a flow or the reserve a tenant, a turn
// never exceeds its weight, no slot stays free that a waiter may take,
// and a caller alone in its tenant's flow waits behind at most one turn
// of each other tenant (as many grants as the weight that turn started
// with): every such caller without a reserve, and with one, every caller
// whose tenant held no lease when it came; a kept tenant that comes back
// while a slot is free, and no caller of a tenant holding none waits,
// gets it at once. Then every lease ends, and every waiter must have been served.
func TestFairQueueInvariants(t *testing.T) {
	t.Parallel() // a simulation on fake time: nothing shared, CPU only
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 1))
		capacity := 1 + r.IntN(8)
		now := int64(0)
		g := newFairGate(capacity, r.IntN(capacity), 1+r.Int64N(50), func() int64 { return now })
		g.watch = func(*fairGate) {} // the housekeeper: the op below pokes
		ts := make([]*tenant, 1+r.IntN(6))
		weights := map[*tenant]int32{}
		for i := range ts {
			ts[i] = &tenant{id: fmt.Sprint(i)}
			weights[ts[i]] = int32(1 + r.IntN(3))
		}
		var holders []*tenant // one per lease holding a slot
		var waiting []*fairWaiter
		behind := map[*fairWaiter]map[*tenant]int{} // lone callers: grants to others since they came
		collect := func(step int) {
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
				holders = append(holders, gt)
				waiting = slices.Delete(waiting, i, i+1)
				i--
			}
		}
		release := func(i int) {
			h := holders[i]
			holders = slices.Delete(holders, i, i+1)
			g.release(h, 0)
			h.word.Add(^uint64(0))
		}
		for step := range 2000 {
			now += r.Int64N(3)
			switch op := r.IntN(10); {
			case op < 4:
				tt := ts[r.IntN(len(ts))]
				if r.IntN(20) == 0 {
					weights[tt] = int32(1 + r.IntN(3)) // from tt's next turn
				}
				tt.word.Add(1)
				k := g.r.by[tt]
				kept := k != nil && k.until > now && g.free() > 0 && !waitsHoldingNone(g)
				w := g.enter(tt, weights[tt])
				if kept && w != nil {
					t.Fatalf("seed %d step %d: a kept tenant came back to a free slot and waits", seed, step)
				}
				if w == nil {
					holders = append(holders, tt)
					break
				}
				waiting = append(waiting, w)
				if w.flow.live() == 1 && (g.reserve == 0 || w.first) {
					behind[w] = map[*tenant]int{}
				}
			case op < 8 && len(holders) > 0:
				release(r.IntN(len(holders)))
			case op == 8 && g.watched:
				g.poke()
			case len(waiting) > 0:
				i := r.IntN(len(waiting))
				if w := waiting[i]; g.leave(w) {
					w.flow.t.word.Add(^uint64(0))
					delete(behind, w)
					waiting = slices.Delete(waiting, i, i+1)
				}
			}
			collect(step)
			checkFairQueue(t, g, seed, step)
		}
		for step := 2000; len(holders) > 0; step++ {
			release(0)
			collect(step)
			checkFairQueue(t, g, seed, step)
		}
		if len(waiting) > 0 {
			t.Fatalf("seed %d: every lease ended, and %d callers still wait", seed, len(waiting))
		}
	}
}

// waitsHoldingNone reports whether a caller waits at g whose tenant holds
// no lease there.
func waitsHoldingNone(g *fairGate) bool {
	for _, f := range g.q.order {
		if f.live() > 0 && !holdsLease(f.t, f, nil) {
			return true
		}
	}
	return false
}

func checkFairQueue(t *testing.T, g *fairGate, seed uint64, step int) {
	t.Helper()
	if problem := fairQueueProblem(g); problem != "" {
		t.Fatalf("seed %d step %d: %s", seed, step, problem)
	}
}

// fairQueueProblem returns the first invariant g's queue or reserve
// breaks, or "".
// Plain checks, not assertions: it runs after each of 600,000 steps.
func fairQueueProblem(g *fairGate) string {
	q := &g.q
	if len(q.order) != len(q.flows) {
		return fmt.Sprintf("%d flows in the heap, %d in the map", len(q.order), len(q.flows))
	}
	n, weight := 0, int64(0)
	for i, f := range q.order {
		weight += int64(f.weight)
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
		for i, w := range f.waiters[f.head:] {
			switch {
			case w == nil || w.granted:
				return "a granted or nil caller queued"
			case w.first && i > 0:
				return "a first caller behind another"
			}
		}
		if g.r.by[f.t] != nil {
			return "a tenant both queued and kept"
		}
		n += f.live()
	}
	firsts := 0
	for w := q.firsts.head; w != nil; w = w.next {
		if !w.first || w.granted || w.flow.live() == 0 || w.flow.waiters[w.flow.head] != w {
			return "firsts holds a caller that is not a queued first"
		}
		firsts++
	}
	kept, keptWeight := 0, int64(0)
	for k, prev := g.r.order.head, (*keptSlot)(nil); k != nil; prev, k = k, k.next {
		if g.r.by[k.t] != k || k.prev != prev || (prev != nil && prev.until > k.until) {
			return "the reserve's list and map disagree, or the list is out of order"
		}
		kept++
		keptWeight += int64(k.weight)
	}
	switch state := g.state.Load(); {
	case q.n != n:
		return fmt.Sprintf("n %d, %d callers in flows", q.n, n)
	case q.weight != weight:
		return fmt.Sprintf("queue weight %d, flows weigh %d", q.weight, weight)
	case kept != len(g.r.by) || keptWeight != g.r.weight:
		return fmt.Sprintf("reserve: %d in the list, %d in the map, weight %d against %d", kept, len(g.r.by), keptWeight, g.r.weight)
	case len(g.r.by) > 0 && g.reserve == 0:
		return "a tenant kept without a reserve"
	case (len(q.flows) > 0 || kept > 0) != (state&gateQueued != 0):
		return "queued bit"
	case uint32(state) > g.capacity:
		return fmt.Sprintf("%d slots in use, capacity %d", uint32(state), g.capacity)
	case q.n > 0 && g.free() > 0 && (g.free() > g.keptLocked() || waitsHoldingNone(g) || firsts > 0):
		return fmt.Sprintf("%d slots free (%d kept) while a caller may take one", g.free(), g.keptLocked())
	case q.n > 0 && g.free() > 0 && !g.watched:
		return "callers wait on kept slots, and nothing will poke the gate"
	case q.n == 0 && kept > 0:
		return "slots kept while no caller waits"
	}
	return ""
}

// reserveGate returns a gate of capacity 4 keeping 1 slot, on a clock
// that stands still, with H holding 3 slots and L 1 (their words count
// them), and H's next caller waiting.
func reserveGate(t *testing.T) (g *fairGate, h, l *tenant, hw *fairWaiter) {
	g = newFairGate(4, 1, 100, func() int64 { return 0 })
	h, l = &tenant{id: "h"}, &tenant{id: "l"}
	for range 3 {
		h.word.Add(1)
		require.Nil(t, g.enter(h, 1))
	}
	l.word.Add(1)
	require.Nil(t, g.enter(l, 1))
	h.word.Add(1)
	hw = g.enter(h, 1)
	require.NotNil(t, hw)
	return g, h, l, hw
}

// release ends a lease of t at g, as Manager.release does.
func gateRelease(g *fairGate, t *tenant) {
	g.release(t, 0)
	t.word.Add(^uint64(0))
}

// TestFairReserveOnlyWhileCallersWait: once no caller waits, the reserve
// forgets the tenants it kept, and the hot path grants again.
func TestFairReserveOnlyWhileCallersWait(t *testing.T) {
	g, h, l, hw := reserveGate(t)
	gateRelease(g, l)
	require.Len(t, g.r.by, 1, "l was not kept")
	require.False(t, hw.granted)
	gateRelease(g, h) // two free, one kept: h's caller
	require.True(t, hw.granted)
	require.Empty(t, g.r.by)
	require.Zero(t, g.state.Load()&gateQueued)
	require.True(t, g.tryTake())
}

// TestFairReserveKeptTenantBackWithTwoCallers: a kept tenant whose two
// callers both counted their leases before either reached the gate still
// takes its kept slot with the first.
func TestFairReserveKeptTenantBackWithTwoCallers(t *testing.T) {
	g, _, l, hw := reserveGate(t)
	gateRelease(g, l)
	l.word.Add(2)
	require.Nil(t, g.enter(l, 1), "the kept slot went elsewhere")
	require.False(t, hw.granted)
	require.NotNil(t, g.enter(l, 1))
}

// TestFairReserveMovedTenantNotKept: a lease that ends on a client its
// tenant has left does not keep a slot there for it.
func TestFairReserveMovedTenantNotKept(t *testing.T) {
	g, _, l, hw := reserveGate(t)
	l.word.Store(1 << genShift) // moved: its word counts its new binding, where it holds nothing
	g.release(l, 0)             // on its old binding, of generation 0
	require.Empty(t, g.r.by)
	require.True(t, hw.granted, "the slot was kept for a tenant that left")
}

// TestFairReservePromotesATenantThatHoldsNone: a tenant whose caller
// came while it held a lease, and whose last lease then ends, may take a
// kept slot: it holds none now.
func TestFairReservePromotesATenantThatHoldsNone(t *testing.T) {
	g := newFairGate(4, 2, 100, func() int64 { return 0 })
	h, l1, l2, x := &tenant{id: "h"}, &tenant{id: "l1"}, &tenant{id: "l2"}, &tenant{id: "x"}
	enter := func(tt *tenant) *fairWaiter {
		tt.word.Add(1)
		return g.enter(tt, 1)
	}
	for _, tt := range []*tenant{h, h, l1, l2} {
		require.Nil(t, enter(tt))
	}
	hw := enter(h)
	require.NotNil(t, hw)
	gateRelease(g, l1)       // kept: one slot free, for l1
	require.Nil(t, enter(x)) // x holds none: it may take it
	gateRelease(g, l2)       // kept: one slot free, two kept
	xw := enter(x)           // x holds one: it waits
	require.NotNil(t, xw)
	gateRelease(g, x) // x holds none: its caller may take a kept slot
	require.True(t, xw.granted, "x, holding no lease, waits while slots are kept")
	require.False(t, hw.granted)
}
