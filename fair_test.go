package mongotenant_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// fairGroup returns the GroupStats of group, failing the test if it has none.
func fairGroup(t *testing.T, m *mongotenant.Manager, group string) mongotenant.GroupStats {
	t.Helper()
	for _, g := range m.GroupStats() {
		if g.Group == group {
			return g
		}
	}
	t.Fatalf("no group %q in %+v", group, m.GroupStats())
	return mongotenant.GroupStats{}
}

// fairWaiting waits until n acquisitions wait for a turn in group.
func fairWaiting(t *testing.T, m *mongotenant.Manager, group string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d waiting for a turn", n), func() bool { return fairGroup(t, m, group).FairWaiting == n })
}

// queued is a caller that got a lease after waiting: it reports its
// tenant, and releases its lease when told to.
type queued struct {
	tenant  string
	release chan struct{}
}

// queue starts an Acquire of tenantID that, once granted, sends itself on
// granted and holds its lease until its release channel is closed. Errors
// go to errs.
func queue(m *mongotenant.Manager, tenantID string, granted chan<- queued, errs chan<- error) {
	go func() {
		l, err := m.Acquire(context.Background(), tenantID)
		if err != nil {
			errs <- err
			return
		}
		q := queued{tenant: tenantID, release: make(chan struct{})}
		granted <- q
		<-q.release
		l.Release()
	}()
}

// TestFairSharingServesLightTenantFirst: a shared client at its capacity,
// a tenant with many callers queued and another with one. The one caller
// waits behind at most one of the many, though it came last.
func TestFairSharingServesLightTenantFirst(t *testing.T) {
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithFairSharing(2))
	acquire(t, m, "light").Release() // bound, so that it queues like the noisy one
	held := []*mongotenant.Lease{acquire(t, m, "noisy"), acquire(t, m, "noisy")}

	granted, errs := make(chan queued, 10), make(chan error, 10)
	for range 5 {
		queue(m, "noisy", granted, errs)
	}
	fairWaiting(t, m, "shared", 5)
	queue(m, "light", granted, errs)
	fairWaiting(t, m, "shared", 6)

	var order []string
	held[0].Release()
	first := <-granted
	order = append(order, first.tenant)
	held[1].Release()
	second := <-granted
	order = append(order, second.tenant)
	require.Contains(t, order, "light", "the light tenant waited behind more than one noisy caller: %v", order)
	require.Equal(t, 2, fairGroup(t, m, "shared").FairInUse)

	// The rest are served in turn as leases are released.
	rest := []queued{first, second}
	for served := 2; served < 6; served++ {
		close(rest[0].release)
		rest = append(rest[1:], <-granted)
	}
	for _, q := range rest {
		close(q.release)
	}
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	waitFor(t, "every lease released", func() bool { return m.Stats().Leases == 0 })
	g := fairGroup(t, m, "shared")
	assert.Zero(t, g.FairInUse)
	assert.Zero(t, g.FairWaiting)
	assert.Equal(t, 2, g.FairCapacity)
}

// TestFairSharingRefusesAtDeadline: a caller whose turn does not come
// before its ctx ends fails with ErrTenantBusy and ctx's error, and leaves
// nothing behind: no lease, no queued turn.
func TestFairSharingRefusesAtDeadline(t *testing.T) {
	for _, strategy := range []mongotenant.Strategy{mongotenant.Shared(), mongotenant.Grouped(1)} {
		t.Run(fmt.Sprintf("%T", strategy), func(t *testing.T) {
			m := newManager(t, mongotenant.WithStrategy(strategy), mongotenant.WithFairSharing(1))
			acquire(t, m, "b").Release()
			held := acquire(t, m, "a")
			group := m.GroupStats()[0].Group

			// Both paths: a cached tenant (the hot path finds no turn) and
			// a new one (the slow path does).
			for _, id := range []string{"b", "c"} {
				_, err := m.Acquire(short(t), id)
				require.ErrorIs(t, err, mongotenant.ErrTenantBusy)
				require.ErrorIs(t, err, context.DeadlineExceeded)
			}
			s := m.Stats()
			assert.Equal(t, uint64(2), s.RefusedBusy)
			assert.Equal(t, uint64(2), s.Waits)
			assert.Equal(t, 1, s.Leases)
			assert.Zero(t, s.Waiting)
			g := fairGroup(t, m, group)
			assert.Equal(t, 1, g.FairInUse)
			assert.Zero(t, g.FairWaiting)

			got := acquireLater(m, "c")
			fairWaiting(t, m, group, 1)
			held.Release()
			require.NoError(t, <-got)
			waitFor(t, "no lease", func() bool { return m.Stats().Leases == 0 })
			assert.Zero(t, fairGroup(t, m, group).FairInUse)
		})
	}
}

