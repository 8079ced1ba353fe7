package mongotenant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Defaults for the options of [New].
const (
	// DefaultMaxClients caps the cached clients. Each client holds one
	// monitoring socket per server (two with streaming monitoring) plus up to
	// its pool size; 100 clients on a 3-node replica set hold 300 monitoring
	// sockets before any traffic.
	DefaultMaxClients = 100

	// DefaultIdleTimeout is how long a client may sit unleased before the
	// reaper disconnects it.
	DefaultIdleTimeout = 10 * time.Minute

	// DefaultPoolSize is each tenant client's maxPoolSize, as in the
	// reference design. The driver's own default, 100, is sized for one
	// client per process, not one per tenant.
	DefaultPoolSize uint64 = 10

	// DefaultConnectTimeout and DefaultServerSelectionTimeout bound how long an
	// operation waits for an unreachable server (the driver's defaults are 30 s).
	DefaultConnectTimeout         = 5 * time.Second
	DefaultServerSelectionTimeout = 5 * time.Second

	// DefaultConnMaxIdleTime closes a pooled connection unused for this long, so
	// a quiet tenant gives its sockets back long before its client is reaped.
	DefaultConnMaxIdleTime = time.Minute

	// DefaultDisconnectTimeout bounds each background Disconnect of an evicted
	// or reaped client.
	DefaultDisconnectTimeout = 10 * time.Second
)

// An Option configures a [Manager]. Options are applied in order; [New]
// validates the result.
type Option func(*config)

type config struct {
	maxClients        int
	idleTimeout       time.Duration
	poolSize          uint64
	poolSizeSet       bool // WithPoolSize was called; otherwise the URI or DefaultPoolSize decides
	clientOpts        []*options.ClientOptions
	databaseName      func(tenantID string) string
	validateTenant    func(tenantID string) error
	logger            *slog.Logger
	logTenantIDs      bool
	disconnectTimeout time.Duration
	maxLeases         int
	fair              bool // WithFairSharing
	fairCapacity      int  // WithFairSharing's capacity; 0: each client's pool size
	fairReserve       int  // WithFairReserve's slots
	fairReserveSet    bool // WithFairReserve was called; otherwise a quarter of each capacity
	fairReserveIdle   time.Duration
	adaptiveTarget    time.Duration // WithAdaptiveLimit; 0: off
	strategy          Strategy
	routers           []Router
	routeTTL          time.Duration
	budget            int
	budgetPolicy      BudgetPolicy
	nodes             int
	recycle           bool
	init              func(ctx context.Context, tenantID string, db *mongo.Database) error
	initSet           bool // WithInit was called, with init possibly nil
	hooks             []Hooks
	commandStats      bool
	slowCommand       time.Duration
	clock             clock              // nil: the real clock; tests set a fake
	pingMonitor       *event.PoolMonitor // set by tests: the pool events of PingDeployment's own clients
}

func defaultConfig() config {
	return config{
		maxClients:        DefaultMaxClients,
		idleTimeout:       DefaultIdleTimeout,
		databaseName:      defaultDatabaseName,
		validateTenant:    ValidateTenantID,
		logger:            slog.New(slog.DiscardHandler),
		disconnectTimeout: DefaultDisconnectTimeout,
		fairReserveIdle:   DefaultFairReserveIdle,
		routeTTL:          DefaultRouteTTL,
		strategy:          Dedicated(),
		recycle:           true,
	}
}

