package authz

import (
	"context"
	"fmt"
	"iter"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// watchError classifies a watch's error. A SpiceDB whose datastore cannot
// watch serves no WatchService at all (Unimplemented): on PostgreSQL, when
// the server runs without track_commit_timestamp, which SpiceDB reads once,
// when it starts.
func watchError(err error) error {
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("%w: watch: this SpiceDB serves no Watch API, its datastore cannot watch "+
			"(on PostgreSQL, SpiceDB watches only if the server runs with track_commit_timestamp = on when SpiceDB starts): %s",
			ErrInvalid, status.Convert(err).Message())
	}
	return classify("watch", err)
}

// Change is what one revision changed in the graph.
type Change struct {
	Updates []Update
	// At is the revision after which the changes hold; resume a watch from it.
	At ZedToken
}

// Watch streams the changes to relationships of the given types (all types
// when none are given) made after the revision from ("" for "from now").
// Caches keyed on the graph use it to invalidate. The stream ends with an
// error when the context ends or SpiceDB fails; callers resume from the last
// Change.At they handled.
func (c *Client) Watch(ctx context.Context, from ZedToken, types ...ObjectType) iter.Seq2[Change, error] {
	return func(yield func(Change, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		req := &v1.WatchRequest{}
		for _, t := range types {
			req.OptionalObjectTypes = append(req.OptionalObjectTypes, string(t))
		}
		if from != "" {
			req.OptionalStartCursor = &v1.ZedToken{Token: string(from)}
		}
		stream, err := c.watch.Watch(ctx, req)
		if err != nil {
			yield(Change{}, watchError(err))
			return
		}
		for {
			resp, err := stream.Recv()
			if err != nil {
				yield(Change{}, watchError(err))
				return
			}
			if len(resp.GetUpdates()) == 0 {
				continue // checkpoint or heartbeat
			}
			change := Change{At: ZedToken(resp.GetChangesThrough().GetToken())}
			for _, u := range resp.GetUpdates() {
				change.Updates = append(change.Updates, Update{
					Op:           operationFromProto(u.GetOperation()),
					Relationship: relationshipFromProto(u.GetRelationship()),
				})
			}
			if !yield(change, nil) {
				return
			}
		}
	}
}
