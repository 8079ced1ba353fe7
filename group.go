package mongotenant

import (
	"hash/fnv"
	"reflect"
	"strconv"
)

// A Strategy decides which tenants share a client by naming each tenant's
// client group. Its result must depend on the tenant ID only, the same in
// every process and version: routes are resolved again after the route TTL
// only when a [Router] can change them, never because of the strategy. It
// is called concurrently. A panic propagates like a Router's.
type Strategy interface {
	Group(tenantID string) string
}

// WithStrategy sets how tenants map to clients. Default [Dedicated]. The
// strategy names a tenant's group before any [Router] runs; a Router may
// change it. A nil Strategy makes New fail.
func WithStrategy(s Strategy) Option { return func(c *config) { c.strategy = s } }

// isNilStrategy reports whether s is a nil pointer (or map, func...) in a
// non-nil interface, which would panic at the first Acquire.
func isNilStrategy(s Strategy) bool {
	v := reflect.ValueOf(s)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Func, reflect.Slice, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
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
