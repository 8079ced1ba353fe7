package mongotenant

import (
	"slices"
	"testing"
	"time"
)

// TestIdleVictims table-tests the reaper's decision with a fake clock.
func TestIdleVictims(t *testing.T) {
	const timeout = int64(10 * time.Second)
	mk := func(lastUsed, leases int64, _ bool) *tenant {
		tn := &tenant{}
		tn.lastUsed.Store(lastUsed)
		tn.state.Store(leases)
		return tn
	}
	sec := int64(time.Second)
	for _, tc := range []struct {
		name    string
		now     int64
		tenants map[string]*tenant
		victims []string
		next    time.Duration
	}{
		{"empty", 100 * sec, map[string]*tenant{}, nil, 10 * time.Second},
		{"fresh", 100 * sec, map[string]*tenant{"a": mk(99*sec, 0, false)}, nil, 9 * time.Second},
		{"exactly timeout", 100 * sec, map[string]*tenant{"a": mk(90*sec, 0, false)}, []string{"a"}, 10 * time.Second},
		{"leased is never idle", 100 * sec, map[string]*tenant{"a": mk(0, 1, false)}, nil, 10 * time.Second},
		{"mixed", 100 * sec, map[string]*tenant{
			"old":    mk(50*sec, 0, false),
			"recent": mk(97*sec, 0, false),
			"newer":  mk(99*sec, 0, false),
			"leased": mk(10*sec, 2, false),
		}, []string{"old"}, 7 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for id, tn := range tc.tenants {
				tn.id = id
			}
			victims, next := idleVictims(tc.tenants, tc.now, timeout)
			var ids []string
			for _, v := range victims {
				ids = append(ids, v.id)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, tc.victims) {
				t.Errorf("victims = %v, want %v", ids, tc.victims)
			}
			if next != tc.next {
				t.Errorf("next = %v, want %v", next, tc.next)
			}
		})
	}
}

func TestLRUVictimPrefersUnleased(t *testing.T) {
	m := &Manager{clients: map[clientKey]*client{}}
	add := func(group string, lastUsed, leases int64) {
		c := &client{m: m, key: clientKey{group: group}, created: lastUsed, members: map[string]*tenant{}}
		tn := &tenant{id: group, c: c}
		tn.lastUsed.Store(lastUsed)
		tn.state.Store(leases)
		c.members[group] = tn
		c.refs.Store(2)
		m.clients[c.key] = c
	}
	add("oldest-leased", 1, 1)
	add("old-idle", 5, 0)
	add("new-idle", 9, 0)
	if v := m.lruClientLocked(false); v.key.group != "old-idle" {
		t.Fatalf("victim = %s, want old-idle", v.key.group)
	}
	m.clients[clientKey{group: "old-idle"}].members["old-idle"].state.Store(1)
	m.clients[clientKey{group: "new-idle"}].members["new-idle"].state.Store(1)
	if v := m.lruClientLocked(false); v.key.group != "oldest-leased" {
		t.Fatalf("all leased: victim = %s, want oldest-leased", v.key.group)
	}
	if v := m.lruClientLocked(true); v != nil {
		t.Fatalf("unleased only: victim = %s, want none", v.key.group)
	}
}

func TestTenantIDsStayOutOfWarnLogsByDefault(t *testing.T) {
	m := &Manager{}
	if a := m.tenantAttr("acme"); !a.Equal(a) || a.Key != "" {
		t.Fatalf("default attr = %v, want empty", a)
	}
	m.cfg.logTenantIDs = true
	if a := m.tenantAttr("acme"); a.Key != "tenant" || a.Value.String() != "acme" {
		t.Fatalf("opted-in attr = %v", a)
	}
}
