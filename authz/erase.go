package authz

import (
	"context"
	"fmt"
)

// EraseUser deletes every relationship that names the user, as the resource
// (user:<id>#...) or as the subject of any relation of any definition, for
// the erasure of an account. Wildcards (user:*) name nobody and stay. It is
// idempotent, and returns the revision of its last deletion.
//
// Run it after the services that own relationships naming the user have
// dropped the rows they derive them from, or their reconcilers write them
// back.
func (c *Client) EraseUser(ctx context.Context, userID string) (ZedToken, error) {
	if userID == "" || userID == "*" {
		return "", fmt.Errorf("%w: erasing needs a user id", ErrInvalid)
	}
	token, err := c.DeleteMatching(ctx, Filter{ResourceType: TypeUser, ResourceID: userID})
	if err != nil {
		return "", err
	}
	for _, t := range ObjectTypes {
		if token, err = c.DeleteMatching(ctx, Filter{ResourceType: t, Subject: &SubjectFilter{Type: TypeUser, ID: userID}}); err != nil {
			return "", err
		}
	}
	return token, nil
}

// RelationshipsOfUser lists every relationship that names the user, as the
// resource or as a subject: empty once [Client.EraseUser] ran and nothing
// wrote them back.
func (c *Client) RelationshipsOfUser(ctx context.Context, userID string, consistency Consistency) ([]Relationship, error) {
	if userID == "" || userID == "*" {
		return nil, fmt.Errorf("%w: needs a user id", ErrInvalid)
	}
	filters := []Filter{{ResourceType: TypeUser, ResourceID: userID}}
	for _, t := range ObjectTypes {
		filters = append(filters, Filter{ResourceType: t, Subject: &SubjectFilter{Type: TypeUser, ID: userID}})
	}
	var out []Relationship
	for _, f := range filters {
		for r, err := range c.ReadRelationships(ctx, f, consistency) {
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}
