package mongotest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Backend names returned by [Server.Backend].
const (
	BackendURI      = "uri"      // an existing server from MONGODB_URI
	BackendDocker   = "docker"   // a MongoDB container started with testcontainers-go
	BackendEmbedded = "embedded" // an in-process FerretDB with SQLite storage
)

// ErrNotEmbedded is returned (wrapped) by [Server.Stop] and [Server.Restart]
// when the server is not an embedded one.
var ErrNotEmbedded = errors.New("mongotest: operation supported by the embedded backend only")

// errClosed is returned by [Server.Stop] and [Server.Restart] after [Server.Close].
var errClosed = errors.New("mongotest: server is closed")

// startTimeout bounds [New]; it is generous because a docker backend may pull an image.
const startTimeout = 3 * time.Minute

// Server is a running MongoDB-compatible server for tests.
//
// All methods are safe for concurrent use; Stop, Restart and Close are
// serialized.
type Server struct {
	backend string
	uri     string

	mu       sync.Mutex
	emb      *embedded                       // embedded backend only
	stop     func(ctx context.Context) error // docker backend only
	closed   bool
	closeErr error
}

// Start starts a server using the backend selected by the environment (see
// the package documentation) and returns once it accepts connections.
// ctx bounds the start-up only, not the lifetime of the server.
// The caller must call [Server.Close].
func Start(ctx context.Context) (*Server, error) {
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		if err := ping(ctx, uri); err != nil {
			return nil, fmt.Errorf("mongotest: MONGODB_URI server: %w", err)
		}
		return &Server{backend: BackendURI, uri: uri}, nil
	}

	switch b := os.Getenv("MONGOTENANT_TEST_BACKEND"); b {
	case "", BackendEmbedded:
		return startEmbedded(ctx)
	case BackendDocker:
		return startDocker(ctx)
	default:
		return nil, fmt.Errorf("mongotest: unknown MONGOTENANT_TEST_BACKEND %q (want %q or %q)", b, BackendEmbedded, BackendDocker)
	}
}

// URI returns the MongoDB connection string of the server, for example
// "mongodb://127.0.0.1:PORT/" for the embedded backend. It does not change
// across [Server.Stop] and [Server.Restart].
func (s *Server) URI() string { return s.uri }

// Backend returns the backend in use: [BackendURI], [BackendDocker] or
// [BackendEmbedded].
func (s *Server) Backend() string { return s.backend }

// Close stops the server and releases everything it holds: the container,
// or the embedded server's goroutines and temporary data directory. It does
// nothing for the "uri" backend. Close is idempotent: later calls return the
// result of the first one.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.closed {
		return s.closeErr
	}
	s.closed = true

	switch {
	case s.emb != nil:
		s.closeErr = s.emb.close()
	case s.stop != nil:
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.closeErr = s.stop(ctx)
	}
	return s.closeErr
}

// Stop stops serving without removing data: the port stays known and the data
// directory is kept for [Server.Restart]. Connections already open are given
// up to 3 seconds to finish before they are closed. Stop on a stopped server
// does nothing. It returns an error wrapping [ErrNotEmbedded] for the other
// backends.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()

	if err := s.checkEmbedded("Stop"); err != nil {
		return err
	}
	s.emb.stop()
	return nil
}

// Restart starts a stopped server again on the same port with the same data,
// and returns once it accepts connections; a running server is stopped first.
// It returns an error wrapping [ErrNotEmbedded] for the other backends.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	if err := s.checkEmbedded("Restart"); err != nil {
		return err
	}
	s.emb.stop()
	return s.emb.start(ctx)
}

func (s *Server) checkEmbedded(op string) error {
	if s.emb == nil {
		return fmt.Errorf("mongotest: %s on %q backend: %w", op, s.backend, ErrNotEmbedded)
	}
	if s.closed {
		return fmt.Errorf("mongotest: %s: %w", op, errClosed)
	}
	return nil
}

// New starts a server with [Start], registers its [Server.Close] with
// tb.Cleanup, and fails the test if either start or close fails.
// It is safe to call from parallel tests; each call gets its own server
// (or shares the MONGODB_URI one).
func New(tb testing.TB) *Server {
	tb.Helper()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	s, err := Start(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// URI is New(tb).URI(): it starts a server for the test and returns its URI.
func URI(tb testing.TB) string {
	tb.Helper()
	return New(tb).URI()
}

// ping connects to uri, runs the ping command, and disconnects.
func ping(ctx context.Context, uri string) error {
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	err = c.Ping(ctx, nil)

	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return errors.Join(err, c.Disconnect(dctx))
}
