// Package testutil holds helpers shared by the sidecar's tests. Invariant: every wait is bounded
// by the caller's context.
package testutil

import (
	"context"
	"fmt"
	"time"
)

// pollInterval is how often Eventually retries; short, because everything runs on loopback.
const pollInterval = 50 * time.Millisecond

// Eventually retries f until it returns nil or ctx ends; the error then wraps ctx's error and
// quotes f's last error.
func Eventually(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(pollInterval):
		}
	}
}
