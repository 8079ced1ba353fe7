package mongotenant

import "context"

// Recycling: when a new client needs room at the cap or in the budget, and
// the client evicted to make it is unleased and was built with the same
// options (deployment, pool size, no per-tenant credentials), the new
// client takes over the evicted one's *mongo.Client instead of the Manager
// disconnecting one and connecting another. Its pooled connections and its
// monitor stay warm, and the new tenant's first operation does not wait for
// a handshake. One tenant per dedicated client still holds at every moment:
// the evicted client's tenants are detached, and it has no lease, before it
// is handed over.

// capVictimsLocked retires the clients that must make room, at the cap,
// for a client being created: the least recently used, held by an extra
// pin so that nobody disconnects them while settle decides whether one can
// be recycled. The caller holds m.mu.
func (m *Manager) capVictimsLocked() (victims []*client) {
	for m.cfg.maxClients > 0 && len(m.cached)+m.creating > m.cfg.maxClients {
		v := m.victimLocked(false, nil)
		if v == nil {
			break // every other client is being created; publish evicts instead
		}
		v.pins++
		m.retireLocked(v, EvictionLRU)
		victims = append(victims, v)
	}
	return victims
}

// settle detaches the tenants of victims, which the caller retired and
// holds a pin on, and picks one that can be recycled into c, unless c is
// nil. It lets the others go: drops the pin, and disconnects those left
// unpinned.
func (m *Manager) settle(victims []*client, c *client) (recycle *client) {
	if len(victims) == 0 {
		return nil
	}
	var gone []*client
	for _, v := range victims {
		gone = append(gone, m.detachMembers(v)...)
	}
	m.mu.Lock()
	for _, v := range victims {
		if recycle == nil && m.recyclableLocked(v, c) {
			recycle = v // keeps the pin until adopt
			continue
		}
		gone = append(gone, m.unpinLocked(v))
	}
	m.mu.Unlock()
	m.disconnectAll(context.Background(), gone)
	return recycle
}

// recyclableLocked reports whether c can take over victim v: nothing but
// the caller's pin holds v, and v was built with the options c would be.
// The caller holds m.mu.
func (m *Manager) recyclableLocked(v, c *client) bool {
	return m.cfg.recycle && c != nil && v.pins == 1 && v.state == clientRetired &&
		v.key.dedicated == c.key.dedicated &&
		v.key.cluster == c.key.cluster && v.key.poolSize == c.key.poolSize &&
		v.key.auth == nil && c.key.auth == nil
}

// adopt hands victim v's *mongo.Client to c, being created, with its
// sockets' share of the budget; c's pool figures start at zero. It returns
// false, and lets v go, if Close claimed v meanwhile: Close cuts retired
// clients short, held or not.
func (m *Manager) adopt(c, v *client) bool {
	m.mu.Lock()
	if v.state != clientRetired {
		m.unpinLocked(v) // Close is disconnecting it
		m.mu.Unlock()
		return false
	}
	c.mc, c.pool, c.cost, c.reserved = v.mc, v.pool, v.cost, v.reserved
	c.base = v.pool.snapshot()
	c.pool.group.Store(m.groupLocked(c.group()))
	v.pins--
	v.state = clientClosed
	m.forgetClientLocked(v)
	m.pending.Done() // v will not be disconnected
	m.mu.Unlock()
	m.recycled.Add(1)
	m.cfg.logger.Debug("mongotenant: client recycled", "from", v.key.group, "to", c.key.group)
	return true
}
