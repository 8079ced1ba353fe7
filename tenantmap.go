package mongotenant

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// tenantMap maps tenant IDs to their state. Lookups take no lock and write
// no shared memory, so acquisitions of different tenants on different cores
// do not slow each other down; a sync.RWMutex would make every lookup write
// the lock's reader count.
//
// It is sharded open addressing with linear probing. Writers lock their
// shard; readers load the shard's table and probe it. A reader may see a
// slightly stale table (an entry just inserted or just removed): a miss
// sends the caller to the slow path, which looks again under the lock, and
// a removed tenant is marked dropped before it leaves the map, so the
// caller's checks on the tenant itself catch it.
//
// Growing a shard copies its table under its lock: amortised O(1) per
// insert, at most tenants/mapShards pointer copies at once (about 4,000 at
// a million tenants).
type tenantMap struct {
	seed   maphash.Seed
	shards [mapShards]mapShard
}

const (
	mapShardBits = 8
	mapShards    = 1 << mapShardBits
	minTableSize = 8
)

// tombstone marks a slot whose tenant was removed, so that probes go on past
// it. Only its address is used.
var tombstone = new(tenant)

type mapShard struct {
	mu    sync.Mutex             // guards writes to table's slots, and used
	table atomic.Pointer[[]slot] // replaced, never resized in place
	used  int                    // slots holding a tenant or a tombstone
	live  int                    // slots holding a tenant
	_     [32]byte               // readers of one shard's table pointer must not share a line with another shard's writers
}

type slot = atomic.Pointer[tenant]

func newTenantMap() *tenantMap { return &tenantMap{seed: maphash.MakeSeed()} }

func (m *tenantMap) hash(id string) uint64 { return maphash.String(m.seed, id) }

func (m *tenantMap) shard(h uint64) *mapShard { return &m.shards[h>>(64-mapShardBits)] }

// load returns the tenant with id, or nil.
func (m *tenantMap) load(id string) *tenant {
	h := m.hash(id)
	tab := m.shard(h).table.Load()
	if tab == nil {
		return nil
	}
	slots := *tab
	mask := uint64(len(slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		t := slots[i].Load()
		if t == nil {
			return nil
		}
		if t.hash == h && t.id == id && t != tombstone {
			return t
		}
	}
}

// insert adds t, whose hash is set, unless a tenant with its ID is present;
// it returns the tenant now in the map under that ID.
func (m *tenantMap) insert(t *tenant) *tenant {
	s := m.shard(t.hash)
	s.mu.Lock()
	defer s.mu.Unlock()
	tab := s.table.Load()
	if tab == nil || 4*(s.used+1) > 3*len(*tab) {
		tab = s.rehashLocked()
	}
	slots := *tab
	mask := uint64(len(slots) - 1)
	free := -1
	for i := t.hash & mask; ; i = (i + 1) & mask {
		cur := slots[i].Load()
		switch {
		case cur == nil:
			if free < 0 {
				free = int(i)
				s.used++
			}
			slots[free].Store(t)
			s.live++
			return t
		case cur == tombstone:
			if free < 0 {
				free = int(i)
			}
		case cur.hash == t.hash && cur.id == t.id:
			return cur
		}
	}
}

// remove takes t out of the map, if it is there.
func (m *tenantMap) remove(t *tenant) {
	s := m.shard(t.hash)
	s.mu.Lock()
	defer s.mu.Unlock()
	tab := s.table.Load()
	if tab == nil {
		return
	}
	slots := *tab
	mask := uint64(len(slots) - 1)
	for i := t.hash & mask; ; i = (i + 1) & mask {
		switch slots[i].Load() {
		case nil:
			return
		case t:
			slots[i].Store(tombstone)
			s.live--
			return
		}
	}
}

// rehashLocked publishes a new table for the shard's live tenants, sized so
// that they fill between 3/8 and 3/4 of it after the coming insert. The
// caller holds s.mu.
func (s *mapShard) rehashLocked() *[]slot {
	size := minTableSize
	for 8*(s.live+1) > 3*size {
		size *= 2
	}
	slots := make([]slot, size)
	mask := uint64(size - 1)
	if old := s.table.Load(); old != nil {
		for i := range *old {
			t := (*old)[i].Load()
			if t == nil || t == tombstone {
				continue
			}
			j := t.hash & mask
			for slots[j].Load() != nil {
				j = (j + 1) & mask
			}
			slots[j].Store(t)
		}
	}
	s.used = s.live
	s.table.Store(&slots)
	return &slots
}

// all calls fn for every tenant in the map, shard by shard, holding no lock.
// It sees each tenant present for the whole call at least once, and may see
// tenants inserted or removed meanwhile.
func (m *tenantMap) all(fn func(*tenant) bool) {
	for i := range m.shards {
		tab := m.shards[i].table.Load()
		if tab == nil {
			continue
		}
		for j := range *tab {
			if t := (*tab)[j].Load(); t != nil && t != tombstone && !fn(t) {
				return
			}
		}
	}
}
