package mongotenant_test

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"testing"

	"github.com/mongotenant/mongotenant"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlanCapacity(t *testing.T) {
	reference := mongotenant.PlanInput{
		ServerMaxConnections: 10000,
		ActiveTenants:        1000,
		PeakConcurrency:      5,
		AppInstances:         1,
		Nodes:                1,
		MonitoringMode:       "poll",
	}
	with := func(f func(*mongotenant.PlanInput)) mongotenant.PlanInput {
		in := reference
		f(&in)
		return in
	}
	tests := []struct {
		name       string
		in         mongotenant.PlanInput
		strategy   string
		pool       uint64
		maxClients int
		groups     int
		peak       int
		note       string // a substring of one of the notes
	}{{
		// The reference design answers pool 5 for 1000 users and counts 5000
		// connections; it leaves out the 1000 monitoring sockets.
		name: "reference example", in: reference,
		strategy: "dedicated", pool: 5, maxClients: 1000, peak: 1000*5 + 1000*1,
	}, {
		name: "reference in stream mode", in: with(func(in *mongotenant.PlanInput) { in.MonitoringMode = "stream" }),
		strategy: "dedicated", pool: 5, maxClients: 1000, peak: 1000*5 + 1000*2,
	}, {
		name: "auto counts as stream", in: with(func(in *mongotenant.PlanInput) { in.MonitoringMode = "auto" }),
		strategy: "dedicated", pool: 5, maxClients: 1000, peak: 7000,
	}, {
		// 4 instances × 1000 clients × (1+5) = 24000: dedicated fits only
		// with pool 1. 10 groups of pool ⌈1250/10⌉ cover each instance's
		// share of the 5000 concurrent operations.
		name: "four app instances", in: with(func(in *mongotenant.PlanInput) { in.AppInstances = 4 }),
		strategy: "grouped", pool: 125, maxClients: 10, groups: 10, peak: 4 * 10 * (1 + 125),
		note: "fit only with pool 1",
	}, {
		// Atlas M10: 1000 clients in stream mode hold 2000 monitoring
		// sockets on every node, over the 1500 limit before any query, and
		// grouping cannot cover 5000 concurrent operations either.
		name: "Atlas M10 replica set",
		in: mongotenant.PlanInput{
			ServerMaxConnections: 1500, Nodes: 3, ActiveTenants: 1000, MonitoringMode: "stream",
		},
		strategy: "shared", pool: 1498, maxClients: 1, peak: 1500,
		note: "2000 of them monitoring sockets",
	}, {
		name: "defaults", in: mongotenant.PlanInput{ServerMaxConnections: 1000, ActiveTenants: 10},
		strategy: "dedicated", pool: 5, maxClients: 10, peak: 60,
	}, {
		name: "reserved connections",
		in:   with(func(in *mongotenant.PlanInput) { in.ReservedConnections = 4500 }),
		// 5500 left: dedicated needs 6000, so 10 groups of pool 500.
		strategy: "grouped", pool: 500, maxClients: 10, groups: 10, peak: 5010,
	}, {
		name:     "one tenant",
		in:       mongotenant.PlanInput{ServerMaxConnections: 100, ActiveTenants: 1, PeakConcurrency: 200},
		strategy: "shared", pool: 99, maxClients: 1, peak: 100,
		note: "below the 200 concurrent operations",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := mongotenant.PlanCapacity(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.strategy, p.Strategy)
			assert.Equal(t, tt.pool, p.PoolSize)
			assert.Equal(t, tt.maxClients, p.MaxClients)
			assert.Equal(t, tt.groups, p.Groups)
			assert.Equal(t, tt.peak, p.PeakConnections)
			assert.LessOrEqual(t, p.PeakConnections, p.Budget)
			if tt.note != "" {
				assert.True(t, slices.ContainsFunc(p.Notes, func(n string) bool { return strings.Contains(n, tt.note) }),
					"no note with %q in %q", tt.note, p.Notes)
			}
		})
	}
}

func TestPlanCapacityRejectsInvalidInput(t *testing.T) {
	for name, in := range map[string]mongotenant.PlanInput{
		"no connection limit":  {ActiveTenants: 1},
		"negative limit":       {ServerMaxConnections: -1, ActiveTenants: 1},
		"no tenants":           {ServerMaxConnections: 100},
		"negative reserve":     {ServerMaxConnections: 100, ActiveTenants: 1, ReservedConnections: -1},
		"negative instances":   {ServerMaxConnections: 100, ActiveTenants: 1, AppInstances: -1},
		"negative nodes":       {ServerMaxConnections: 100, ActiveTenants: 1, Nodes: -1},
		"negative concurrency": {ServerMaxConnections: 100, ActiveTenants: 1, PeakConcurrency: -1},
		"reserve takes it all": {ServerMaxConnections: 100, ActiveTenants: 1, ReservedConnections: 100},
		"unknown monitor mode": {ServerMaxConnections: 100, ActiveTenants: 1, MonitoringMode: "Poll"},
		"load balanced mode":   {ServerMaxConnections: 100, ActiveTenants: 1, MonitoringMode: "loadBalanced"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := mongotenant.PlanCapacity(in)
			require.ErrorIs(t, err, mongotenant.ErrInvalidOption)
			assert.NotErrorIs(t, err, mongotenant.ErrPlanInfeasible)
		})
	}
}

