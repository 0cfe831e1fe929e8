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

// importChunk is how many relationships Import sends per stream message.
const importChunk = 1000

// Import writes many relationships that do not exist yet, streamed in one
// transaction: all are written or none. It is the fast path for loading or
// rebuilding a graph; it fails (ErrPreconditionFailed) if any already exists.
func (c *Client) Import(ctx context.Context, rels iter.Seq[Relationship]) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.permissions.ImportBulkRelationships(ctx)
	if err != nil {
		return 0, classifyWrite("import", err)
	}
	chunk := make([]*v1.Relationship, 0, importChunk)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if err := stream.Send(&v1.ImportBulkRelationshipsRequest{Relationships: chunk}); err != nil {
			return err
		}
		chunk = make([]*v1.Relationship, 0, importChunk)
		return nil
	}
	for r := range rels {
		rel, err := relationshipProto(r)
		if err != nil {
			return 0, err
		}
		chunk = append(chunk, rel)
		if len(chunk) == importChunk {
			if err := flush(); err != nil {
				_, closeErr := stream.CloseAndRecv()
				return 0, classifyWrite("import", errors.Join(err, closeErr))
			}
		}
	}
	if err := flush(); err != nil {
		_, closeErr := stream.CloseAndRecv()
		return 0, classifyWrite("import", errors.Join(err, closeErr))
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return 0, classifyWrite("import", err)
	}
	return resp.GetNumLoaded(), nil
}
