package mongotenant

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// WithInit runs init before a tenant's first lease is handed out: the place
// to create collections and indexes for a new tenant. Concurrent first
// acquisitions run it once; the others wait for it, each until its own ctx
// ends. If init fails, that caller's Acquire fails with an error wrapping
// [ErrInit] and init's error, callers waiting for it get the same error, and
// the next Acquire runs it again. If init panics, the panic propagates to
// that caller with nothing left behind, and waiting callers try again.
//
// The Manager remembers that a tenant was initialized for as long as it
// holds the tenant: while the tenant has a client, a lease or a caller. A
// tenant evicted or reaped while idle is initialized again on its next
// Acquire, and [Manager.Forget] makes it so at once, for a tenant whose
// database was dropped or re-provisioned. So init must be idempotent, as
// createIndexes is; every process runs it too.
//
// init gets the caller's ctx and the tenant's database under the caller's
// lease. A nil init makes New fail.
func WithInit(init func(ctx context.Context, tenantID string, db *mongo.Database) error) Option {
	return func(c *config) { c.init, c.initSet = init, true }
}
