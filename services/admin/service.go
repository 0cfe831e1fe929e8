// Package admin is the administration of Beep's authorization graph
// (beep.admin.v1.AuthzAdminService): the schema, relationships, checks and
// their explanation, lookups, the assertion runner, the deployment's
// health and the agreement between the databases and SpiceDB. beepctl and
// the schema playground call it through the gateway.
//
// Every RPC declares platform#moderate (reads) or platform#manage_schema
// (writes) on platform:beep, enforced by authz/connectauthz before the
// handler runs. Everything it does to SpiceDB goes through package authz.
package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/policytest"
	adminv1 "github.com/beepchat/beep/gen/beep/admin/v1"
	"github.com/beepchat/beep/gen/beep/admin/v1/adminv1connect"
	"github.com/beepchat/beep/services/community"
)

// Reconciler converges SpiceDB with a service's database: the community
// service.
type Reconciler interface {
	// CheckDrift compares, for the given servers (all when none), without
	// changing anything.
	CheckDrift(ctx context.Context, serverIDs ...uuid.UUID) ([]community.Drift, error)
	// Reconcile converges one server.
	Reconcile(ctx context.Context, serverID uuid.UUID) (community.Drift, error)
}

// Health is a service's health.
type Health int

// The healths of a service.
const (
	HealthUnknown Health = iota
	Serving
	NotServing
)

// Status is one service of the deployment, as ServicesStatus reports it.
type Status struct {
	Name    string
	Health  Health
	Version string
	// Detail says where it was asked, or what is wrong.
	Detail string
}

// Config is what the service runs with.
type Config struct {
	Authz *authz.Client
	Log   *slog.Logger
	// Reconciler is the community service; nil: CheckDrift and Reconcile
	// are unimplemented in this process.
	Reconciler Reconciler
	// Status reports the deployment's services; nil: ServicesStatus
	// reports SpiceDB only.
	Status func(ctx context.Context) []Status
	// PolicyFiles are the assertion files ListPolicyFiles and
	// ReadPolicyFile serve; nil: those of policies-test/, embedded.
	PolicyFiles fs.FS
}

// Service implements adminv1connect.AuthzAdminServiceHandler.
type Service struct {
	cfg Config
}

var _ adminv1connect.AuthzAdminServiceHandler = (*Service)(nil)

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{cfg: cfg}
}

// Handler returns the path and the Connect handler of the service.
func (s *Service) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return adminv1connect.NewAuthzAdminServiceHandler(s, opts...)
}

// Limits on what a request may carry.
const (
	maxSchemaBytes   = 1 << 20
	maxRelationships = 1000
	defaultPageSize  = 100
	maxPageSize      = 1000
)

// errorOf turns an error of package authz (or of a store) into a Connect
// error: what the request got wrong is InvalidArgument, a refused change
// FailedPrecondition, and anything else Unavailable (the graph failed) or
// Internal (logged).
func (s *Service) errorOf(ctx context.Context, op string, err error) error {
	var cerr *connect.Error
	switch {
	case errors.As(err, &cerr):
		return cerr
	case errors.Is(err, authz.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, authz.ErrSchemaBreaking), errors.Is(err, authz.ErrPreconditionFailed):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, authz.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		s.cfg.Log.WarnContext(ctx, "authorization graph unavailable", "op", op, "err", err)
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s: the authorization graph is unavailable; try again", op))
	}
	s.cfg.Log.ErrorContext(ctx, "admin", "op", op, "err", err)
	return connect.NewError(connect.CodeInternal, fmt.Errorf("%s failed", op))
}

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

// consistency is at least as fresh as token, or fully consistent: an
// administrator wants the newest answer, not the fastest.
func consistency(token string) authz.Consistency {
	if token == "" {
		return authz.FullyConsistent()
	}
	return authz.AtLeastAsFresh(authz.ZedToken(token))
}

// actor is who acts, for the log of writes.
func actor(ctx context.Context) string {
	p, _ := authz.PrincipalFrom(ctx)
	return p.UserID
}

