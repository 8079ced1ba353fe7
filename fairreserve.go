package mongotenant

// A fairReserve remembers, at a full fairGate, the tenants that released
// their last lease there a moment ago: the gate keeps a slot free for
// each (up to its reserve), so that the next Acquire of a light tenant,
// which was not waiting when the slot freed, does not wait for a heavy
// tenant's lease to end (see WithFairReserve). A tenant is forgotten when
// it comes back (fairGate.enter), or idle after it left.
//
// A fairReserve is not safe for concurrent use: fairGate.mu guards it.
type fairReserve struct {
	by     map[*tenant]*keptSlot
	order  list[keptSlot, *keptSlot] // the same, by until, oldest first
	weight int64                     // the sum of their weights
}

// A keptSlot is a tenant the reserve remembers, until the time until.
type keptSlot struct {
	t                   *tenant
	weight              int32
	until               int64
	listLinks[keptSlot] // in order
}

// keep remembers t, of weight weight, until until, which is never earlier
// than the until of an earlier call. t is not kept.
func (r *fairReserve) keep(t *tenant, weight int32, until int64) {
	if r.by == nil {
		r.by = make(map[*tenant]*keptSlot)
	}
	k := &keptSlot{t: t, weight: weight, until: until}
	r.by[t] = k
	r.weight += int64(weight)
	r.order.pushBack(k)
}

// drop forgets t, and reports whether it was kept.
func (r *fairReserve) drop(t *tenant) bool {
	k := r.by[t]
	if k != nil {
		r.forget(k)
	}
	return k != nil
}

// reset forgets every tenant.
func (r *fairReserve) reset() {
	if len(r.by) == 0 {
		return
	}
	clear(r.by)
	r.order, r.weight = list[keptSlot, *keptSlot]{}, 0
}

// expire forgets the tenants kept until now or earlier.
func (r *fairReserve) expire(now int64) {
	for k := r.order.head; k != nil && k.until <= now; k = r.order.head {
		r.forget(k)
	}
}

func (r *fairReserve) forget(k *keptSlot) {
	r.order.remove(k)
	delete(r.by, k.t)
	r.weight -= int64(k.weight)
}
