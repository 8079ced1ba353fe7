package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ErrLockLost is returned by [Migrator.Up] when its lock may have passed
// to another run: a renewal found it taken, or no renewal succeeded for a
// whole TTL (a stalled process, a partitioned network). The run stops
// before its next migration.
var ErrLockLost = errors.New("migrate: lock lost to another run")

// runs numbers the locks this process takes, so that two runs of one
// Migrator never mistake each other's lock for their own.
var runs atomic.Uint64

// heldLock is a lock document this run holds, and the goroutine that
// renews it until release.
type heldLock struct {
	coll  *mongo.Collection
	token string
	stop  chan struct{} // closed by release
	done  chan struct{} // closed by the renewer when it returns

	mu  sync.Mutex // guards err
	err error      // ErrLockLost once the renewer found the lock taken

	renewed atomic.Int64 // Unix ns of the last successful take or renewal
	ttl     time.Duration
	now     func() time.Time
}

// lock takes db's lock, waiting while another run holds an unexpired one,
// until ctx ends.
func (mg *Migrator) lock(ctx context.Context, db *mongo.Database) (*heldLock, error) {
	coll := db.Collection(mg.collection)
	token := mg.owner + "-" + strconv.FormatUint(runs.Add(1), 10)
	for {
		ok, err := mg.tryLock(ctx, coll, token)
		if err != nil {
			return nil, fmt.Errorf("migrate: take the lock: %w", err)
		}
		if ok {
			break
		}
		t := time.NewTimer(mg.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("migrate: waiting for another run's lock: %w", ctx.Err())
		case <-t.C:
		}
	}
	l := &heldLock{coll: coll, token: token, stop: make(chan struct{}), done: make(chan struct{}), ttl: mg.lockTTL, now: mg.now}
	l.renewed.Store(mg.now().UnixNano())
	go l.renew(context.WithoutCancel(ctx), mg)
	return l, nil
}

// tryLock creates the lock document, or takes it over if it expired.
func (mg *Migrator) tryLock(ctx context.Context, coll *mongo.Collection, token string) (bool, error) {
	now := mg.now()
	expires := now.Add(mg.lockTTL)
	_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "lock"}, {Key: "owner", Value: token}, {Key: "expires", Value: expires}})
	if err == nil {
		return true, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return false, err
	}
	err = coll.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: "lock"}, {Key: "expires", Value: bson.D{{Key: "$lt", Value: now}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "owner", Value: token}, {Key: "expires", Value: expires}}}},
	).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil // held, and not expired
	}
	return err == nil, err
}

// renew pushes the lock's expiry forward every third of the TTL until
// release, and notes it lost if another run took it meanwhile.
func (l *heldLock) renew(ctx context.Context, mg *Migrator) {
	defer close(l.done)
	t := time.NewTicker(mg.lockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, min(mg.lockTTL/3, renewTimeout))
		now := mg.now()
		res, err := l.coll.UpdateOne(rctx,
			bson.D{{Key: "_id", Value: "lock"}, {Key: "owner", Value: l.token}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: now.Add(mg.lockTTL)}}}})
		cancel()
		switch {
		case err == nil && res.MatchedCount == 0:
			l.mu.Lock()
			l.err = ErrLockLost
			l.mu.Unlock()
			return
		case err == nil:
			l.renewed.Store(now.UnixNano())
		}
		// A failed renewal is tried again at the next tick; lost reports
		// the lock lost once none has succeeded for a TTL.
	}
}

// lost returns ErrLockLost if another run took the lock, or may have.
func (l *heldLock) lost() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil && l.now().Sub(time.Unix(0, l.renewed.Load())) >= l.ttl {
		l.err = ErrLockLost
	}
	return l.err
}

// renewTimeout bounds each renewal and the release, so that a run whose
// ctx ended returns promptly even if the server does not answer.
const renewTimeout = 5 * time.Second

// release stops the renewer and deletes the lock if it is still ours,
// even if the run's ctx has ended.
func (l *heldLock) release() {
	close(l.stop)
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
	defer cancel()
	_, _ = l.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "lock"}, {Key: "owner", Value: l.token}}) // if this fails, the lock expires
}