func (c *config) validate() error {
	switch {
	case c.maxClients < 0:
		return fmt.Errorf("%w: WithMaxClients(%d): must be >= 0", ErrInvalidOption, c.maxClients)
	case c.idleTimeout < 0:
		return fmt.Errorf("%w: WithIdleTimeout(%v): must be >= 0", ErrInvalidOption, c.idleTimeout)
	case c.disconnectTimeout <= 0:
		return fmt.Errorf("%w: WithDisconnectTimeout(%v): must be > 0", ErrInvalidOption, c.disconnectTimeout)
	case c.databaseName == nil:
		return fmt.Errorf("%w: WithDatabaseName(nil)", ErrInvalidOption)
	case c.validateTenant == nil:
		return fmt.Errorf("%w: WithTenantValidator(nil)", ErrInvalidOption)
	case c.maxLeases < 0:
		return fmt.Errorf("%w: WithMaxLeases(%d): must be >= 0", ErrInvalidOption, c.maxLeases)
	case c.routeTTL < 0:
		return fmt.Errorf("%w: WithRouteTTL(%v): must be >= 0", ErrInvalidOption, c.routeTTL)
	case c.budget < 0 || c.nodes < 0:
		return fmt.Errorf("%w: WithConnectionBudget(%d), WithNodes(%d): must be >= 0", ErrInvalidOption, c.budget, c.nodes)
	case c.budgetPolicy != BudgetWait && c.budgetPolicy != BudgetFailFast:
		return fmt.Errorf("%w: unknown BudgetPolicy %d", ErrInvalidOption, c.budgetPolicy)
	case c.strategy == nil || isNilStrategy(c.strategy):
		return fmt.Errorf("%w: WithStrategy(nil)", ErrInvalidOption)
	case c.initSet && c.init == nil:
		return fmt.Errorf("%w: WithInit(nil)", ErrInvalidOption)
	case c.slowCommand < 0:
		return fmt.Errorf("%w: WithCommandStats(%v): must be >= 0", ErrInvalidOption, c.slowCommand)
	case c.fairCapacity < 0 || c.fairCapacity > maxFairCapacity:
		return fmt.Errorf("%w: WithFairSharing(%d): must be between 0 and %d", ErrInvalidOption, c.fairCapacity, maxFairCapacity)
	case c.adaptiveTarget < 0:
		return fmt.Errorf("%w: WithAdaptiveLimit(%v): must be >= 0", ErrInvalidOption, c.adaptiveTarget)
	case c.fairReserve < 0 || c.fairReserveIdle < 0:
		return fmt.Errorf("%w: WithFairReserve(%d, %v): must be >= 0", ErrInvalidOption, c.fairReserve, c.fairReserveIdle)
	case c.maxLeases > leaseMask:
		return fmt.Errorf("%w: WithMaxLeases(%d): must be at most %d", ErrInvalidOption, c.maxLeases, leaseMask)
	}
	for _, r := range c.routers {
		if r == nil {
			return fmt.Errorf("%w: a nil Router, placement, credentials or tier lookup", ErrInvalidOption)
		}
	}
	return nil
}

// WithMaxClients caps the number of cached clients; the least recently used
// is evicted to make room for a new one. 0 means no cap. Default
// [DefaultMaxClients]. See [Manager] for when leased clients exceed the cap.
func WithMaxClients(n int) Option { return func(c *config) { c.maxClients = n } }

// WithMaxLeases caps every tenant's concurrent leases, its bulkhead: a
// tenant at the cap waits in Acquire until one of its leases is released or
// ctx ends, then fails with [ErrTenantBusy]. It keeps one tenant from taking
// a shared client's whole pool. 0 means no cap (default); tiers can set
// their own ([Tier.MaxLeases]).
func WithMaxLeases(n int) Option { return func(c *config) { c.maxLeases = n } }

// WithIdleTimeout forgets a tenant that has had no lease for d, and
// disconnects a client once all its tenants are forgotten. 0 disables idle
// reaping. Default [DefaultIdleTimeout].
func WithIdleTimeout(d time.Duration) Option { return func(c *config) { c.idleTimeout = d } }

// WithPoolSize sets each tenant client's maxPoolSize, overriding a
// maxPoolSize given in the URI or [WithClientOptions]. It must be at least 1:
// the driver reads 0 as unlimited. Default [DefaultPoolSize].
func WithPoolSize(n uint64) Option {
	return func(c *config) { c.poolSize, c.poolSizeSet = n, true }
}

