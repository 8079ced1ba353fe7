package mongotenant

import (
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// A binding is a tenant on one client: the client and the tenant's
// database on it. A lease holds the binding it was granted on, so what it
// returns never changes under it, even if the tenant moves to another
// client meanwhile.
type binding struct {
	c        *client
	name     string                         // the tenant's database name
	db       atomic.Pointer[mongo.Database] // made on first use; the client's handle cache may drop it
	gen      uint32                         // the tenant word's generation while the tenant is bound here
	gate     *fairGate                      // the client's fair gate, or nil
	left     chan struct{}                  // closed when the tenant leaves the binding; nil without a gate
	draining int32                          // leases still live after the tenant left; guarded by tenant.mu
}

// database returns the tenant's database handle on the binding's client.
func (b *binding) database() *mongo.Database {
	if db := b.db.Load(); db != nil {
		return db
	}
	db := b.c.mc.Database(b.name)
	if b.db.CompareAndSwap(nil, db) {
		b.c.handles.keep(b)
	}
	return db
}

// handlesPerClient bounds the database handles kept for a client's
// tenants. A *mongo.Database costs about 300 bytes and nine allocations;
// under Shared, a tenant that is merely cached should not hold one.
const handlesPerClient = 1024

// handleCache bounds the bindings of one client that keep a database
// handle. When it is full, the binding that made its handle longest ago
// drops it, and makes a new one on its next use.
type handleCache struct {
	mu   sync.Mutex // guards ring and next
	ring []*binding // grows to its limit, then is overwritten in turn
	next int
	max  int // set before the client is published
}

func (h *handleCache) keep(b *binding) {
	h.mu.Lock()
	var old *binding
	if len(h.ring) < h.max {
		h.ring = append(h.ring, b)
	} else {
		old, h.ring[h.next] = h.ring[h.next], b
		h.next = (h.next + 1) % h.max
	}
	h.mu.Unlock()
	if old != nil && old != b {
		old.db.Store(nil)
	}
}
