package mongotenant

// WithFakeClock runs the Manager on fake time, for tests.
func WithFakeClock(c *FakeClock) Option { return func(cfg *config) { cfg.clock = c } }

// ClockResolution is how stale the coarse clock may be.
const ClockResolution = clockResolution