// TestFairSharingLoneTenantUsesWholeCapacity: alone, a tenant holds as
// many leases as the capacity without waiting, and one more waits.
func TestFairSharingLoneTenantUsesWholeCapacity(t *testing.T) {
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithPoolSize(4), mongotenant.WithFairSharing(0))
	var ls []*mongotenant.Lease
	for range 4 {
		ls = append(ls, acquire(t, m, "alone"))
	}
	assert.Zero(t, m.Stats().Waits)
	g := fairGroup(t, m, "shared")
	assert.Equal(t, 4, g.FairCapacity, "the capacity defaults to the pool size")
	assert.Equal(t, 4, g.FairInUse)
	_, err := m.Acquire(short(t), "alone")
	require.ErrorIs(t, err, mongotenant.ErrTenantBusy)
	for _, l := range ls {
		l.Release()
	}
}

// TestFairSharingWeights: callers of a tenant of weight 3 and of one of
// weight 1, all queued, are served 3 to 1.
func TestFairSharingWeights(t *testing.T) {
	tierOf := func(_ context.Context, id string) (string, error) { return id, nil }
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithFairSharing(1),
		mongotenant.WithTiers(tierOf, map[string]mongotenant.Tier{"gold": {Weight: 3}, "free": {}}))
	acquire(t, m, "free").Release()
	held := acquire(t, m, "gold")

	granted, errs := make(chan queued, 60), make(chan error, 60)
	for range 30 {
		queue(m, "gold", granted, errs)
		queue(m, "free", granted, errs)
	}
	fairWaiting(t, m, "shared", 60)
	held.Release()
	count := map[string]int{}
	var all []queued
	for range 40 {
		q := <-granted
		count[q.tenant]++
		all = append(all, q)
		close(q.release)
	}
	for range 20 {
		all = append(all, <-granted)
		close(all[len(all)-1].release)
	}
	assert.Equal(t, map[string]int{"gold": 30, "free": 10}, count)
	waitFor(t, "no lease", func() bool { return m.Stats().Leases == 0 })
}

// TestFairSharingWithBulkhead: a tenant's bulkhead still caps it below
// the capacity, and its callers waiting at the bulkhead hold no turn.
func TestFairSharingWithBulkhead(t *testing.T) {
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithFairSharing(3), mongotenant.WithMaxLeases(2))
	a1, a2 := acquire(t, m, "a"), acquire(t, m, "a")
	_, err := m.Acquire(short(t), "a")
	require.ErrorIs(t, err, mongotenant.ErrTenantBusy)
	assert.Equal(t, 2, fairGroup(t, m, "shared").FairInUse)
	b := acquire(t, m, "b") // the third turn
	assert.Equal(t, 3, fairGroup(t, m, "shared").FairInUse)
	for _, l := range []*mongotenant.Lease{a1, a2, b} {
		l.Release()
	}
	assert.Zero(t, fairGroup(t, m, "shared").FairInUse)
}

// TestFairSharingDedicatedHasNoQueue: a client made for one tenant is not
// shared, so it has no fair queue.
func TestFairSharingDedicatedHasNoQueue(t *testing.T) {
	m := newManager(t, mongotenant.WithFairSharing(1))
	l1, l2 := acquire(t, m, "a"), acquire(t, m, "a")
	assert.Zero(t, m.Stats().Waits)
	assert.Zero(t, fairGroup(t, m, mongotenant.DedicatedGroup).FairCapacity)
	l1.Release()
	l2.Release()
}

// TestFairSharingInitRunsBeforeTheTurn: a new tenant's init hook runs
// while the client is full, and its caller then waits for its turn. An
// init hook that fails or panics leaves no turn and no lease behind.
func TestFairSharingInitRunsBeforeTheTurn(t *testing.T) {
	inits := make(chan string, 10)
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithFairSharing(1),
		mongotenant.WithInit(func(_ context.Context, id string, _ *mongo.Database) error {
			inits <- id
			switch id {
			case "fails":
				return errors.New("no")
			case "panics":
				panic("init")
			}
			return nil
		}))
	held := acquire(t, m, "a")
	<-inits

	got := acquireLater(m, "b")
	require.Equal(t, "b", <-inits, "init runs while the client is full")
	fairWaiting(t, m, "shared", 1)

	_, err := m.Acquire(context.Background(), "fails")
	require.ErrorIs(t, err, mongotenant.ErrInit)
	<-inits
	func() {
		defer func() { require.Equal(t, "init", recover()) }()
		_, _ = m.Acquire(context.Background(), "panics")
	}()
	<-inits
	g := fairGroup(t, m, "shared")
	assert.Equal(t, 1, g.FairInUse)
	assert.Equal(t, 1, g.FairWaiting)

	held.Release()
	require.NoError(t, <-got)
	waitFor(t, "no lease", func() bool { return m.Stats().Leases == 0 })
	assert.Zero(t, fairGroup(t, m, "shared").FairInUse)
}

