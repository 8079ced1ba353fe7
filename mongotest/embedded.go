package mongotest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// readyTimeout bounds the wait for an embedded server to answer a ping.
const readyTimeout = 30 * time.Second

// newMu serializes ferretdb.New, which writes package-level state
// (version.Get().Package) and would race when servers start in parallel.
var newMu sync.Mutex

// embedded is an in-process FerretDB with the SQLite handler.
// Its methods are called with Server.mu held.
type embedded struct {
	dir  string // data directory, removed by close
	addr string // "127.0.0.1:PORT", fixed by the first start

	cancel context.CancelFunc // stops Run; nil when stopped
	done   chan struct{}      // closed when Run has returned
}

func startEmbedded(ctx context.Context) (*Server, error) {
	dir, err := os.MkdirTemp("", "mongotest-")
	if err != nil {
		return nil, fmt.Errorf("mongotest: %w", err)
	}
	e := &embedded{dir: dir, addr: "127.0.0.1:0"}
	if err := e.start(ctx); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	return &Server{
		backend: BackendEmbedded,
		uri:     "mongodb://" + e.addr + "/",
		emb:     e,
	}, nil
}

// start runs FerretDB on e.addr and waits until it answers a ping.
func (e *embedded) start(ctx context.Context) error {
	if e.addr != "127.0.0.1:0" {
		// ferretdb.New does not close its SQLite backend when listening
		// fails, so make sure the port is free before calling it.
		l, err := net.Listen("tcp", e.addr)
		if err != nil {
			return fmt.Errorf("mongotest: port no longer available: %w", err)
		}
		_ = l.Close()
	}

	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: e.addr},
		Logger:    logger(),
		Handler:   "sqlite",
		SQLiteURL: (&url.URL{Scheme: "file", Path: filepath.ToSlash(e.dir) + "/"}).String(),
	})
	newMu.Unlock()
	if err != nil {
		return fmt.Errorf("mongotest: start FerretDB: %w", err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		_ = f.Run(runCtx) // always nil
	}(e.done)

	// The listener is bound by ferretdb.New, so the address is known already.
	u, err := url.Parse(f.MongoDBURI())
	if err == nil {
		e.addr = u.Host
		ctx, cancelPing := context.WithTimeout(ctx, readyTimeout)
		err = ping(ctx, "mongodb://"+e.addr+"/")
		cancelPing()
	}
	if err != nil {
		e.stop()
		return fmt.Errorf("mongotest: FerretDB not ready: %w", err)
	}
	return nil
}

// stop cancels Run and waits for it to return; it does nothing when stopped.
func (e *embedded) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	<-e.done
	e.cancel, e.done = nil, nil
}

func (e *embedded) close() error {
	e.stop()
	if err := os.RemoveAll(e.dir); err != nil {
		return fmt.Errorf("mongotest: %w", err)
	}
	return nil
}

// logger returns FerretDB's logger: silent unless MONGOTENANT_TEST_LOG names a level.
func logger() *slog.Logger {
	v := os.Getenv("MONGOTENANT_TEST_LOG")
	if v == "" {
		return slog.New(slog.DiscardHandler)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(v)); err != nil {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
