package mongotenant

import (
	"sync"
	"time"
)

// FakeClock is the Manager's clock in tests: its time moves only when the
// test calls Advance. Its zero value is not usable; call NewFakeClock.
type FakeClock struct {
	mu        sync.Mutex
	changed   *sync.Cond // broadcast when a timer is armed or stopped
	ns        int64
	origin    time.Time
	timers    map[*fakeTimer]struct{} // armed timers
	events    int                     // timers reset or stopped so far
	listeners []func(int64)
}

func NewFakeClock() *FakeClock {
	c := &FakeClock{origin: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), timers: map[*fakeTimer]struct{}{}}
	c.changed = sync.NewCond(&c.mu)
	return c
}

func (c *FakeClock) now() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ns
}

func (c *FakeClock) wall(ns int64) time.Time { return c.origin.Add(time.Duration(ns)) }

func (c *FakeClock) onAdvance(fn func(int64)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listeners = append(c.listeners, fn)
}

func (c *FakeClock) newTimer(d time.Duration) timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// Advance moves time forward by d, then fires the timers due by then.
func (c *FakeClock) Advance(d time.Duration) { c.Fire(d) }

// Fire is Advance that returns how many timers it fired, and how many
// timer events there had been, for AfterFire.
func (c *FakeClock) Fire(d time.Duration) (fired, events int) {
	c.mu.Lock()
	c.ns += int64(d)
	now := c.ns
	listeners := c.listeners
	var due []*fakeTimer
	for t := range c.timers {
		if t.at <= now {
			due = append(due, t)
			delete(c.timers, t)
		}
	}
	events = c.events
	c.changed.Broadcast()
	c.mu.Unlock()
	for _, fn := range listeners {
		fn(now)
	}
	for _, t := range due {
		select {
		case t.ch <- c.origin.Add(time.Duration(now)):
		default:
		}
	}
	return len(due), events
}

// AfterFire waits until a timer is reset or stopped after Fire returned
// events, or timeout passes, and reports whether a timer is armed: after
// the housekeeper's tick, whether it goes on.
func (c *FakeClock) AfterFire(events int, timeout time.Duration) bool {
	return c.waitFor(timeout, func() bool { return c.events != events })
}

// Armed waits until a timer is armed, or timeout passes, and reports which.
func (c *FakeClock) Armed(timeout time.Duration) bool {
	return c.waitFor(timeout, func() bool { return len(c.timers) > 0 })
}

// waitFor waits until done, called with c.mu held, reports true or timeout
// passes, and reports whether a timer is armed.
func (c *FakeClock) waitFor(timeout time.Duration, done func() bool) bool {
	stop := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.changed.Broadcast()
		c.mu.Unlock()
	})
	defer stop.Stop()
	deadline := time.Now().Add(timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for !done() && time.Now().Before(deadline) {
		c.changed.Wait()
	}
	return len(c.timers) > 0
}

type fakeTimer struct {
	c  *FakeClock
	ch chan time.Time
	at int64 // guarded by c.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, armed := t.c.timers[t]
	delete(t.c.timers, t)
	t.c.events++
	t.c.changed.Broadcast()
	return armed
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, armed := t.c.timers[t]
	t.at = t.c.ns + int64(d)
	t.c.timers[t] = struct{}{}
	t.c.events++
	t.c.changed.Broadcast()
	return armed
}
