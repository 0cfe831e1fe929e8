package community

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
)

// conflictAttempts is how many times a mutation that lost a race (and so
// changed nothing) runs before the caller sees Aborted.
const conflictAttempts = 4

// Handler returns the path and the Connect handler of the service, with
// opts' interceptors outside (authentication, authorization) and the retry
// of mutations that lost a race inside.
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	opts = append(opts, connect.WithInterceptors(connect.UnaryInterceptorFunc(retryConflicts)))
	return communityv1connect.NewCommunityServiceHandler(s, opts...)
}

// retryConflicts runs a unary call again when it fails with errConflict: it
// then read state another mutation changed before it could commit, and
// wrote nothing, so running it again on fresh reads is safe.
func retryConflicts(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		for attempt := 1; ; attempt++ {
			resp, err := next(ctx, req)
			if err == nil || !errors.Is(err, errConflict) || attempt == conflictAttempts {
				return resp, err
			}
			// A little jitter, so that racing writers do not meet again.
			select {
			case <-ctx.Done():
				return resp, err
			case <-time.After(time.Duration(rand.Int64N(int64(attempt) * int64(5*time.Millisecond)))):
			}
		}
	}
}
