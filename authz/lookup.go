package authz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// DefaultPageSize is the LookupResources page size when none is given.
const DefaultPageSize = 1000

// Found is one result of a lookup.
type Found struct {
	ID string
	// Conditional is true when the result depends on caveat context that was
	// not given: callers must not treat it as granted.
	Conditional bool
}

// Page asks for one page of a lookup.
type Page struct {
	// Size is the most results to return (DefaultPageSize when 0).
	Size uint32
	// Cursor continues after a previous page ("" for the first).
	Cursor string
	// Consistency of the lookup. Pages after the first are read at the
	// revision of the first.
	Consistency Consistency
	// Context is caveat context.
	Context map[string]any
}

// LookupResourcesPage returns one page of the ids of the resources (of the
// permission's type) on which subject holds permission, and the cursor of
// the next page ("" when there is none).
func (c *Client) LookupResourcesPage(ctx context.Context, permission Permission, subject Subject, page Page) ([]Found, string, error) {
	size := page.Size
	if size == 0 {
		size = DefaultPageSize
	}
	ctxStruct, err := structOf(page.Context)
	if err != nil {
		return nil, "", fmt.Errorf("%w: caveat context: %v", ErrInvalid, err)
	}
	req := &v1.LookupResourcesRequest{
		Consistency:        page.Consistency.proto(),
		ResourceObjectType: string(permission.ResourceType),
		Permission:         permission.Name,
		Subject:            subjectRef(subject),
		Context:            ctxStruct,
		OptionalLimit:      size,
	}
	if page.Cursor != "" {
		req.OptionalCursor = &v1.Cursor{Token: page.Cursor}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.permissions.LookupResources(ctx, req)
	if err != nil {
		return nil, "", classify("lookup resources", err)
	}
	var (
		found []Found
		next  string
	)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, "", classify("lookup resources", err)
		}
		found = append(found, Found{
			ID:          resp.GetResourceObjectId(),
			Conditional: resp.GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION,
		})
		next = resp.GetAfterResultCursor().GetToken()
	}
	if uint32(len(found)) < size {
		next = ""
	}
	return found, next, nil
}

// LookupResources streams every resource on which subject holds permission,
// fetching pages of page.Size as it goes.
func (c *Client) LookupResources(ctx context.Context, permission Permission, subject Subject, page Page) iter.Seq2[Found, error] {
	return func(yield func(Found, error) bool) {
		for {
			found, next, err := c.LookupResourcesPage(ctx, permission, subject, page)
			if err != nil {
				yield(Found{}, err)
				return
			}
			for _, f := range found {
				if !yield(f, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			page.Cursor = next
		}
	}
}

// Subjects is the answer of LookupSubjects.
type Subjects struct {
	// Found are the subjects holding the permission.
	Found []Found
	// Everyone is true when every subject of the type holds it (a wildcard),
	// except those in Except.
	Everyone bool
	Except   []Found
}

// LookupSubjects returns the subjects of subjectType that hold permission on
// the resource resourceID.
func (c *Client) LookupSubjects(ctx context.Context, permission Permission, resourceID string, subjectType ObjectType, consistency Consistency) (Subjects, error) {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	stream, err := c.permissions.LookupSubjects(ctx, &v1.LookupSubjectsRequest{
		Consistency:       consistency.proto(),
		Resource:          objectRef(permission.ResourceType.Object(resourceID)),
		Permission:        permission.Name,
		SubjectObjectType: string(subjectType),
	})
	if err != nil {
		return Subjects{}, classify("lookup subjects", err)
	}
	var out Subjects
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return Subjects{}, classify("lookup subjects", err)
		}
		s := resp.GetSubject()
		if s.GetSubjectObjectId() == "*" {
			out.Everyone = true
			for _, ex := range resp.GetExcludedSubjects() {
				out.Except = append(out.Except, foundSubject(ex))
			}
			continue
		}
		out.Found = append(out.Found, foundSubject(s))
	}
}

func foundSubject(s *v1.ResolvedSubject) Found {
	return Found{
		ID:          s.GetSubjectObjectId(),
		Conditional: s.GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_CONDITIONAL_PERMISSION,
	}
}