// TestFairSharingCloseEndsWaits: Close fails the callers waiting for a
// turn with ErrClosed.
func TestFairSharingCloseEndsWaits(t *testing.T) {
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithFairSharing(1))
	held := acquire(t, m, "a")
	got := acquireLater(m, "b")
	fairWaiting(t, m, "shared", 1)
	closed := make(chan error, 1)
	go func() { closed <- m.Close(context.Background()) }()
	require.ErrorIs(t, <-got, mongotenant.ErrClosed)
	held.Release()
	require.NoError(t, <-closed)
	assert.Equal(t, uint64(1), m.Stats().RefusedClosed)
}

// TestFairSharingWaiterFollowsItsTenant: a caller waiting for a turn when
// its tenant leaves the client (Evict) is not served on the client the
// tenant left: it goes round again, to the tenant's new client; the old
// one is disconnected after its last lease.
func TestFairSharingWaiterFollowsItsTenant(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithFairSharing(1))
	acquire(t, m, "b").Release()
	held := acquire(t, m, "a")
	granted, errs := make(chan queued, 1), make(chan error, 1)
	queue(m, "b", granted, errs)
	fairWaiting(t, m, "shared", 1)

	require.NoError(t, m.Evict(ctx, "a"))
	require.NoError(t, m.Evict(ctx, "b"))
	assert.Equal(t, 1, m.Stats().Retiring, "the client waits for its leases")

	held.Release()
	q := <-granted
	s := m.Stats()
	assert.Equal(t, uint64(2), s.Created, "the waiter went round to a new client")
	assert.Equal(t, 1, s.Clients)
	assert.Equal(t, 1, fairGroup(t, m, "shared").FairInUse)
	close(q.release)
	waitFor(t, "the old client disconnected", func() bool { s := m.Stats(); return s.Retiring == 0 && s.Leases == 0 })
	assert.Equal(t, uint64(1), m.Stats().Disconnects)
}

// TestFairSharingWaiterMovesWithItsTenant: a caller waiting for a turn
// when its tenant moves to another client (a new route) is told at once:
// it gets its lease on the new, idle client while the old one stays full.
func TestFairSharingWaiterMovesWithItsTenant(t *testing.T) {
	var vip atomic.Bool
	router := func(_ context.Context, id string, r *mongotenant.Route) error {
		if id == "b" && vip.Load() {
			r.Group = "vip"
		}
		return nil
	}
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithFairSharing(1),
		mongotenant.WithRouter(router), mongotenant.WithMaxLeases(1))
	acquire(t, m, "b").Release()
	held := acquire(t, m, "a")
	defer held.Release()
	granted, errs := make(chan queued, 1), make(chan error, 1)
	queue(m, "b", granted, errs)
	fairWaiting(t, m, "shared", 1)

	vip.Store(true)
	require.NoError(t, m.Refresh(context.Background(), "b"))
	select {
	case q := <-granted:
		assert.Equal(t, 1, fairGroup(t, m, "vip").FairInUse)
		assert.Zero(t, fairGroup(t, m, "shared").FairWaiting)
		close(q.release)
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter stayed at the client its tenant left")
	}
}

