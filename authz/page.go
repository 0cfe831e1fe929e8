package authz

import (
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// ReadRelationshipsPage returns at most size relationships matching filter,
// after cursor ("" for the first page), and the cursor of the next page
// ("" when there is none). Pages after the first must be asked with the
// same filter, size and consistency: they are read at the revision of the
// first.
func (c *Client) ReadRelationshipsPage(ctx context.Context, filter Filter, consistency Consistency, size uint32, cursor string) ([]Relationship, string, error) {
	if filter.ResourceType == "" {
		return nil, "", fmt.Errorf("%w: reading relationships needs a resource type", ErrInvalid)
	}
	if size == 0 {
		size = DefaultPageSize
	}
	req := &v1.ReadRelationshipsRequest{
		Consistency:        consistency.proto(),
		RelationshipFilter: filterProto(filter),
		OptionalLimit:      size,
	}
	if cursor != "" {
		req.OptionalCursor = &v1.Cursor{Token: cursor}
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	stream, err := c.permissions.ReadRelationships(ctx, req)
	if err != nil {
		return nil, "", classify("read relationships", err)
	}
	var (
		out  []Relationship
		next string
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", classify("read relationships", err)
		}
		out = append(out, relationshipFromProto(resp.GetRelationship()))
		next = resp.GetAfterResultCursor().GetToken()
	}
	if uint32(len(out)) < size {
		next = ""
	}
	return out, next, nil
}