// ReadSchema returns the running schema.
func (s *Service) ReadSchema(ctx context.Context, _ *connect.Request[adminv1.ReadSchemaRequest]) (*connect.Response[adminv1.ReadSchemaResponse], error) {
	text, err := s.cfg.Authz.ReadSchema(ctx)
	if err != nil {
		return nil, s.errorOf(ctx, "reading the schema", err)
	}
	out := &adminv1.ReadSchemaResponse{SchemaText: text}
	if text != "" {
		out.SchemaHash, _ = authz.SchemaHash(text)
	}
	return connect.NewResponse(out), nil
}

func schemaText(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return invalid("schema_text is required")
	case len(text) > maxSchemaBytes:
		return invalid("schema_text is over %d bytes", maxSchemaBytes)
	}
	return nil
}

// ValidateSchema compiles a schema with SpiceDB's development code.
func (s *Service) ValidateSchema(ctx context.Context, req *connect.Request[adminv1.ValidateSchemaRequest]) (*connect.Response[adminv1.ValidateSchemaResponse], error) {
	if err := schemaText(req.Msg.SchemaText); err != nil {
		return nil, err
	}
	errs, warnings, err := policytest.ValidateSchema(ctx, req.Msg.SchemaText)
	if err != nil {
		return nil, s.errorOf(ctx, "validating the schema", err)
	}
	out := &adminv1.ValidateSchemaResponse{Valid: len(errs) == 0}
	for _, p := range errs {
		out.Errors = append(out.Errors, problemProto(p))
	}
	for _, p := range warnings {
		out.Warnings = append(out.Warnings, problemProto(p))
	}
	return connect.NewResponse(out), nil
}

func problemProto(p policytest.Problem) *adminv1.SchemaProblem {
	return &adminv1.SchemaProblem{Line: uint32(p.Line), Column: uint32(p.Column), Message: p.Message, Source: p.Source, WarningName: p.Warning}
}

// DiffSchema compares a proposed schema with the running one.
func (s *Service) DiffSchema(ctx context.Context, req *connect.Request[adminv1.DiffSchemaRequest]) (*connect.Response[adminv1.DiffSchemaResponse], error) {
	if err := schemaText(req.Msg.SchemaText); err != nil {
		return nil, err
	}
	changes, err := s.cfg.Authz.SchemaChanges(ctx, req.Msg.SchemaText)
	if err != nil {
		return nil, s.errorOf(ctx, "comparing schemas", err)
	}
	out := &adminv1.DiffSchemaResponse{LiveSchemaHash: changes.CurrentHash, Identical: changes.Identical, Breaking: len(changes.Breaking()) > 0}
	for _, c := range changes.Changes {
		out.Changes = append(out.Changes, changeProto(c))
	}
	return connect.NewResponse(out), nil
}

// ApplySchema writes a schema, unless the change is breaking.
func (s *Service) ApplySchema(ctx context.Context, req *connect.Request[adminv1.ApplySchemaRequest]) (*connect.Response[adminv1.ApplySchemaResponse], error) {
	if err := schemaText(req.Msg.SchemaText); err != nil {
		return nil, err
	}
	changes, err := s.cfg.Authz.SchemaChanges(ctx, req.Msg.SchemaText)
	if err != nil {
		return nil, s.errorOf(ctx, "comparing schemas", err)
	}
	if h := req.Msg.IfSchemaHash; h != "" && h != changes.CurrentHash {
		return nil, connect.NewError(connect.CodeAborted, errors.New("the running schema changed since you read it (its hash differs from if_schema_hash); compare again"))
	}
	out := &adminv1.ApplySchemaResponse{}
	for _, c := range changes.Changes {
		out.Changes = append(out.Changes, changeProto(c))
	}
	if changes.Identical {
		return connect.NewResponse(out), nil
	}
	if breaking := changes.Breaking(); len(breaking) > 0 {
		reasons := make([]string, 0, len(breaking))
		for _, c := range breaking {
			reasons = append(reasons, c.String())
		}
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("refused: a breaking change (nothing was written):\n  %s", strings.Join(reasons, "\n  ")))
	}
	at, err := s.cfg.Authz.WriteSchema(ctx, req.Msg.SchemaText)
	if err != nil {
		return nil, s.errorOf(ctx, "writing the schema", err)
	}
	s.cfg.Log.WarnContext(ctx, "schema applied", "principal", actor(ctx), "changes", len(changes.Changes), "revision", at)
	out.Written, out.ZedToken = true, string(at)
	return connect.NewResponse(out), nil
}

