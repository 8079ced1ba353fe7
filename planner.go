package mongotenant

import (
	"cmp"
	"errors"
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ErrPlanInfeasible is returned by [PlanCapacity] when not even one client
// with a pool of 1 per app instance fits the connection budget.
var ErrPlanInfeasible = errors.New("mongotenant: no plan fits the connection limit")

// PlanInput describes a deployment for [PlanCapacity]. Zero values take the
// documented defaults.
type PlanInput struct {
	// ServerMaxConnections is the connection limit of one server node
	// (Atlas M10: 1500). Required.
	ServerMaxConnections int

	// ReservedConnections are kept free on every node for other clients,
	// admin tools and migrations. Default 0.
	ReservedConnections int

	// AppInstances is the number of processes, each with its own Manager.
	// Default 1.
	AppInstances int

	// Nodes is the number of data-bearing members every client monitors (the
	// replica set size). Default 1.
	Nodes int

	// MonitoringMode is the driver's serverMonitoringMode: "poll", the
	// Manager's default, holds 1 monitoring socket per node per client;
	// "stream" holds 2, and so does "auto", the driver's default, outside
	// FaaS. Default "poll".
	MonitoringMode string

	// ActiveTenants is the number of tenants with traffic at the same time,
	// across all instances. Required.
	ActiveTenants int

	// PeakConcurrency is the number of concurrent operations of one tenant at
	// peak. Default 5.
	PeakConcurrency int
}

// Plan is the recommendation of [PlanCapacity]. Apply it to every app
// instance with [WithMaxClients] and [WithPoolSize].
type Plan struct {
	// Strategy is "dedicated" (a client per tenant), "grouped" (tenants
	// hashed onto Groups clients per instance) or "shared" (one client per
	// instance): the [Dedicated], [Grouped] and [Shared] strategies of
	// [WithStrategy].
	Strategy string

	// PoolSize is each client's maxPoolSize.
	PoolSize uint64

	// MaxClients is the client cap of each app instance.
	MaxClients int

	// Groups is the number of client groups per instance when Strategy is
	// "grouped", else 0.
	Groups int

	// PeakConnections is the connection count on the busiest node at the
	// plan's peak, over all instances: monitoring sockets plus full pools.
	PeakConnections int

	// Budget is ServerMaxConnections - ReservedConnections.
	Budget int

	// Notes explains the choice, such as why a strategy was rejected.
	Notes []string
}

// PlanCapacity recommends a strategy, pool size and client cap that keep
// every server node under its connection limit. It is a pure function, safe
// for concurrent use.
//
// The model, exact and conservative: budget B = ServerMaxConnections -
// ReservedConnections per node. Every client holds m monitoring sockets on
// every node (m = 1 for "poll", 2 for "stream" or "auto") and up to its pool size in
// connections, all of which may reach one node, the primary; k clients over
// all instances thus hold at most k×(m+pool) there. Tenants have no instance
// affinity, so every instance may hold a client for every active tenant. The
// per-instance demand is D = max(PeakConcurrency,
// ⌈ActiveTenants×PeakConcurrency/AppInstances⌉): aggregate traffic spreads
// over the instances, but one tenant's burst may land on one. The first
// strategy that fits wins:
//
//   - dedicated: ActiveTenants clients per instance, pool PeakConcurrency.
//   - grouped: G clients per instance, pool max(PeakConcurrency, ⌈D/G⌉), so
//     they cover D. G is the largest value that fits from
//     min(ActiveTenants, clamp(⌈ActiveTenants/100⌉, 2, 32)) down to 2: about
//     100 tenants per group limit a noisy tenant's reach, and at most 32
//     groups keep monitoring small.
//   - shared: one client per instance, pool min(D, ⌊B/AppInstances⌋-m); Notes
//     say when that falls short of D.
//
// If not even shared with pool 1 fits, PlanCapacity returns that plan with an
// error wrapping [ErrPlanInfeasible]. Invalid input gives an error wrapping
// [ErrInvalidOption]. With a nil error, PeakConnections <= Budget.
//
// The figures hold while each instance has at most MaxClients tenants leased
// at once: clients evicted while leased (Stats.Retiring) come on top.
func PlanCapacity(in PlanInput) (Plan, error) {
	in, m, err := in.normalize()
	if err != nil {
		return Plan{}, err
	}
	b := in.ServerMaxConnections - in.ReservedConnections
	inst, t, c := in.AppInstances, in.ActiveTenants, in.PeakConcurrency
	demand := max(c, ceilDiv(satMul(t, c), inst))
	var notes []string
	plan := func(strategy string, perInstance, groups, pool int, advice ...string) Plan {
		k := satMul(inst, perInstance)
		note := fmt.Sprintf("clients in all: %d, holding %d monitoring sockets and up to %d pooled connections on the busiest node",
			k, satMul(k, m), satMul(k, pool))
		if in.Nodes > 1 {
			note += fmt.Sprintf("; the other %d nodes hold the monitoring sockets too, and pooled connections only if reads go to them", in.Nodes-1)
		}
		notes = append(notes, note)
		return Plan{
			Strategy:        strategy,
			PoolSize:        uint64(pool),
			MaxClients:      perInstance,
			Groups:          groups,
			PeakConnections: satMul(k, satAdd(m, pool)),
			Budget:          b,
			Notes:           append(notes, advice...),
		}
	}

	const bulkhead = "cap each tenant's concurrent leases (a bulkhead) so that one tenant cannot take a shared pool"

	// fits is the largest pool with which k clients in all fit the budget;
	// below 1 if none does. Dividing avoids overflow on large inputs.
	fits := func(k int) int { return b/k - m }

	k := satMul(inst, t)
	switch p := fits(k); {
	case p >= c:
		return plan("dedicated", t, 0, c), nil
	case p >= 1:
		notes = append(notes, fmt.Sprintf("dedicated rejected: %d clients fit only with pool %d, below PeakConcurrency %d", k, p, c))
	default:
		note := fmt.Sprintf("dedicated rejected: %d clients need %d connections per node even with pool 1, %d of them monitoring sockets; budget %d",
			k, satMul(k, m+1), satMul(k, m), b)
		if m > 1 {
			note += "; poll mode would halve the monitoring sockets"
		}
		notes = append(notes, note)
	}

	if g0 := min(t, max(2, min(32, ceilDiv(t, 100)))); g0 >= 2 {
		for g := g0; g >= 2; g-- {
			if p := max(c, ceilDiv(demand, g)); fits(satMul(inst, g)) >= p {
				return plan("grouped", g, g, p, fmt.Sprintf(
					"use WithStrategy(Grouped(%d)); %s", g, bulkhead)), nil
			}
		}
		p := max(c, ceilDiv(demand, 2))
		notes = append(notes, fmt.Sprintf("grouped rejected: covering %d concurrent operations per instance needs at least %d connections per node (2 groups of pool %d); budget %d",
			demand, satMul(satMul(inst, 2), satAdd(m, p)), p, b))
	}

	if p := min(demand, fits(inst)); p >= 1 {
		if p < demand {
			notes = append(notes, fmt.Sprintf("shared pool %d is below the %d concurrent operations per instance at peak: the rest wait for a connection", p, demand))
		}
		return plan("shared", 1, 0, p, bulkhead), nil
	}
	best := plan("shared", 1, 0, 1, bulkhead)
	return best, fmt.Errorf("%w: %d app instances with one client of pool 1 each need %d connections per node; budget %d",
		ErrPlanInfeasible, inst, best.PeakConnections, b)
}

// normalize checks in, fills in the defaults and returns the monitoring
// sockets per client per node.
func (in PlanInput) normalize() (PlanInput, int, error) {
	switch {
	case in.ServerMaxConnections <= 0:
		return in, 0, fmt.Errorf("%w: ServerMaxConnections %d: must be > 0", ErrInvalidOption, in.ServerMaxConnections)
	case in.ActiveTenants <= 0:
		return in, 0, fmt.Errorf("%w: ActiveTenants %d: must be > 0", ErrInvalidOption, in.ActiveTenants)
	case in.ReservedConnections < 0, in.AppInstances < 0, in.Nodes < 0, in.PeakConcurrency < 0:
		return in, 0, fmt.Errorf("%w: negative PlanInput field in %+v", ErrInvalidOption, in)
	case in.ReservedConnections >= in.ServerMaxConnections:
		return in, 0, fmt.Errorf("%w: ReservedConnections %d leaves nothing of ServerMaxConnections %d",
			ErrInvalidOption, in.ReservedConnections, in.ServerMaxConnections)
	}
	var m int
	switch in.MonitoringMode {
	case "", options.ServerMonitoringModePoll:
		m = 1
	case options.ServerMonitoringModeStream, options.ServerMonitoringModeAuto:
		m = 2
	default:
		return in, 0, fmt.Errorf("%w: MonitoringMode %q: want %q or %q",
			ErrInvalidOption, in.MonitoringMode, options.ServerMonitoringModePoll, options.ServerMonitoringModeStream)
	}
	in.AppInstances = cmp.Or(in.AppInstances, 1)
	in.Nodes = cmp.Or(in.Nodes, 1)
	in.PeakConcurrency = cmp.Or(in.PeakConcurrency, 5)
	return in, m, nil
}

// ceilDiv is ⌈a/b⌉ for a >= 0, b > 0, without the overflow of (a+b-1)/b.
func ceilDiv(a, b int) int {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

// satMul and satAdd saturate at math.MaxInt for non-negative operands, so
// absurd inputs read as "does not fit" instead of wrapping around.
func satMul(a, b int) int {
	if a != 0 && b > math.MaxInt/a {
		return math.MaxInt
	}
	return a * b
}

func satAdd(a, b int) int {
	if b > math.MaxInt-a {
		return math.MaxInt
	}
	return a + b
}