// WithClientOptions adds driver options (TLS, auth, timeouts, monitors) on top
// of the URI and the Manager's client defaults; later options win. Command and
// server monitors are used as given; a PoolMonitor still receives every event,
// after the Manager's own per-tenant accounting.
//
// The Manager's client defaults, each overridable here or in the URI:
// serverMonitoringMode "poll" (one monitoring socket per server instead of the
// two streaming needs, and three fewer goroutines per client; a topology
// change is noticed at the next heartbeat, 10 s by default, instead of at
// once), [DefaultConnectTimeout], [DefaultServerSelectionTimeout],
// [DefaultConnMaxIdleTime] and [DefaultPoolSize].
func WithClientOptions(opts ...*options.ClientOptions) Option {
	return func(c *config) { c.clientOpts = append(c.clientOpts, opts...) }
}

// WithDatabaseName maps a tenant ID to its database name. Default
// "user_<id>_db", as in the reference design. Whatever it returns is checked:
// a name MongoDB would refuse, or admin, local or config, fails the Acquire
// with [ErrInvalidTenant].
func WithDatabaseName(fn func(tenantID string) string) Option {
	return func(c *config) { c.databaseName = fn }
}

// WithTenantValidator replaces [ValidateTenantID] as the check on tenant IDs.
// Its errors are wrapped in [ErrInvalidTenant]. The database name check still
// applies after it.
func WithTenantValidator(fn func(tenantID string) error) Option {
	return func(c *config) { c.validateTenant = fn }
}

// WithLogger sets the logger. Default: discard everything. The Manager logs
// client lifecycle and route changes at Debug, failed disconnects and
// failed background refreshes at Warn; tenant IDs appear only at Debug
// unless [WithTenantIDsInLogs] is set. It never logs while holding a lock,
// and a handler that panics loses that record: the Manager recovers the
// panic, so that logging cannot leave it half-way through a change.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	}
}

// WithTenantIDsInLogs puts tenant IDs in log lines at Info and above. Default
// false, because tenant IDs often identify customers.
func WithTenantIDsInLogs(on bool) Option { return func(c *config) { c.logTenantIDs = on } }

// WithDisconnectTimeout bounds each Disconnect of an evicted, reaped or closed
// client. Default [DefaultDisconnectTimeout].
func WithDisconnectTimeout(d time.Duration) Option {
	return func(c *config) { c.disconnectTimeout = d }
}

// WithClientRecycling turns client recycling on or off. When a client must
// be evicted to make room for a new one (at the cap or in the budget), is
// unleased, and was built with the same options as the new one (same
// deployment and pool size, no per-tenant credentials), the new tenant takes
// it over instead of the Manager disconnecting one client and connecting
// another: its pooled connections and monitor stay warm. A dedicated client
// still serves one tenant at a time. Default on.
func WithClientRecycling(on bool) Option { return func(c *config) { c.recycle = on } }

// safeHandler is the user's slog.Handler, with its panics recovered: a
// handler is a user callback like any other.
type safeHandler struct{ slog.Handler }

func (h safeHandler) Handle(ctx context.Context, r slog.Record) (err error) {
	defer func() {
		if recover() != nil {
			err = errLogHandlerPanicked
		}
	}()
	return h.Handler.Handle(ctx, r)
}

func (h safeHandler) Enabled(ctx context.Context, level slog.Level) (on bool) {
	defer func() {
		if recover() != nil {
			on = false
		}
	}()
	return h.Handler.Enabled(ctx, level)
}

func (h safeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return safeHandler{h.Handler.WithAttrs(attrs)}
}

func (h safeHandler) WithGroup(name string) slog.Handler {
	return safeHandler{h.Handler.WithGroup(name)}
}

var errLogHandlerPanicked = errors.New("mongotenant: the log handler panicked")
