package mongotest

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/modules/mongodb"
)

// defaultImage is the MongoDB image used unless MONGOTENANT_TEST_MONGODB_IMAGE is set.
const defaultImage = "mongo:8"

func startDocker(ctx context.Context) (*Server, error) {
	img := os.Getenv("MONGOTENANT_TEST_MONGODB_IMAGE")
	if img == "" {
		img = defaultImage
	}

	var opts []testcontainers.ContainerCustomizer
	if os.Getenv("MONGOTENANT_TEST_LOG") == "" {
		opts = append(opts, testcontainers.WithLogger(tclog.NewNoopLogger()))
	}

	// Run waits for the "Waiting for connections" log line and the mapped port.
	c, err := mongodb.Run(ctx, img, opts...)
	if err != nil {
		// Run may return a container together with an error; it must be removed.
		return nil, errors.Join(fmt.Errorf("mongotest: start %s container: %w", img, err), testcontainers.TerminateContainer(c))
	}

	uri, err := c.ConnectionString(ctx)
	if err == nil {
		err = ping(ctx, uri)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("mongotest: %s container: %w", img, err), testcontainers.TerminateContainer(c))
	}

	return &Server{
		backend: BackendDocker,
		uri:     uri,
		stop: func(ctx context.Context) error {
			if err := testcontainers.TerminateContainer(c, testcontainers.StopContext(ctx)); err != nil {
				return fmt.Errorf("mongotest: %w", err)
			}
			return nil
		},
	}, nil
}