func changeProto(c authz.SchemaChange) *adminv1.SchemaChange {
	kinds := map[authz.SchemaChangeKind]adminv1.SchemaChange_Kind{
		authz.DefinitionAdded:     adminv1.SchemaChange_KIND_DEFINITION_ADDED,
		authz.DefinitionRemoved:   adminv1.SchemaChange_KIND_DEFINITION_REMOVED,
		authz.RelationAdded:       adminv1.SchemaChange_KIND_RELATION_ADDED,
		authz.RelationRemoved:     adminv1.SchemaChange_KIND_RELATION_REMOVED,
		authz.RelationChanged:     adminv1.SchemaChange_KIND_RELATION_CHANGED,
		authz.PermissionAdded:     adminv1.SchemaChange_KIND_PERMISSION_ADDED,
		authz.PermissionRemoved:   adminv1.SchemaChange_KIND_PERMISSION_REMOVED,
		authz.PermissionChanged:   adminv1.SchemaChange_KIND_PERMISSION_CHANGED,
		authz.AllowedTypeAdded:    adminv1.SchemaChange_KIND_ALLOWED_TYPE_ADDED,
		authz.AllowedTypeRemoved:  adminv1.SchemaChange_KIND_ALLOWED_TYPE_REMOVED,
		authz.CaveatAdded:         adminv1.SchemaChange_KIND_CAVEAT_ADDED,
		authz.CaveatRemoved:       adminv1.SchemaChange_KIND_CAVEAT_REMOVED,
		authz.CaveatChanged:       adminv1.SchemaChange_KIND_CAVEAT_CHANGED,
		authz.SchemaCommentChange: adminv1.SchemaChange_KIND_COMMENT_CHANGED,
	}
	return &adminv1.SchemaChange{Kind: kinds[c.Kind], Definition: c.Definition, Name: c.Name, Before: c.Before, After: c.After,
		Breaking: c.Breaking, Reason: c.Reason}
}

// filterOf reads a RelationshipFilter.
func filterOf(f *adminv1.RelationshipFilter) (authz.Filter, error) {
	if f.GetResourceType() == "" {
		return authz.Filter{}, invalid("filter.resource_type is required")
	}
	out := authz.Filter{ResourceType: authz.ObjectType(f.GetResourceType()), ResourceID: f.GetResourceId(), Relation: f.GetRelation()}
	if f.GetSubjectType() != "" {
		out.Subject = &authz.SubjectFilter{Type: authz.ObjectType(f.GetSubjectType()), ID: f.GetSubjectId(), Relation: f.GetSubjectRelation()}
	} else if f.GetSubjectId() != "" || f.GetSubjectRelation() != "" {
		return authz.Filter{}, invalid("filter.subject_type is required with a subject id or relation")
	}
	return out, nil
}

func pageSize(n uint32) uint32 {
	switch {
	case n == 0:
		return defaultPageSize
	case n > maxPageSize:
		return maxPageSize
	}
	return n
}

// ReadRelationships returns one page of relationships.
func (s *Service) ReadRelationships(ctx context.Context, req *connect.Request[adminv1.ReadRelationshipsRequest]) (*connect.Response[adminv1.ReadRelationshipsResponse], error) {
	filter, err := filterOf(req.Msg.Filter)
	if err != nil {
		return nil, err
	}
	rels, next, err := s.cfg.Authz.ReadRelationshipsPage(ctx, filter, consistency(req.Msg.AtZedToken), pageSize(req.Msg.PageSize), req.Msg.PageToken)
	if err != nil {
		return nil, s.errorOf(ctx, "reading relationships", err)
	}
	out := &adminv1.ReadRelationshipsResponse{NextPageToken: next}
	for _, r := range rels {
		out.Relationships = append(out.Relationships, RelationshipProto(r))
	}
	return connect.NewResponse(out), nil
}

