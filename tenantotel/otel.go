package tenantotel

import (
	"errors"
	"sync"

	"github.com/mongotenant/mongotenant"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/mongotenant/mongotenant/tenantotel"

// An Option configures [New].
type Option func(*config)

type config struct {
	meters    metric.MeterProvider
	tracers   trace.TracerProvider
	tenantIDs bool
	tiers     bool
}

// WithMeterProvider sets the meter provider. Default: the global one,
// [otel.GetMeterProvider].
func WithMeterProvider(p metric.MeterProvider) Option { return func(c *config) { c.meters = p } }

// WithTracerProvider sets the tracer provider. Default: the global one,
// [otel.GetTracerProvider].
func WithTracerProvider(p trace.TracerProvider) Option { return func(c *config) { c.tracers = p } }

// WithTenantIDs puts tenant IDs on spans, as the attribute
// mongotenant.tenant.id, and a refused acquisition's error text on its span,
// which may quote a tenant ID. Default false: tenant IDs often identify
// customers. Metrics never carry tenant IDs, with or without it.
func WithTenantIDs(on bool) Option { return func(c *config) { c.tenantIDs = on } }

// WithTierMetrics adds the per-tier gauges mongotenant.tier.tenants and
// mongotenant.tier.leases. Reading them visits every tenant
// ([mongotenant.Manager.TierStats]), about 30 ns each, at every
// collection. Default false.
func WithTierMetrics(on bool) Option { return func(c *config) { c.tiers = on } }

// Instrumentation turns a Manager's hooks and snapshots into OpenTelemetry
// metrics and spans. Create it with [New], give [Instrumentation.Option] to
// [mongotenant.New], then call [Instrumentation.Observe] with the Manager.
// It is safe for concurrent use.
type Instrumentation struct {
	cfg    config
	tracer trace.Tracer
	sync   syncInstruments
	groups sync.Map // group name -> metric.MeasurementOption with its attributes

	mu       sync.Mutex // guards reg and observed
	reg      metric.Registration
	observed bool
}

// New creates the instruments. Its errors come from the meter provider.
func New(opts ...Option) (*Instrumentation, error) {
	cfg := config{meters: otel.GetMeterProvider(), tracers: otel.GetTracerProvider()}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.meters == nil || cfg.tracers == nil {
		return nil, errors.New("tenantotel: nil meter or tracer provider")
	}
	in := &Instrumentation{cfg: cfg, tracer: cfg.tracers.Tracer(ScopeName)}
	var err error
	if in.sync, err = newSyncInstruments(cfg.meters.Meter(ScopeName)); err != nil {
		return nil, err
	}
	return in, nil
}

// Option returns the hooks as an option for [mongotenant.New].
func (in *Instrumentation) Option() mongotenant.Option { return mongotenant.WithHooks(in.Hooks()) }

// Observe registers the asynchronous instruments, which read m's snapshots
// ([mongotenant.Manager.Stats], GroupStats, and TierStats if asked for) at
// each collection. Call it once; [Instrumentation.Close] unregisters them.
func (in *Instrumentation) Observe(m *mongotenant.Manager) error {
	if m == nil {
		return errors.New("tenantotel: Observe: nil Manager")
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.observed {
		return errors.New("tenantotel: Observe called twice")
	}
	reg, err := registerSnapshots(in.cfg.meters.Meter(ScopeName), m, in.cfg.tiers)
	if err != nil {
		return err
	}
	in.reg, in.observed = reg, true
	return nil
}

// Close unregisters the asynchronous instruments. The hooks keep working:
// they live as long as the Manager.
func (in *Instrumentation) Close() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.reg == nil {
		return nil
	}
	err := in.reg.Unregister()
	in.reg = nil
	return err
}
