// Package tenantotel exports a [mongotenant.Manager]'s metrics and traces
// to OpenTelemetry. It is a module of its own, so that the mongotenant
// module does not depend on OpenTelemetry.
//
//	inst, err := tenantotel.New() // the global meter and tracer providers
//	if err != nil { ... }
//	m, err := mongotenant.New(uri, inst.Option())
//	if err != nil { ... }
//	if err := inst.Observe(m); err != nil { ... }
//	defer inst.Close()
//
// Metrics follow the semantic conventions for database connection pools
// where they apply: db.client.connection.count (by
// db.client.connection.state, idle or used), .max, .pending_requests,
// .timeouts, .create_time and .wait_time, with
// db.client.connection.pool.name set to the client group, never to a
// tenant ID: every single-tenant client is in the group
// mongotenant.DedicatedGroup. db.client.connection.use_time is not
// recorded: the driver's check-in event carries no duration. The library's
// own instruments are named mongotenant.*: see the README's Observability
// section for the list. Asynchronous instruments read the Manager's
// snapshots at each collection; the Manager's hot path records nothing.
//
// Spans cover the acquisitions that leave the hot path, with children for
// route resolution, client creation and the init hook.
package tenantotel