// TestFairSharingWaiterSeesSuspension: a caller waiting for a turn when a
// Router suspends its tenant is refused, as a caller waiting at the
// bulkhead is: it asks the Routers again.
func TestFairSharingWaiterSeesSuspension(t *testing.T) {
	for _, fair := range []bool{true, false} {
		t.Run(fmt.Sprint("fair=", fair), func(t *testing.T) {
			var suspended atomic.Bool
			router := func(_ context.Context, id string, _ *mongotenant.Route) error {
				if id == "b" && suspended.Load() {
					return mongotenant.ErrTenantSuspended
				}
				return nil
			}
			opts := []mongotenant.Option{mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithRouter(router)}
			var m *mongotenant.Manager
			var held *mongotenant.Lease
			if fair { // b waits for the shared client's only turn, which a holds
				m = newManager(t, append(opts, mongotenant.WithFairSharing(1))...)
				acquire(t, m, "b").Release()
				held = acquire(t, m, "a")
			} else { // b waits at its bulkhead
				m = newManager(t, append(opts, mongotenant.WithMaxLeases(1))...)
				held = acquire(t, m, "b")
			}
			got := acquireLater(m, "b")
			waitFor(t, "a waiter", func() bool { return m.Stats().Waiting == 1 })
			suspended.Store(true)
			require.ErrorIs(t, m.Refresh(context.Background(), "b"), mongotenant.ErrTenantSuspended)
			held.Release()
			require.ErrorIs(t, <-got, mongotenant.ErrTenantSuspended)
			waitFor(t, "no lease", func() bool { return m.Stats().Leases == 0 })
		})
	}
}

// TestFairSharingWaiterAfterForget: Forget's promise that the init hook
// runs again before the tenant's next lease holds for a caller that was
// waiting for a turn when Forget ran.
func TestFairSharingWaiterAfterForget(t *testing.T) {
	var inits atomic.Int32
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithFairSharing(1),
		mongotenant.WithInit(func(_ context.Context, id string, _ *mongo.Database) error {
			if id == "b" {
				inits.Add(1)
			}
			return nil
		}))
	acquire(t, m, "b").Release()
	held := acquire(t, m, "a")
	got := acquireLater(m, "b")
	fairWaiting(t, m, "shared", 1)
	require.NoError(t, m.Forget(context.Background(), "b"))
	held.Release()
	require.NoError(t, <-got)
	require.Equal(t, int32(2), inits.Load(), "a lease was granted after Forget without the init hook running again")
}

// TestFairSharingTenantNamedLikeItsGroup: a tenant whose ID is the shared
// group's name gets a client of its own; the shared client keeps its fair
// queue.
func TestFairSharingTenantNamedLikeItsGroup(t *testing.T) {
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()), mongotenant.WithFairSharing(1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l0 := acquire(t, m, "shared")
	l1, err := m.Acquire(ctx, "a") // the shared client's turn, not taken by "shared"
	require.NoError(t, err)
	_, err = m.Acquire(short(t), "b")
	require.ErrorIs(t, err, mongotenant.ErrTenantBusy, "the shared client lost its fair queue")
	assert.Equal(t, 1, fairGroup(t, m, "shared").FairCapacity)
	l0.Release()
	l1.Release()
}

// TestFairSharingOptionIsChecked: a negative capacity is refused.
func TestFairSharingOptionIsChecked(t *testing.T) {
	_, err := mongotenant.New(unreachable, mongotenant.WithFairSharing(-1))
	require.ErrorIs(t, err, mongotenant.ErrInvalidOption)
	tierOf := func(context.Context, string) (string, error) { return "huge", nil }
	m := newManager(t, mongotenant.WithTiers(tierOf, map[string]mongotenant.Tier{"huge": {Weight: 1 << 20}}))
	_, err = m.Acquire(context.Background(), "a")
	require.ErrorIs(t, err, mongotenant.ErrRoute)
}

// TestFairReserveKeepsASlot: on a full client, a tenant that released its
// last lease keeps a slot: a tenant holding leases waits for a second free
// one, the kept tenant's next Acquire takes it at once, and so may a
// tenant holding none. Without the reserve the slot goes to the waiter.
func TestFairReserveKeepsASlot(t *testing.T) {
	for _, reserve := range []int{1, 0} {
		t.Run(fmt.Sprint("reserve ", reserve), func(t *testing.T) {
			m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()),
				mongotenant.WithFairSharing(4), mongotenant.WithFairReserve(reserve, time.Hour))
			acquire(t, m, "light").Release()
			acquire(t, m, "other").Release()
			noisy := []*mongotenant.Lease{acquire(t, m, "noisy"), acquire(t, m, "noisy"), acquire(t, m, "noisy")}
			light := acquire(t, m, "light") // the capacity is full

			granted, errs := make(chan queued, 1), make(chan error, 1)
			queue(m, "noisy", granted, errs)
			fairWaiting(t, m, "shared", 1)
			light.Release()
			if reserve == 0 {
				q := <-granted // the freed slot goes to the waiter
				require.Equal(t, "noisy", q.tenant)
				close(q.release)
				for _, l := range noisy {
					l.Release()
				}
				return
			}

			g := fairGroup(t, m, "shared")
			assert.Equal(t, 3, g.FairInUse)
			assert.Equal(t, 1, g.FairKept)
			assert.Equal(t, 1, g.FairWaiting)
			_, err := m.Acquire(short(t), "noisy")
			require.ErrorIs(t, err, mongotenant.ErrTenantBusy, "a tenant holding leases took the kept slot")

			// Bounded, so that a broken reserve fails the test: with the
			// slot kept, nothing else would free one.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			light, err = m.Acquire(ctx, "light") // the slot was kept for it
			require.NoError(t, err)
			light.Release()
			other, err := m.Acquire(ctx, "other") // holds none: it may take a kept slot
			require.NoError(t, err)
			assert.Zero(t, fairGroup(t, m, "shared").FairKept)
			other.Release()

			noisy[0].Release() // two free, one kept: the waiter's turn
			q := <-granted
			require.Equal(t, "noisy", q.tenant)
			close(q.release)
			noisy[1].Release()
			noisy[2].Release()
			select {
			case err := <-errs:
				t.Fatal(err)
			default:
			}
		})
	}
}

