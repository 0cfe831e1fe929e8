package authz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// Write applies updates atomically, only if every precondition holds, and
// returns the revision it was written at. Nothing is written on error.
func (c *Client) Write(ctx context.Context, updates []Update, preconditions ...Precondition) (ZedToken, error) {
	if len(updates) == 0 {
		return "", fmt.Errorf("%w: write without updates", ErrInvalid)
	}
	req := &v1.WriteRelationshipsRequest{OptionalPreconditions: preconditionsProto(preconditions)}
	for _, u := range updates {
		op, err := operationProto(u.Op)
		if err != nil {
			return "", err
		}
		rel, err := relationshipProto(u.Relationship)
		if err != nil {
			return "", err
		}
		req.Updates = append(req.Updates, &v1.RelationshipUpdate{Operation: op, Relationship: rel})
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.permissions.WriteRelationships(ctx, req)
	if err != nil {
		return "", classifyWrite(fmt.Sprintf("write (%d updates)", len(updates)), err)
	}
	return ZedToken(resp.GetWrittenAt().GetToken()), nil
}

// DeleteMatching removes every relationship that matches filter, only if
// every precondition holds, and returns the revision of the deletion.
func (c *Client) DeleteMatching(ctx context.Context, filter Filter, preconditions ...Precondition) (ZedToken, error) {
	if filter.ResourceType == "" {
		return "", fmt.Errorf("%w: delete needs a resource type", ErrInvalid)
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.permissions.DeleteRelationships(ctx, &v1.DeleteRelationshipsRequest{
		RelationshipFilter:    filterProto(filter),
		OptionalPreconditions: preconditionsProto(preconditions),
	})
	if err != nil {
		return "", classifyWrite("delete "+string(filter.ResourceType), err)
	}
	return ZedToken(resp.GetDeletedAt().GetToken()), nil
}

// ReadRelationships streams the relationships matching filter.
func (c *Client) ReadRelationships(ctx context.Context, filter Filter, consistency Consistency) iter.Seq2[Relationship, error] {
	return func(yield func(Relationship, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.permissions.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{
			Consistency:        consistency.proto(),
			RelationshipFilter: filterProto(filter),
		})
		if err != nil {
			yield(Relationship{}, classify("read relationships", err))
			return
		}
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(Relationship{}, classify("read relationships", err))
				return
			}
			if !yield(relationshipFromProto(resp.GetRelationship()), nil) {
				return
			}
		}
	}
}

func preconditionsProto(pre []Precondition) []*v1.Precondition {
	out := make([]*v1.Precondition, 0, len(pre))
	for _, p := range pre {
		op := v1.Precondition_OPERATION_MUST_NOT_MATCH
		if p.MustMatch {
			op = v1.Precondition_OPERATION_MUST_MATCH
		}
		out = append(out, &v1.Precondition{Operation: op, Filter: filterProto(p.Filter)})
	}
	return out
}
