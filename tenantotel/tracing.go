package tenantotel

import (
	"context"

	"github.com/mongotenant/mongotenant"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Span names.
const (
	SpanAcquire      = "mongotenant.acquire"
	SpanRoute        = "mongotenant.route"
	SpanInit         = "mongotenant.init"
	SpanCreateClient = "mongotenant.client.create"
)

// spanKey finds this package's own span in a ctx, whatever spans other
// hooks started after it.
type spanKey string

// Hooks returns the hooks that record the synchronous metrics and the
// spans: one per acquisition that leaves the hot path, with children for
// its route resolution, client creation and init hook. A cached
// acquisition has no span. Every span has the client group as
// db.client.connection.pool.name once it is known, and the tenant ID only
// with [WithTenantIDs].
func (in *Instrumentation) Hooks() mongotenant.Hooks {
	return mongotenant.Hooks{
		AcquireStart: func(ctx context.Context, id string) context.Context {
			return in.start(ctx, SpanAcquire, id)
		},
		AcquireEnd: func(ctx context.Context, e mongotenant.AcquireEvent) {
			in.acquireEnd(ctx, e)
			in.end(ctx, SpanAcquire, e.Group, e.Reason, e.Err,
				attribute.Bool("mongotenant.waited", e.Waited), attribute.Float64("mongotenant.wait", e.Wait.Seconds()))
		},
		RouteStart: func(ctx context.Context, id string) context.Context {
			return in.start(ctx, SpanRoute, id)
		},
		RouteEnd: func(ctx context.Context, e mongotenant.RouteEvent) {
			reason := ""
			if e.Err != nil {
				reason = "route"
			}
			in.end(ctx, SpanRoute, e.Group, reason, e.Err, TierKey.String(e.Tier), attribute.Bool("mongotenant.refresh", e.Refresh))
		},
		InitStart: func(ctx context.Context, id string) context.Context {
			return in.start(ctx, SpanInit, id)
		},
		InitEnd: func(ctx context.Context, e mongotenant.InitEvent) {
			reason := ""
			if e.Err != nil {
				reason = "init"
			}
			in.end(ctx, SpanInit, e.Group, reason, e.Err)
		},
		ClientCreated: func(ctx context.Context, e mongotenant.ClientEvent) {
			attrs := []attribute.KeyValue{PoolNameKey.String(e.Group), attribute.Int64("mongotenant.pool_size", int64(e.PoolSize))}
			if in.cfg.tenantIDs {
				attrs = append(attrs, TenantIDKey.String(e.TenantID))
			}
			_, span := in.tracer.Start(ctx, SpanCreateClient, trace.WithTimestamp(e.Start), trace.WithAttributes(attrs...))
			if e.Err != nil {
				span.SetStatus(codes.Error, "create")
			}
			span.End(trace.WithTimestamp(e.Start.Add(e.Duration)))
		},
		ClientRecycled: func(ctx context.Context, e mongotenant.ClientEvent) {
			if span, ok := ctx.Value(spanKey(SpanAcquire)).(trace.Span); ok {
				span.AddEvent("mongotenant.client.recycled", trace.WithAttributes(
					PoolNameKey.String(e.Group), attribute.String("mongotenant.from", e.From), CauseKey.String(e.Cause.String())))
			}
		},
		PoolEvent: func(group string, e *event.PoolEvent) { in.poolEvent(group, e) },
	}
}

// start starts a span named name as a child of ctx's, and keeps it in the
// ctx under its name too.
func (in *Instrumentation) start(ctx context.Context, name, id string) context.Context {
	var opts []trace.SpanStartOption
	if in.cfg.tenantIDs {
		opts = append(opts, trace.WithAttributes(TenantIDKey.String(id)))
	}
	ctx, span := in.tracer.Start(ctx, name, opts...)
	return context.WithValue(ctx, spanKey(name), span)
}

// end ends the span start put in ctx under name.
func (in *Instrumentation) end(ctx context.Context, name, group, reason string, err error, attrs ...attribute.KeyValue) {
	span, ok := ctx.Value(spanKey(name)).(trace.Span)
	if !ok {
		return
	}
	if group != "" {
		attrs = append(attrs, PoolNameKey.String(group))
	}
	span.SetAttributes(attrs...)
	if reason != "" {
		span.SetAttributes(ReasonKey.String(reason))
		span.SetStatus(codes.Error, reason)
		if in.cfg.tenantIDs && err != nil {
			span.RecordError(err) // its text may quote a tenant ID
		}
	}
	span.End()
}
