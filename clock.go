package mongotenant

import "time"

// A clock is the Manager's time source: the monotonic clock in production,
// a fake one in tests, so that idle reaping, recency and route TTLs can be
// tested on fake time.
type clock interface {
	// now returns monotonic nanoseconds since an arbitrary origin.
	now() int64
	// newTimer returns a timer that fires once after d.
	newTimer(d time.Duration) timer
	// wall converts a time from now to wall-clock time, for Stats.
	wall(ns int64) time.Time
}

// A timer is the part of *time.Timer the Manager uses.
type timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// tickingClock is implemented by clocks that tell the Manager when their
// time moves (the fake), so that the coarse clock follows at once instead of
// at the next housekeeping tick.
type tickingClock interface {
	onAdvance(fn func(now int64))
}

// clockResolution is how stale the coarse clock may be while the
// housekeeper runs. Release stamps the coarse time, because reading the
// real clock costs about 33 ns on the machine in the README, where an
// uncontended Acquire and Release costs 45 ns.
const clockResolution = 10 * time.Millisecond

type realClock struct{ origin time.Time }

func newRealClock() realClock { return realClock{origin: time.Now()} }

func (c realClock) now() int64 { return int64(time.Since(c.origin)) }

func (c realClock) newTimer(d time.Duration) timer { return realTimer{time.NewTimer(d)} }

func (c realClock) wall(ns int64) time.Time { return c.origin.Add(time.Duration(ns)) }

type realTimer struct{ *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.Timer.C }