// RelationshipProto is the API form of a relationship.
func RelationshipProto(r authz.Relationship) *adminv1.Relationship {
	out := &adminv1.Relationship{
		Text:            authz.FormatRelationship(r),
		ResourceType:    string(r.Relation.ResourceType),
		ResourceId:      r.ResourceID,
		Relation:        r.Relation.Name,
		SubjectType:     string(r.Subject.Object.Type),
		SubjectId:       r.Subject.Object.ID,
		SubjectRelation: r.Subject.Relation,
	}
	if r.Caveat != nil {
		out.CaveatName = r.Caveat.Name
		out.CaveatContext, _ = structpb.NewStruct(r.Caveat.Context)
	}
	if !r.ExpiresAt.IsZero() {
		out.ExpiresAt = timestamppb.New(r.ExpiresAt)
	}
	return out
}

// relationships reads relationships in text form.
func relationships(texts []string) ([]authz.Relationship, error) {
	switch {
	case len(texts) == 0:
		return nil, invalid("relationships are required")
	case len(texts) > maxRelationships:
		return nil, invalid("at most %d relationships at once", maxRelationships)
	}
	out := make([]authz.Relationship, 0, len(texts))
	for i, t := range texts {
		r, err := authz.ParseRelationship(t)
		if err != nil {
			return nil, invalid("relationships[%d]: %v", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// fit refuses relationships the running schema cannot hold, saying why.
func (s *Service) fit(ctx context.Context, rels []authz.Relationship) error {
	schema, err := s.cfg.Authz.ReadSchema(ctx)
	if err != nil {
		return s.errorOf(ctx, "reading the schema", err)
	}
	if err := authz.FitRelationships(schema, rels); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	return nil
}

// WriteRelationships writes relationships, all or none.
func (s *Service) WriteRelationships(ctx context.Context, req *connect.Request[adminv1.WriteRelationshipsRequest]) (*connect.Response[adminv1.WriteRelationshipsResponse], error) {
	rels, err := relationships(req.Msg.Relationships)
	if err != nil {
		return nil, err
	}
	if err := s.fit(ctx, rels); err != nil {
		return nil, err
	}
	updates := make([]authz.Update, 0, len(rels))
	for _, r := range rels {
		if req.Msg.CreateOnly {
			updates = append(updates, authz.Create(r))
		} else {
			updates = append(updates, authz.Touch(r))
		}
	}
	at, err := s.cfg.Authz.Write(ctx, updates)
	if err != nil {
		return nil, s.errorOf(ctx, "writing relationships", err)
	}
	s.cfg.Log.WarnContext(ctx, "relationships written by an administrator", "principal", actor(ctx), "count", len(rels),
		"first", authz.FormatRelationship(rels[0]), "revision", at)
	return connect.NewResponse(&adminv1.WriteRelationshipsResponse{ZedToken: string(at), Written: uint32(len(rels))}), nil
}

// DeleteRelationships deletes the relationships given, or those matching a filter.
func (s *Service) DeleteRelationships(ctx context.Context, req *connect.Request[adminv1.DeleteRelationshipsRequest]) (*connect.Response[adminv1.DeleteRelationshipsResponse], error) {
	var (
		at  authz.ZedToken
		err error
	)
	switch {
	case len(req.Msg.Relationships) > 0 && req.Msg.Filter != nil:
		return nil, invalid("give relationships or a filter, not both")
	case req.Msg.Filter != nil:
		filter, ferr := filterOf(req.Msg.Filter)
		if ferr != nil {
			return nil, ferr
		}
		at, err = s.cfg.Authz.DeleteMatching(ctx, filter)
		s.cfg.Log.WarnContext(ctx, "relationships deleted by filter by an administrator", "principal", actor(ctx), "filter", fmt.Sprintf("%+v", req.Msg.Filter))
	default:
		rels, rerr := relationships(req.Msg.Relationships)
		if rerr != nil {
			return nil, rerr
		}
		if err := s.fit(ctx, rels); err != nil {
			return nil, err
		}
		updates := make([]authz.Update, 0, len(rels))
		for _, r := range rels {
			updates = append(updates, authz.Delete(r))
		}
		at, err = s.cfg.Authz.Write(ctx, updates)
		s.cfg.Log.WarnContext(ctx, "relationships deleted by an administrator", "principal", actor(ctx), "count", len(rels), "first", authz.FormatRelationship(rels[0]))
	}
	if err != nil {
		return nil, s.errorOf(ctx, "deleting relationships", err)
	}
	return connect.NewResponse(&adminv1.DeleteRelationshipsResponse{ZedToken: string(at)}), nil
}

// question reads the subject, permission, resource and context of a check.
func question(subject, permission, resource string, ctxStruct *structpb.Struct) (authz.Check, error) {
	sub, err := authz.ParseSubject(subject)
	if err != nil {
		return authz.Check{}, invalid("subject: %v", err)
	}
	obj, err := authz.ParseObject(resource)
	if err != nil {
		return authz.Check{}, invalid("resource: %v", err)
	}
	perm, err := authz.ParsePermissionName(obj.Type, permission)
	if err != nil {
		return authz.Check{}, invalid("permission: %v", err)
	}
	return authz.Check{Subject: sub, Permission: perm, ResourceID: obj.ID, Context: ctxStruct.AsMap()}, nil
}

// resultOf is the API form of a decision.
func resultOf(d authz.Decision) adminv1.CheckResult {
	switch {
	case d.Allowed:
		return adminv1.CheckResult_CHECK_RESULT_ALLOWED
	case d.Conditional:
		return adminv1.CheckResult_CHECK_RESULT_CAVEATED
	}
	return adminv1.CheckResult_CHECK_RESULT_DENIED
}

// Check answers, and explains, a check.
func (s *Service) Check(ctx context.Context, req *connect.Request[adminv1.CheckRequest]) (*connect.Response[adminv1.CheckResponse], error) {
	check, err := question(req.Msg.Subject, req.Msg.Permission, req.Msg.Resource, req.Msg.Context)
	if err != nil {
		return nil, err
	}
	out := &adminv1.CheckResponse{}
	var d authz.Decision
	if req.Msg.Explain {
		ex, err := s.cfg.Authz.Explain(ctx, check, consistency(req.Msg.AtZedToken))
		if err != nil {
			return nil, s.errorOf(ctx, "checking", err)
		}
		d, out.Explanation = ex.Decision, ExplanationProto(ex.Root)
	} else if d, err = s.cfg.Authz.Check(ctx, check, consistency(req.Msg.AtZedToken)); err != nil {
		return nil, s.errorOf(ctx, "checking", err)
	}
	out.Result, out.MissingContext, out.CheckedAt = resultOf(d), d.MissingContext, string(d.CheckedAt)
	return connect.NewResponse(out), nil
}

// ExplanationProto is the API form of an explanation tree.
func ExplanationProto(n *authz.ExplainNode) *adminv1.ExplainNode {
	if n == nil {
		return nil
	}
	kinds := map[authz.ExplainKind]adminv1.ExplainNode_Kind{
		authz.ExplainCheck:        adminv1.ExplainNode_KIND_CHECK,
		authz.ExplainUnion:        adminv1.ExplainNode_KIND_UNION,
		authz.ExplainIntersection: adminv1.ExplainNode_KIND_INTERSECTION,
		authz.ExplainExclusion:    adminv1.ExplainNode_KIND_EXCLUSION,
		authz.ExplainArrow:        adminv1.ExplainNode_KIND_ARROW,
		authz.ExplainComputed:     adminv1.ExplainNode_KIND_COMPUTED,
		authz.ExplainNil:          adminv1.ExplainNode_KIND_NIL,
		authz.ExplainDirect:       adminv1.ExplainNode_KIND_DIRECT,
		authz.ExplainSelf:         adminv1.ExplainNode_KIND_SELF,
	}
	out := &adminv1.ExplainNode{Kind: kinds[n.Kind], Result: outcomeProto(n.Outcome), Expression: n.Expression, Reason: n.Reason, Cached: n.Cached}
	if n.Kind == authz.ExplainCheck {
		out.Resource, out.Relation, out.IsPermission, out.Subject = n.Object(), n.Relation, n.IsPermission, n.Subject.String()
	}
	for _, r := range n.Relationships {
		out.Relationships = append(out.Relationships, authz.FormatRelationship(r))
	}
	if c := n.Caveat; c != nil {
		out.Caveat = &adminv1.CaveatEvaluation{Name: c.Name, Expression: c.Expression, Result: outcomeProto(c.Outcome), MissingContext: c.MissingContext}
		out.Caveat.Context, _ = structpb.NewStruct(c.Context)
	}
	if n.Duration > 0 {
		out.Duration = durationpb.New(n.Duration)
	}
	for _, ch := range n.Children {
		out.Children = append(out.Children, ExplanationProto(ch))
	}
	return out
}

func outcomeProto(o authz.Outcome) adminv1.ExplainNode_Result {
	switch o {
	case authz.Holds:
		return adminv1.ExplainNode_RESULT_HOLDS
	case authz.DoesNotHold:
		return adminv1.ExplainNode_RESULT_DOES_NOT_HOLD
	case authz.Caveated:
		return adminv1.ExplainNode_RESULT_CAVEATED
	}
	return adminv1.ExplainNode_RESULT_NOT_EVALUATED
}

// LookupResources returns one page of the resources a subject reaches.
func (s *Service) LookupResources(ctx context.Context, req *connect.Request[adminv1.LookupResourcesRequest]) (*connect.Response[adminv1.LookupResourcesResponse], error) {
	sub, err := authz.ParseSubject(req.Msg.Subject)
	if err != nil {
		return nil, invalid("subject: %v", err)
	}
	perm, err := authz.ParsePermissionName(authz.ObjectType(req.Msg.ResourceType), req.Msg.Permission)
	if err != nil {
		return nil, invalid("resource_type and permission: %v", err)
	}
	found, next, err := s.cfg.Authz.LookupResourcesPage(ctx, perm, sub, authz.Page{Size: pageSize(req.Msg.PageSize), Cursor: req.Msg.PageToken,
		Consistency: consistency(req.Msg.AtZedToken), Context: req.Msg.Context.AsMap()})
	if err != nil {
		return nil, s.errorOf(ctx, "looking up resources", err)
	}
	out := &adminv1.LookupResourcesResponse{NextPageToken: next}
	for _, f := range found {
		out.Resources = append(out.Resources, &adminv1.Found{Id: f.ID, Caveated: f.Conditional})
	}
	return connect.NewResponse(out), nil
}

// LookupSubjects returns the subjects that hold a permission on a resource.
func (s *Service) LookupSubjects(ctx context.Context, req *connect.Request[adminv1.LookupSubjectsRequest]) (*connect.Response[adminv1.LookupSubjectsResponse], error) {
	obj, err := authz.ParseObject(req.Msg.Resource)
	if err != nil {
		return nil, invalid("resource: %v", err)
	}
	perm, err := authz.ParsePermissionName(obj.Type, req.Msg.Permission)
	if err != nil {
		return nil, invalid("permission: %v", err)
	}
	if _, err := authz.ParseObject(req.Msg.SubjectType + ":x"); err != nil {
		return nil, invalid("subject_type %q is not a definition name", req.Msg.SubjectType)
	}
	subjects, err := s.cfg.Authz.LookupSubjects(ctx, perm, obj.ID, authz.ObjectType(req.Msg.SubjectType), consistency(req.Msg.AtZedToken))
	if err != nil {
		return nil, s.errorOf(ctx, "looking up subjects", err)
	}
	out := &adminv1.LookupSubjectsResponse{Everyone: subjects.Everyone}
	for _, f := range subjects.Found {
		out.Subjects = append(out.Subjects, &adminv1.Found{Id: req.Msg.SubjectType + ":" + f.ID, Caveated: f.Conditional})
	}
	for _, f := range subjects.Except {
		out.Excluded = append(out.Excluded, &adminv1.Found{Id: req.Msg.SubjectType + ":" + f.ID, Caveated: f.Conditional})
	}
	return connect.NewResponse(out), nil
}

// RunPolicies runs a validation file in a sandbox, with the runner CI uses.
func (s *Service) RunPolicies(ctx context.Context, req *connect.Request[adminv1.RunPoliciesRequest]) (*connect.Response[adminv1.RunPoliciesResponse], error) {
	switch {
	case strings.TrimSpace(req.Msg.Content) == "":
		return nil, invalid("content is required")
	case len(req.Msg.Content) > 4*maxSchemaBytes:
		return nil, invalid("content is over %d bytes", 4*maxSchemaBytes)
	case len(req.Msg.Checks) > 100:
		return nil, invalid("at most 100 checks")
	}
	name := req.Msg.FileName
	if name == "" {
		name = "policies.yaml"
	}
	live, err := s.cfg.Authz.ReadSchema(ctx)
	if err != nil {
		return nil, s.errorOf(ctx, "reading the schema", err)
	}
	opts := policytest.Options{Schema: live}
	// Checks that do not parse are answered here; the others in the sandbox.
	results := make([]*adminv1.CheckWatchResult, len(req.Msg.Checks))
	var asked []int
	for i, w := range req.Msg.Checks {
		results[i] = &adminv1.CheckWatchResult{Check: w}
		check, err := question(w.Subject, w.Permission, w.Resource, w.Context)
		if err != nil {
			results[i].Error = connect.CodeOf(err).String() + ": " + errors.Unwrap(err).Error()
			continue
		}
		opts.Checks = append(opts.Checks, policytest.Question{Check: check, Explain: w.Explain})
		asked = append(asked, i)
	}
	report, err := policytest.RunWith(ctx, name, []byte(req.Msg.Content), "", opts)
	if err != nil {
		return nil, s.errorOf(ctx, "running the file", err)
	}
	out := &adminv1.RunPoliciesResponse{FileName: name, Passed: report.OK(), Assertions: uint32(report.Assertions),
		ExpectedRelations: uint32(report.ExpectedRelations), GeneratedExpectedRelations: report.Generated, Checks: results}
	for _, f := range report.Failures {
		out.Failures = append(out.Failures, &adminv1.PolicyFailure{Line: uint32(f.Line), Column: uint32(f.Column), Kind: f.Kind, Message: f.Message, Context: f.Context})
	}
	for j, a := range report.Checks {
		r := results[asked[j]]
		if a.Err != nil {
			r.Error = a.Err.Error()
			continue
		}
		r.Result, r.MissingContext, r.Explanation = resultOf(a.Decision), a.Decision.MissingContext, ExplanationProto(a.Explanation)
	}
	return connect.NewResponse(out), nil
}

// ServicesStatus reports the deployment's services.
func (s *Service) ServicesStatus(ctx context.Context, _ *connect.Request[adminv1.ServicesStatusRequest]) (*connect.Response[adminv1.ServicesStatusResponse], error) {
	var statuses []Status
	if s.cfg.Status != nil {
		statuses = s.cfg.Status(ctx)
	} else {
		statuses = []Status{SpiceDBStatus(ctx, s.cfg.Authz, "")}
	}
	out := &adminv1.ServicesStatusResponse{}
	for _, st := range statuses {
		h := adminv1.ServiceStatus_HEALTH_UNKNOWN
		switch st.Health {
		case Serving:
			h = adminv1.ServiceStatus_HEALTH_SERVING
		case NotServing:
			h = adminv1.ServiceStatus_HEALTH_NOT_SERVING
		}
		out.Services = append(out.Services, &adminv1.ServiceStatus{Name: st.Name, Health: h, Version: st.Version, Detail: st.Detail})
	}
	return connect.NewResponse(out), nil
}

// SpiceDBStatus asks SpiceDB for its schema: serving when it answers with one.
func SpiceDBStatus(ctx context.Context, c *authz.Client, version string) Status {
	st := Status{Name: "spicedb", Version: version}
	schema, err := c.ReadSchema(ctx)
	switch {
	case err != nil:
		st.Health, st.Detail = NotServing, err.Error()
	case schema == "":
		st.Health, st.Detail = NotServing, "SpiceDB holds no schema"
	default:
		st.Health = Serving
		hash, _ := authz.SchemaHash(schema)
		if want, _ := authz.SchemaHash(authz.SchemaText); hash != want {
			st.Detail = "its schema differs from this build's"
		}
	}
	return st
}

// serverIDs reads server ids.
func serverIDs(ids []string) ([]uuid.UUID, error) {
	out := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		u, err := uuid.Parse(id)
		if err != nil {
			return nil, invalid("server id %q is not valid", id)
		}
		out = append(out, u)
	}
	return out, nil
}

func driftProto(d community.Drift) *adminv1.Drift {
	out := &adminv1.Drift{ServerId: d.ServerID}
	for _, r := range d.Missing {
		out.Missing = append(out.Missing, authz.FormatRelationship(r))
	}
	for _, r := range d.Extra {
		out.Extra = append(out.Extra, authz.FormatRelationship(r))
	}
	return out
}

func (s *Service) reconciler() (Reconciler, error) {
	if s.cfg.Reconciler == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this process runs no reconciler"))
	}
	return s.cfg.Reconciler, nil
}

// CheckDrift compares SpiceDB with the databases.
func (s *Service) CheckDrift(ctx context.Context, req *connect.Request[adminv1.CheckDriftRequest]) (*connect.Response[adminv1.CheckDriftResponse], error) {
	r, err := s.reconciler()
	if err != nil {
		return nil, err
	}
	ids, err := serverIDs(req.Msg.ServerIds)
	if err != nil {
		return nil, err
	}
	drift, err := r.CheckDrift(ctx, ids...)
	if err != nil {
		return nil, s.errorOf(ctx, "comparing SpiceDB with the database", err)
	}
	out := &adminv1.CheckDriftResponse{}
	for _, d := range drift {
		out.Drift = append(out.Drift, driftProto(d))
	}
	return connect.NewResponse(out), nil
}

// Reconcile converges SpiceDB to the databases, as `beep reconcile` does.
func (s *Service) Reconcile(ctx context.Context, req *connect.Request[adminv1.ReconcileRequest]) (*connect.Response[adminv1.ReconcileResponse], error) {
	r, err := s.reconciler()
	if err != nil {
		return nil, err
	}
	ids, err := serverIDs(req.Msg.ServerIds)
	if err != nil {
		return nil, err
	}
	drift, err := r.CheckDrift(ctx, ids...)
	if err != nil {
		return nil, s.errorOf(ctx, "comparing SpiceDB with the database", err)
	}
	out := &adminv1.ReconcileResponse{}
	for _, d := range drift {
		id, err := uuid.Parse(d.ServerID)
		if err != nil {
			return nil, s.errorOf(ctx, "reconciling", err)
		}
		done, err := r.Reconcile(ctx, id)
		if err != nil {
			return nil, s.errorOf(ctx, "reconciling server "+d.ServerID, err)
		}
		if !done.Empty() {
			out.Reconciled = append(out.Reconciled, driftProto(done))
			out.ZedToken = string(done.At)
		}
	}
	if len(out.Reconciled) > 0 {
		s.cfg.Log.WarnContext(ctx, "reconciled by an administrator", "principal", actor(ctx), "servers", len(out.Reconciled))
	}
	return connect.NewResponse(out), nil
}

// WatchRelationships streams relationship changes until the client leaves.
func (s *Service) WatchRelationships(ctx context.Context, req *connect.Request[adminv1.WatchRelationshipsRequest], stream *connect.ServerStream[adminv1.WatchRelationshipsResponse]) error {
	types := make([]authz.ObjectType, 0, len(req.Msg.ResourceTypes))
	for _, t := range req.Msg.ResourceTypes {
		if _, err := authz.ParseObject(t + ":x"); err != nil {
			return invalid("resource type %q is not a definition name", t)
		}
		types = append(types, authz.ObjectType(t))
	}
	// Headers now, so that the client knows the watch has begun.
	if err := stream.Send(nil); err != nil {
		return err
	}
	for change, err := range s.cfg.Authz.Watch(ctx, authz.ZedToken(req.Msg.SinceZedToken), types...) {
		if ctx.Err() != nil {
			return nil // the client left
		}
		if errors.Is(err, authz.ErrInvalid) {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("SpiceDB cannot watch: %w", err))
		}
		if err != nil {
			return s.errorOf(ctx, "watching", err)
		}
		msg := &adminv1.WatchRelationshipsResponse{ChangesThrough: string(change.At)}
		for _, u := range change.Updates {
			op := adminv1.RelationshipChange_OPERATION_TOUCH
			switch u.Op {
			case authz.OpCreate:
				op = adminv1.RelationshipChange_OPERATION_CREATE
			case authz.OpDelete:
				op = adminv1.RelationshipChange_OPERATION_DELETE
			}
			msg.Changes = append(msg.Changes, &adminv1.RelationshipChange{Operation: op, Relationship: RelationshipProto(u.Relationship)})
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return nil
}
