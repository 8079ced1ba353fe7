package mongotenant

import (
	"cmp"
	"context"
	"slices"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
)

// GroupStats is a snapshot of one client group: the clients of a group the
// strategy names, or all dedicated clients together ([DedicatedGroup]).
// Gauges describe the moment of the call; command counters run from [New].
type GroupStats struct {
	Group string

	Clients          int // cached clients
	Retiring         int // clients out of the cache, serving their last leases or disconnecting
	Tenants          int // tenants bound to its cached clients
	MaxConnections   int // the sum of its cached clients' pool sizes
	OpenConnections  int // pooled connections open, on cached and retiring clients
	InUseConnections int // pooled connections checked out

	// With WithFairSharing, on its cached clients; 0 without.
	FairCapacity int // the sum of their capacities
	FairInUse    int // leases holding a turn
	FairKept     int // free slots kept for tenants that just left (WithFairReserve)
	FairWaiting  int // acquisitions waiting for a turn

	// With WithCommandStats; 0 without.
	Commands        uint64        // commands that ended, failed or not
	CommandFailures uint64        // commands that failed
	SlowCommands    uint64        // commands that took the threshold or longer
	CommandTime     time.Duration // their total duration
}

// group is what the Manager keeps of a client group for as long as it
// lives: its name and its command counters. Clients point to theirs
// through their pool counters, which recycling moves to another group.
// Successes and failures are counted apart, so that a reader sees each
// of them grow monotonically: a total and its failures, read one after
// the other, could show more failures than commands.
type group struct {
	name         string
	succeeded    atomic.Uint64
	failed       atomic.Uint64
	slowCommands atomic.Uint64
	commandTime  atomic.Int64 // ns
}

// groupLocked returns the group named name, made on first use. The caller
// holds m.mu.
func (m *Manager) groupLocked(name string) *group {
	g := m.groups[name]
	if g == nil {
		g = &group{name: name}
		m.groups[name] = g
	}
	return g
}

// GroupStats returns a snapshot per client group, sorted by group: every
// group that has had a client since [New]. It costs O(clients + groups)
// under the lock that client creation takes, like [Manager.Stats].
func (m *Manager) GroupStats() []GroupStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	byName := make(map[*group]*GroupStats, len(m.groups))
	out := make([]GroupStats, 0, len(m.groups))
	for _, g := range m.groups {
		failed := g.failed.Load()
		out = append(out, GroupStats{
			Group:           g.name,
			Commands:        g.succeeded.Load() + failed,
			CommandFailures: failed,
			SlowCommands:    g.slowCommands.Load(),
			CommandTime:     time.Duration(g.commandTime.Load()),
		})
	}
	slices.SortFunc(out, func(a, b GroupStats) int { return cmp.Compare(a.Group, b.Group) })
	for i := range out {
		byName[m.groups[out[i].Group]] = &out[i]
	}
	for _, c := range m.cached {
		gs := byName[c.pool.group.Load()]
		gs.Clients++
		gs.Tenants += c.nMembers
		gs.MaxConnections += int(c.key.poolSize)
		gs.OpenConnections += int(c.pool.open.Load())
		gs.InUseConnections += int(c.pool.inUse.Load())
		if c.gate != nil {
			inUse, kept, waiting := c.gate.snapshot()
			gs.FairCapacity += int(c.gate.capacity)
			gs.FairInUse += inUse
			gs.FairKept += kept
			gs.FairWaiting += waiting
		}
	}
	for c := range m.retiring {
		if c.pool == nil {
			continue
		}
		gs := byName[c.pool.group.Load()]
		gs.Retiring++
		gs.OpenConnections += int(c.pool.open.Load())
		gs.InUseConnections += int(c.pool.inUse.Load())
	}
	return out
}

// WithCommandStats counts the commands of every client, per client group,
// in [GroupStats]: commands, failures, and commands that took slow or
// longer. It adds a command monitor to each client, after the Manager's
// accounting and before a CommandMonitor set with [WithClientOptions],
// which still receives every event. Default off; slow 0 counts no command
// as slow.
func WithCommandStats(slow time.Duration) Option {
	return func(c *config) { c.commandStats, c.slowCommand = true, slow }
}

// commandMonitor counts the commands of the client whose counters p are,
// then calls the user's monitor, if any.
func (m *Manager) commandMonitor(p *poolCounters, user *event.CommandMonitor) *event.CommandMonitor {
	slow := m.cfg.slowCommand
	count := func(d time.Duration, failed bool) {
		g := p.group.Load()
		if failed {
			g.failed.Add(1)
		} else {
			g.succeeded.Add(1)
		}
		g.commandTime.Add(int64(d))
		if slow > 0 && d >= slow {
			g.slowCommands.Add(1)
		}
	}
	cm := &event.CommandMonitor{
		Succeeded: func(ctx context.Context, e *event.CommandSucceededEvent) { count(e.Duration, false) },
		Failed:    func(ctx context.Context, e *event.CommandFailedEvent) { count(e.Duration, true) },
	}
	if user == nil {
		return cm
	}
	cm.Started = user.Started
	if user.Succeeded != nil {
		cm.Succeeded = func(ctx context.Context, e *event.CommandSucceededEvent) {
			count(e.Duration, false)
			user.Succeeded(ctx, e)
		}
	}
	if user.Failed != nil {
		cm.Failed = func(ctx context.Context, e *event.CommandFailedEvent) {
			count(e.Duration, true)
			user.Failed(ctx, e)
		}
	}
	return cm
}
