package mongotenant

import (
	"context"
	"hash/fnv"
	"strconv"
)

// A Strategy decides which tenants share a client by naming each tenant's
// client group. Its result must depend on the tenant ID only, the same in
// every process and version.
type Strategy interface {
	Group(tenantID string) string
}

// WithStrategy sets how tenants map to clients. Default [Dedicated].
func WithStrategy(s Strategy) Option {
	return WithRouter(func(_ context.Context, id string, r *Route) error {
		r.Group = s.Group(id)
		return nil
	})
}

type dedicated struct{}

func (dedicated) Group(id string) string { return id }

// Dedicated gives every tenant a client of its own: full isolation, at the
// cost of monitoring sockets on every server for every client.
func Dedicated() Strategy { return dedicated{} }

type shared struct{}

func (shared) Group(string) string { return "shared" }

// Shared serves every tenant from one client, each in its own database: the
// fewest sockets, no isolation but bulkheads ([WithMaxLeases], tiers).
func Shared() Strategy { return shared{} }

type grouped int

func (g grouped) Group(id string) string { return "group-" + strconv.Itoa(GroupOf(id, int(g))) }

// Grouped spreads tenants over n shared clients by a hash that is the same
// in every process: [GroupOf]. n below 1 is taken as 1.
func Grouped(n int) Strategy { return grouped(max(n, 1)) }

// GroupOf returns tenantID's group in [0, n): jump consistent hash (Lamping
// and Veach) over 64-bit FNV-1a, so it never changes between processes or
// releases, and growing n to n+1 moves only about 1/(n+1) of tenants. n
// below 1 is taken as 1.
func GroupOf(tenantID string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(tenantID))
	key := h.Sum64()
	var b, j int64 = -1, 0
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}