// TestFairReserveOptionIsChecked: negative slots or idle are refused.
func TestFairReserveOptionIsChecked(t *testing.T) {
	for _, o := range []mongotenant.Option{mongotenant.WithFairReserve(-1, time.Second), mongotenant.WithFairReserve(1, -time.Second)} {
		_, err := mongotenant.New(unreachable, mongotenant.WithFairSharing(0), o)
		require.ErrorIs(t, err, mongotenant.ErrInvalidOption)
	}
}

// granted waits for an acquireLater to succeed, failing the test with
// stuck if it has not within 10 s: a slot kept wrongly would hold it for
// good.
func granted(t *testing.T, got <-chan error, stuck string) {
	t.Helper()
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal(stuck)
	}
}

// keepLightsSlot fills m's shared client of capacity 4 (noisy holds 3
// leases, light 1), has a fourth Acquire of noisy wait, and releases
// light's lease: its slot is kept. It returns noisy's leases and the
// waiting Acquire's result.
func keepLightsSlot(t *testing.T, m *mongotenant.Manager) ([]*mongotenant.Lease, <-chan error) {
	t.Helper()
	noisy := []*mongotenant.Lease{acquire(t, m, "noisy"), acquire(t, m, "noisy"), acquire(t, m, "noisy")}
	light := acquire(t, m, "light")
	got := acquireLater(m, "noisy")
	fairWaiting(t, m, "shared", 1)
	light.Release()
	require.Equal(t, 1, fairGroup(t, m, "shared").FairKept)
	return noisy, got
}

// TestFairReserveForgetsOnTime: a slot kept for a tenant that does not
// come back goes to the waiting caller once the reserve's idle time has
// passed, though nothing else happens at the gate.
func TestFairReserveForgetsOnTime(t *testing.T) {
	m, clock := newFakeManager(t, mongotenant.WithStrategy(mongotenant.Shared()),
		mongotenant.WithFairSharing(4), mongotenant.WithFairReserve(1, 50*time.Millisecond))
	noisy, got := keepLightsSlot(t, m)

	require.True(t, tick(t, clock, 40*time.Millisecond))
	assert.Equal(t, 1, fairGroup(t, m, "shared").FairWaiting, "the slot was not kept for its idle time")
	require.True(t, tick(t, clock, 20*time.Millisecond))
	granted(t, got, "the slot is still kept after the reserve's idle time")
	g := fairGroup(t, m, "shared")
	assert.Zero(t, g.FairKept)
	assert.Zero(t, g.FairWaiting)
	for _, l := range noisy {
		l.Release()
	}
}

// TestFairReserveForgetsATenantThatLeaves: a slot kept for a tenant is
// given up when the tenant leaves the client (here by Evict), not held
// for a tenant that will not come back to it.
func TestFairReserveForgetsATenantThatLeaves(t *testing.T) {
	m := newManager(t, mongotenant.WithStrategy(mongotenant.Shared()),
		mongotenant.WithFairSharing(4), mongotenant.WithFairReserve(1, time.Hour))
	noisy, got := keepLightsSlot(t, m)

	require.NoError(t, m.Evict(context.Background(), "light"))
	granted(t, got, "the slot is still kept for a tenant that left the client")
	assert.Zero(t, fairGroup(t, m, "shared").FairKept)
	for _, l := range noisy {
		l.Release()
	}
}
