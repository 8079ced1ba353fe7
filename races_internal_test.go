package mongotenant

import (
	"context"
	"testing"
)

// These tests replay interleavings that once broke a guarantee, step by
// step, holding the locks the real callers hold.

const unreachableURI = "mongodb://127.0.0.1:1/"

func newTestManager(t *testing.T, opts ...Option) *Manager {
	t.Helper()
	m, err := New(unreachableURI, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return m
}

// TestSlowGrantRechecksTheLimit: a slow-path caller that saw room under
// t.mu must not grant if the hot path took the room meanwhile.
func TestSlowGrantRechecksTheLimit(t *testing.T) {
	m := newTestManager(t, WithMaxLeases(1))
	ctx := context.Background()
	l, err := m.Acquire(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	tn := m.tenants.load("t")
	a := &acquisition{m: m, ctx: ctx, id: "t"}

	tn.mu.Lock()                    // a slow-path caller: the tenant is bound and has room
	hot, err := m.Acquire(ctx, "t") // the hot path does not take t.mu
	if err != nil {
		t.Fatal(err)
	}
	if b := a.grantLocked(tn); b != nil {
		t.Errorf("the slow path granted a second lease: %d with a limit of 1", leasesOf(tn.word.Load()))
	}
	tn.mu.Unlock()
	hot.Release()
}

// TestReaperDoesNotExpireATenantUsedMeanwhile: an Acquire and Release that
// complete between the reaper's look at a tenant and its detaching it
// leave the lease count as it was; the Release's stamp shows the use.
func TestReaperDoesNotExpireATenantUsedMeanwhile(t *testing.T) {
	clock := NewFakeClock()
	m := newTestManager(t, WithFakeClock(clock))
	ctx := context.Background()
	l, err := m.Acquire(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	tn := m.tenants.load("t")
	tn.mu.Lock()
	looked := tn.lastUsed.Load() // the reaper's look
	clock.Advance(clockResolution)
	l, err = m.Acquire(ctx, "t") // slips in, hot path
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if _, ok := tn.detachIfIdleLocked(looked); ok {
		t.Error("a tenant used since the reaper looked was detached")
	}
	tn.mu.Unlock()
	if w := tn.word.Load(); w&readyBit == 0 {
		t.Error("the hot path was left closed")
	}
	l, err = m.Acquire(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
}

// TestAdoptGivesUpAClientCloseClaimed: Close cuts retired clients short,
// including one a creation holds to recycle; that creation must then not
// take it over (once, that counted its disconnect twice and panicked).
func TestAdoptGivesUpAClientCloseClaimed(t *testing.T) {
	m, err := New(unreachableURI, WithMaxClients(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := m.Acquire(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	l.Release()

	c := newClient(m, clientKey{group: "b", poolSize: m.poolSize, dedicated: true})
	m.mu.Lock()
	m.clients[c.key] = c
	m.creating++
	victims := m.capVictimsLocked()
	m.mu.Unlock()
	c.cost = m.def.cost(c.key.poolSize)
	v := m.settle(victims, c)
	if v == nil {
		t.Fatal("settle found no client to recycle")
	}

	m.mu.Lock() // Close's cut, between settle and adopt
	m.claimLocked(v)
	m.mu.Unlock()
	if m.adopt(c, v) {
		t.Fatal("adopted a client Close is disconnecting")
	}
	if err := m.disconnect(ctx, v); err != nil {
		t.Error(err)
	}
	m.abandonCreate(c, ErrClosed)
	if err := m.Close(ctx); err != nil {
		t.Error(err)
	}
	s := m.Stats()
	if s.Recycled != 0 || s.Disconnects != s.Created || s.BudgetUsed != 0 || s.Retiring != 0 {
		t.Errorf("after Close: %+v", s)
	}
}
