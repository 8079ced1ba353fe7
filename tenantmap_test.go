package mongotenant

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func newTestTenant(m *tenantMap, id string) *tenant {
	return &tenant{id: id, hash: m.hash(id)}
}

func TestTenantMap(t *testing.T) {
	m := newTenantMap()
	if m.load("a") != nil {
		t.Fatal("empty map found a tenant")
	}
	const n = 10000
	all := make([]*tenant, n)
	for i := range all {
		all[i] = newTestTenant(m, fmt.Sprintf("t%d", i))
		if got := m.insert(all[i]); got != all[i] {
			t.Fatalf("insert %d returned another tenant", i)
		}
	}
	if got := m.insert(newTestTenant(m, "t7")); got != all[7] {
		t.Fatal("a second insert under one ID must return the first tenant")
	}
	for i, want := range all {
		if got := m.load(want.id); got != want {
			t.Fatalf("load %d: got %p, want %p", i, got, want)
		}
	}
	for i := 0; i < n; i += 2 {
		m.remove(all[i])
	}
	m.remove(all[0]) // twice: no-op
	seen := 0
	m.all(func(*tenant) bool { seen++; return true })
	if seen != n/2 {
		t.Fatalf("all saw %d tenants, want %d", seen, n/2)
	}
	for i, want := range all {
		got := m.load(want.id)
		if i%2 == 0 && got != nil || i%2 == 1 && got != want {
			t.Fatalf("after removals, load %d = %p", i, got)
		}
	}
	// Re-inserting through tombstones, and growing past them.
	for i := 0; i < n; i += 2 {
		m.insert(all[i])
	}
	for i, want := range all {
		if m.load(want.id) != want {
			t.Fatalf("after re-insert, load %d failed", i)
		}
	}
}

// TestTenantMapConcurrent races lookups against inserts, removals and
// table growth under -race: a tenant present throughout is always found.
func TestTenantMapConcurrent(t *testing.T) {
	m := newTenantMap()
	stable := make([]*tenant, 100)
	for i := range stable {
		stable[i] = m.insert(newTestTenant(m, fmt.Sprintf("stable%d", i)))
	}
	var stop atomic.Bool
	var writers, readers sync.WaitGroup
	for w := range 2 {
		writers.Go(func() {
			for i := 0; i < 20000; i++ {
				tn := m.insert(newTestTenant(m, fmt.Sprintf("churn%d-%d", w, i)))
				if i%3 != 0 {
					m.remove(tn)
				}
			}
		})
	}
	for range 2 {
		readers.Go(func() {
			for i := 0; !stop.Load(); i++ {
				want := stable[i%len(stable)]
				if got := m.load(want.id); got != want {
					t.Errorf("stable tenant %s not found", want.id)
					return
				}
			}
		})
	}
	writers.Wait()
	stop.Store(true)
	readers.Wait()
	if got := m.load("churn1-19998"); got == nil {
		t.Error("a tenant inserted and kept is found")
	}
}
