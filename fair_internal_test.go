package mongotenant

import (
	"cmp"
	"container/heap"
	"fmt"
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
	require.LessOrEqual(s.t, s.inUse, int(s.g.capacity), "more turns than the capacity")
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
			require.LessOrEqual(t, k, 1, "the light tenant waited behind %d grants to %s", k, n.name)
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
				require.True(t, g.q.empty())
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
