package authz

import (
	"context"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// Check asks whether Subject holds Permission on the resource ResourceID
// (of Permission's resource type).
type Check struct {
	Subject    Subject
	Permission Permission
	ResourceID string
	// Context is caveat context, for permissions that depend on caveats.
	Context map[string]any
}

// Decision is SpiceDB's answer to a Check.
type Decision struct {
	// Allowed is true only when the subject definitely holds the permission.
	Allowed bool
	// Conditional is true when the answer depended on caveat context the
	// check did not carry (Allowed is then false).
	Conditional bool
	// MissingContext names the caveat parameters that were missing.
	MissingContext []string
	// CheckedAt is the revision the answer was computed at.
	CheckedAt ZedToken
}

// Check answers one check. On any error the decision is the zero Decision
// (not allowed) and the error matches ErrUnavailable or ErrInvalid.
//
// At MinimizeLatency, while [Client.CacheDecisions] runs, the answer may
// come from its cache.
func (c *Client) Check(ctx context.Context, check Check, consistency Consistency) (Decision, error) {
	if consistency.mode == minimizeLatency {
		if ds := c.cache.Load(); ds != nil {
			d, hit, ask, gen, keep := ds.lookup(check)
			if hit {
				return d, nil
			}
			d, err := c.check(ctx, check, ask)
			if err == nil && keep {
				ds.keep(check, d, gen)
			}
			return d, err
		}
	}
	return c.check(ctx, check, consistency)
}

func (c *Client) check(ctx context.Context, check Check, consistency Consistency) (Decision, error) {
	req, err := checkRequest(check, consistency)
	if err != nil {
		return Decision{}, err
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.permissions.CheckPermission(ctx, req)
	if err != nil {
		return Decision{}, classify("check "+describe(check), err)
	}
	return decision(resp.Permissionship, resp.PartialCaveatInfo, resp.CheckedAt), nil
}

// Require is Check that returns nil only when the permission is held, a
// *DeniedError when it is not, and the check's error when SpiceDB failed.
func (c *Client) Require(ctx context.Context, check Check, consistency Consistency) error {
	d, err := c.Check(ctx, check, consistency)
	if err != nil {
		return err
	}
	if !d.Allowed {
		return &DeniedError{Subject: check.Subject, Permission: check.Permission, ResourceID: check.ResourceID, Conditional: d.Conditional}
	}
	return nil
}

// CheckBulk answers many checks in one round trip. Decisions are in the
// order of checks. If SpiceDB fails any item, CheckBulk returns an error and
// no decisions: it never returns a partial answer.
func (c *Client) CheckBulk(ctx context.Context, checks []Check, consistency Consistency) ([]Decision, error) {
	if len(checks) == 0 {
		return nil, nil
	}
	items := make([]*v1.CheckBulkPermissionsRequestItem, len(checks))
	for i, check := range checks {
		req, err := checkRequest(check, consistency)
		if err != nil {
			return nil, err
		}
		items[i] = &v1.CheckBulkPermissionsRequestItem{
			Resource:   req.Resource,
			Permission: req.Permission,
			Subject:    req.Subject,
			Context:    req.Context,
		}
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.permissions.CheckBulkPermissions(ctx, &v1.CheckBulkPermissionsRequest{
		Consistency: consistency.proto(),
		Items:       items,
	})
	if err != nil {
		return nil, classify(fmt.Sprintf("check bulk (%d items)", len(checks)), err)
	}
	if len(resp.Pairs) != len(checks) {
		return nil, fmt.Errorf("%w: check bulk answered %d of %d items", ErrUnavailable, len(resp.Pairs), len(checks))
	}
	out := make([]Decision, len(checks))
	for i, pair := range resp.Pairs {
		switch r := pair.Response.(type) {
		case *v1.CheckBulkPermissionsPair_Item:
			out[i] = decision(r.Item.Permissionship, r.Item.PartialCaveatInfo, resp.CheckedAt)
		case *v1.CheckBulkPermissionsPair_Error:
			return nil, fmt.Errorf("%w: check %s: %s", ErrUnavailable, describe(checks[i]), r.Error.GetMessage())
		default:
			return nil, fmt.Errorf("%w: check %s: empty answer", ErrUnavailable, describe(checks[i]))
		}
	}
	return out, nil
}

func checkRequest(check Check, consistency Consistency) (*v1.CheckPermissionRequest, error) {
	ctxStruct, err := structOf(check.Context)
	if err != nil {
		return nil, fmt.Errorf("%w: caveat context of %s: %v", ErrInvalid, describe(check), err)
	}
	return &v1.CheckPermissionRequest{
		Consistency: consistency.proto(),
		Resource:    objectRef(check.Permission.ResourceType.Object(check.ResourceID)),
		Permission:  check.Permission.Name,
		Subject:     subjectRef(check.Subject),
		Context:     ctxStruct,
	}, nil
}

func decision(p v1.CheckPermissionResponse_Permissionship, partial *v1.PartialCaveatInfo, at *v1.ZedToken) Decision {
	d := Decision{CheckedAt: ZedToken(at.GetToken())}
	switch p {
	case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
		d.Allowed = true
	case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		d.Conditional = true
		d.MissingContext = partial.GetMissingRequiredContext()
	}
	return d
}

func describe(c Check) string {
	return fmt.Sprintf("%s#%s@%s", c.Permission.ResourceType.Object(c.ResourceID), c.Permission.Name, c.Subject)
}
