package mongotenant

import (
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// cluster is the merged client options of one deployment: the URI given to
// New, or one named by placement.
type cluster struct {
	opts    *options.ClientOptions
	nodes   int // servers each client talks to, for the budget
	monitor int // monitoring sockets per server per client
}

func newCluster(uri string, cfg *config) (*cluster, error) {
	opts, err := baseClientOptions(uri, cfg)
	if err != nil {
		return nil, err
	}
	cl := &cluster{opts: opts, nodes: max(len(opts.Hosts), 1), monitor: 2}
	if cfg.nodes > 0 {
		cl.nodes = cfg.nodes
	}
	switch {
	case opts.LoadBalanced != nil && *opts.LoadBalanced:
		cl.monitor = 0
	case opts.ServerMonitoringMode != nil && *opts.ServerMonitoringMode == options.ServerMonitoringModePoll:
		cl.monitor = 1
	}
	return cl, nil
}

// cost is what a client with the given pool size may open on the
// deployment, in sockets: see WithConnectionBudget.
func (cl *cluster) cost(poolSize uint64) int { return cl.nodes * (cl.monitor + int(poolSize)) }

// baseClientOptions merges the Manager's defaults, the URI and the user's
// options, last wins. Its errors wrap ErrInvalidOption and never repeat a
// value: the driver's own messages quote them, and a value can be a
// password.
func baseClientOptions(uri string, c *config) (*options.ClientOptions, error) {
	defaults := options.Client().
		SetServerMonitoringMode(options.ServerMonitoringModePoll).
		SetConnectTimeout(DefaultConnectTimeout).
		SetServerSelectionTimeout(DefaultServerSelectionTimeout).
		SetMaxConnIdleTime(DefaultConnMaxIdleTime).
		SetMaxPoolSize(DefaultPoolSize)
	fromURI := options.Client().ApplyURI(uri)
	if fromURI.Validate() != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidOption, describeURIError(uri))
	}
	all := append([]*options.ClientOptions{defaults, fromURI}, c.clientOpts...)
	base := options.MergeClientOptions(all...)
	if c.poolSizeSet {
		base.SetMaxPoolSize(c.poolSize)
	}
	if *base.MaxPoolSize == 0 {
		return nil, fmt.Errorf("%w: maxPoolSize 0 (unlimited) is unsafe with a client per tenant", ErrInvalidOption)
	}
	if base.Validate() != nil {
		return nil, fmt.Errorf("%w: the client options do not validate together (pool sizes, heartbeat, "+
			"direct connection, load balancing, TLS or auth); the driver's message is withheld because it can quote option values", ErrInvalidOption)
	}
	return base, nil
}

// describeURIError says what is wrong with a URI the driver refused,
// without repeating any part of it: which of its options fail on their
// own, by name, or that the URI as a whole does not parse.
func describeURIError(uri string) string {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok || scheme != "mongodb" && scheme != "mongodb+srv" {
		return "the URI must start with mongodb:// or mongodb+srv://"
	}
	_, query, _ := strings.Cut(rest, "?")
	var bad []string
	for _, kv := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
		key, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToLower(key), "srv") {
			continue // valid only with mongodb+srv, whose parse does DNS lookups
		}
		if options.Client().ApplyURI("mongodb://127.0.0.1/?"+kv).Validate() != nil {
			bad = append(bad, optionName(key))
		}
	}
	if len(bad) > 0 {
		return "the URI's option " + strings.Join(bad, ", ") + " has a value the driver refuses"
	}
	return "the URI does not parse (user, password, hosts or options); the driver's message is withheld because it can quote the URI"
}

// optionName returns key if it looks like an option name, so that a value
// typed where a name belongs is not repeated.
func optionName(key string) string {
	if key == "" || len(key) > 40 {
		return "(unnamed)"
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "(unnamed)"
		}
	}
	return key
}

// clusterFor returns the merged options of the deployment at uri, from
// placement; "" is the deployment given to New. Errors wrap ErrRoute.
func (m *Manager) clusterFor(uri string) (*cluster, error) {
	if uri == "" {
		return m.def, nil
	}
	m.mu.Lock()
	cl := m.clusters[uri]
	m.mu.Unlock()
	if cl != nil {
		return cl, nil
	}
	cl, err := newCluster(uri, &m.cfg) // a mongodb+srv URI does DNS lookups: not under m.mu
	if err != nil {
		return nil, fmt.Errorf("%w: placement: %w", ErrRoute, err)
	}
	m.mu.Lock()
	if prev := m.clusters[uri]; prev != nil {
		cl = prev
	} else {
		m.clusters[uri] = cl
	}
	m.mu.Unlock()
	return cl, nil
}

// connect makes c's *mongo.Client. mongo.Connect does no network I/O: the
// driver dials in the background.
func (m *Manager) connect(cl *cluster, c *client) (*mongo.Client, *poolCounters, error) {
	pool := new(poolCounters)
	m.mu.Lock()
	pool.group.Store(m.groupLocked(c.group()))
	m.mu.Unlock()
	o := *cl.opts // a shallow copy: each client gets its own pool size and monitors
	poolSize := c.key.poolSize
	o.MaxPoolSize = &poolSize
	o.PoolMonitor = m.poolMonitor(pool, cl.opts.PoolMonitor)
	if m.cfg.commandStats {
		o.Monitor = m.commandMonitor(pool, cl.opts.Monitor)
	}
	if c.key.auth != nil {
		o.Auth = c.key.auth
	}
	mc, err := mongo.Connect(&o)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: the driver refused the client options; its message is withheld because it can quote them", ErrCreateClient)
	}
	return mc, pool, nil
}
