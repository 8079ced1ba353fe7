package mongotenant

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// A flight is work that one caller (the leader) does while others that need
// the same result wait: resolving a tenant's route, creating a client,
// running a tenant's init hook. It is x/sync/singleflight's call struct with
// two differences: each waiter waits only as long as its own ctx allows,
// and a leader that did not finish (its ctx ended, or a callback panicked)
// does not hand its failure to the waiters. They look again, and one of
// them leads.
//
// The owner of the work (a tenant, a client) keeps its flight in a field
// guarded by the owner's mutex, and creates it only when a second caller
// arrives, so that uncontended work allocates nothing.
type flight struct {
	done chan struct{} // closed by finish
	err  error         // the leader's result, set before done is closed; errRetry: look again
}

// errRetry tells waiters that the leader gave up without a result that is
// theirs to share.
var errRetry = errors.New("mongotenant: look again")

func newFlight() *flight { return &flight{done: make(chan struct{})} }

// finish publishes the leader's result. A timeout of any kind is not
// shared, whatever the leader's ctx says by now: it may be the leader's own
// deadline (the driver refuses to send an operation whose deadline is
// nearer than a round trip before ctx.Err() says so, and a socket timeout
// set from the deadline does not wrap context.DeadlineExceeded), and a
// waiter has a deadline of its own. Waiters retry. f may be nil (nobody
// waited).
func (f *flight) finish(err error) {
	if f == nil {
		return
	}
	if err != nil && (isContextError(err) || mongo.IsTimeout(err)) {
		err = errRetry
	}
	f.err = err
	close(f.done)
}

// wait blocks until the flight is done, ctx ends, or closing is closed
// (the Manager is closing). It returns nil or errRetry when the caller
// should look again, the leader's error when it is shared, ErrClosed, and
// ctx's error otherwise.
func (f *flight) wait(ctx context.Context, closing <-chan struct{}, what string) error {
	select {
	case <-f.done:
		return f.err
	case <-closing:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("mongotenant: waiting for %s: %w", what, ctxError(ctx))
	}
}

// isContextError reports whether err came from a context ending.
func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// ctxError is ctx's error, and its cause when it has one, so that
// errors.Is(err, context.DeadlineExceeded) holds whatever cause the caller
// attached.
func ctxError(ctx context.Context) error {
	err, cause := ctx.Err(), context.Cause(ctx)
	if cause == nil || cause == err {
		return err
	}
	return fmt.Errorf("%w: %w", err, cause)
}