func TestPlanCapacityInfeasible(t *testing.T) {
	// Each of 10 instances needs a monitoring socket and a pooled connection.
	p, err := mongotenant.PlanCapacity(mongotenant.PlanInput{
		ServerMaxConnections: 3, AppInstances: 10, ActiveTenants: 1,
	})
	require.ErrorIs(t, err, mongotenant.ErrPlanInfeasible)
	assert.NotErrorIs(t, err, mongotenant.ErrInvalidOption)
	assert.Equal(t, "shared", p.Strategy, "the best-effort plan")
	assert.Equal(t, uint64(1), p.PoolSize)
	assert.Equal(t, 20, p.PeakConnections)
	assert.Equal(t, 3, p.Budget)
}

// TestPlanCapacityProperties recomputes every plan from the model over a grid
// of inputs, absurd ones included.
func TestPlanCapacityProperties(t *testing.T) {
	const huge = 1 << 62
	strategies := map[string]int{}
	for _, limit := range []int{1, 3, 100, 1500, 10000, 65536, huge} {
		for _, reserved := range []int{0, limit / 2} {
			for _, instances := range []int{0, 1, 4, 10, 100, huge} {
				for _, mode := range []string{"", "poll", "stream"} {
					for _, tenants := range []int{1, 2, 50, 1000, 100000, huge} {
						for _, conc := range []int{0, 1, 5, 50, huge} {
							in := mongotenant.PlanInput{
								ServerMaxConnections: limit, ReservedConnections: reserved,
								AppInstances: instances, Nodes: 3, MonitoringMode: mode,
								ActiveTenants: tenants, PeakConcurrency: conc,
							}
							p, err := mongotenant.PlanCapacity(in)
							if errors.Is(err, mongotenant.ErrPlanInfeasible) {
								strategies["infeasible"]++
								require.Greater(t, p.PeakConnections, p.Budget, "%+v", in)
								continue
							}
							require.NoError(t, err, "%+v", in)
							checkPlan(t, in, p)
							strategies[p.Strategy]++
						}
					}
				}
			}
		}
	}
	t.Log(strategies)
	for _, s := range []string{"dedicated", "grouped", "shared", "infeasible"} {
		assert.Positive(t, strategies[s], "the grid has no %s plan", s)
	}
}

func checkPlan(t *testing.T, in mongotenant.PlanInput, p mongotenant.Plan) {
	t.Helper()
	instances, conc, m := max(in.AppInstances, 1), in.PeakConcurrency, 1
	if conc == 0 {
		conc = 5
	}
	if in.MonitoringMode == "stream" {
		m = 2
	}
	require.Equal(t, in.ServerMaxConnections-in.ReservedConnections, p.Budget, "%+v", in)
	require.LessOrEqual(t, p.PeakConnections, p.Budget, "%+v", in)
	require.GreaterOrEqual(t, p.PoolSize, uint64(1), "%+v", in)
	require.GreaterOrEqual(t, p.MaxClients, 1, "%+v", in)
	// No overflow can hide here: PeakConnections <= Budget bounds every factor.
	require.Equal(t, instances*p.MaxClients*(m+int(p.PoolSize)), p.PeakConnections, "%+v", in)
	switch p.Strategy {
	case "dedicated":
		require.Equal(t, in.ActiveTenants, p.MaxClients, "%+v", in)
		require.Equal(t, uint64(conc), p.PoolSize, "%+v", in)
		require.Zero(t, p.Groups, "%+v", in)
	case "grouped":
		require.Equal(t, p.Groups, p.MaxClients, "%+v", in)
		require.GreaterOrEqual(t, p.Groups, 2, "%+v", in)
		require.GreaterOrEqual(t, p.PoolSize, uint64(conc), "%+v", in)
		// The groups of all instances cover the peak; 128-bit products
		// because ActiveTenants×PeakConcurrency may overflow.
		hi, lo := bits.Mul64(uint64(in.ActiveTenants), uint64(conc))
		require.Zero(t, hi, "%+v", in)
		require.GreaterOrEqual(t, uint64(instances*p.Groups)*p.PoolSize, lo, "%+v", in)
	case "shared":
		require.Equal(t, 1, p.MaxClients, "%+v", in)
		require.Zero(t, p.Groups, "%+v", in)
	default:
		t.Fatalf("strategy %q for %+v", p.Strategy, in)
	}
}

func ExamplePlanCapacity() {
	// The reference design's example: 1000 tenants, 5 concurrent operations
	// each, a 10000-connection server.
	p, err := mongotenant.PlanCapacity(mongotenant.PlanInput{
		ServerMaxConnections: 10000,
		ActiveTenants:        1000,
		PeakConcurrency:      5,
	})
	if err != nil {
		panic(err)
	}
	// Apply it to each instance: mongotenant.New(uri,
	//	mongotenant.WithMaxClients(p.MaxClients), mongotenant.WithPoolSize(p.PoolSize))
	fmt.Printf("strategy=%s pool=%d maxClients=%d peak=%d/%d\n",
		p.Strategy, p.PoolSize, p.MaxClients, p.PeakConnections, p.Budget)
	// Output:
	// strategy=dedicated pool=5 maxClients=1000 peak=6000/10000
}
