package admin

// The RPCs the schema playground needs beyond the others: the embedded
// assertion files of policies-test/, and what a proposed schema would
// change over the running relationships.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/policytest"
	adminv1 "github.com/beepchat/beep/gen/beep/admin/v1"
	policies "github.com/beepchat/beep/policies-test"
)

// The limits of WhatIfSchema.
const (
	defaultWhatIfRelationships = 5000
	maxWhatIfRelationships     = 20000
	maxWhatIfPairs             = 20000
)

func (s *Service) policyFiles() fs.FS {
	if s.cfg.PolicyFiles != nil {
		return s.cfg.PolicyFiles
	}
	return policies.Files
}

// ListPolicyFiles lists the embedded assertion files.
func (s *Service) ListPolicyFiles(ctx context.Context, _ *connect.Request[adminv1.ListPolicyFilesRequest]) (*connect.Response[adminv1.ListPolicyFilesResponse], error) {
	files := s.policyFiles()
	out := &adminv1.ListPolicyFilesResponse{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (path.Ext(p) != ".yaml" && path.Ext(p) != ".yml") {
			return err
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		out.Files = append(out.Files, &adminv1.PolicyFileInfo{Name: p, Title: title(string(data))})
		return nil
	})
	if err != nil {
		return nil, s.errorOf(ctx, "listing the policy files", err)
	}
	sort.Slice(out.Files, func(i, j int) bool { return out.Files[i].Name < out.Files[j].Name })
	return connect.NewResponse(out), nil
}

// title is the first line of a file's leading comment.
func title(content string) string {
	line, _, _ := strings.Cut(content, "\n")
	if t, ok := strings.CutPrefix(line, "#"); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// ReadPolicyFile returns one embedded file, its schema inline.
func (s *Service) ReadPolicyFile(ctx context.Context, req *connect.Request[adminv1.ReadPolicyFileRequest]) (*connect.Response[adminv1.ReadPolicyFileResponse], error) {
	name := req.Msg.Name
	if name == "" || !fs.ValidPath(name) {
		return nil, invalid("name must be a file of ListPolicyFiles, such as discord/05-worked-example.yaml")
	}
	data, err := fs.ReadFile(s.policyFiles(), name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no policy file %q", name))
	} else if err != nil {
		return nil, s.errorOf(ctx, "reading the policy file", err)
	}
	return connect.NewResponse(&adminv1.ReadPolicyFileResponse{Name: name, Content: InlineSchema(string(data), authz.SchemaText)}), nil
}

// InlineSchema replaces the line `schemaFile: ...` of a validation file by
// the schema, inline, so that the file stands alone (in the playground, in
// play.authzed.com). A file without one is returned as it is.
func InlineSchema(content, schema string) string {
	lines := strings.SplitAfter(content, "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "schemaFile:") {
			continue
		}
		var b strings.Builder
		b.WriteString("schema: |-\n")
		for _, l := range strings.Split(strings.TrimRight(schema, "\n"), "\n") {
			if l == "" {
				b.WriteString("\n")
			} else {
				b.WriteString("  " + l + "\n")
			}
		}
		lines[i] = b.String()
		return strings.Join(lines, "")
	}
	return content
}

// WhatIfSchema runs a proposed schema against a snapshot of the running
// relationships.
func (s *Service) WhatIfSchema(ctx context.Context, req *connect.Request[adminv1.WhatIfSchemaRequest]) (*connect.Response[adminv1.WhatIfSchemaResponse], error) {
	if err := schemaText(req.Msg.SchemaText); err != nil {
		return nil, err
	}
	if len(req.Msg.Content) > 4*maxSchemaBytes {
		return nil, invalid("content is over %d bytes", 4*maxSchemaBytes)
	}
	limit := int(req.Msg.MaxRelationships)
	switch {
	case limit == 0:
		limit = defaultWhatIfRelationships
	case limit > maxWhatIfRelationships:
		limit = maxWhatIfRelationships
	}
	out := &adminv1.WhatIfSchemaResponse{}
	errs, _, err := policytest.ValidateSchema(ctx, req.Msg.SchemaText)
	if err != nil {
		return nil, s.errorOf(ctx, "validating the schema", err)
	}
	if len(errs) > 0 {
		for _, p := range errs {
			out.Errors = append(out.Errors, problemProto(p))
		}
		return connect.NewResponse(out), nil
	}
	live, err := s.cfg.Authz.ReadSchema(ctx)
	if err != nil {
		return nil, s.errorOf(ctx, "reading the schema", err)
	}
	rels, truncated, err := s.snapshot(ctx, live, limit)
	if err != nil {
		return nil, s.errorOf(ctx, "reading the running relationships", err)
	}
	report, err := policytest.WhatIf(ctx, live, req.Msg.SchemaText, rels, "what-if", []byte(req.Msg.Content), maxWhatIfPairs)
	if err != nil {
		return nil, s.errorOf(ctx, "evaluating the proposed schema", err)
	}
	out.Relationships, out.Truncated, out.Compared = uint32(len(rels)), truncated || report.Truncated, uint32(report.Compared)
	if len(report.Errors) > 0 {
		for _, f := range report.Errors {
			out.Errors = append(out.Errors, &adminv1.SchemaProblem{Line: uint32(f.Line), Column: uint32(f.Column), Message: f.Message, Source: f.Context})
		}
		return connect.NewResponse(out), nil
	}
	out.Valid = true
	for _, c := range report.Changes {
		out.Changes = append(out.Changes, &adminv1.PermissionChange{Resource: c.Resource, Permission: c.Permission, Gained: c.Gained, Lost: c.Lost})
	}
	out.Assertions = uint32(report.Assertions)
	for _, f := range report.Failures {
		out.Failures = append(out.Failures, &adminv1.PolicyFailure{Line: uint32(f.Line), Column: uint32(f.Column), Kind: f.Kind, Message: f.Message, Context: f.Context})
	}
	changes, err := s.cfg.Authz.SchemaChanges(ctx, req.Msg.SchemaText)
	if err != nil {
		return nil, s.errorOf(ctx, "comparing schemas", err)
	}
	out.LiveSchemaHash, out.Breaking = changes.CurrentHash, len(changes.Breaking()) > 0
	for _, c := range changes.Changes {
		out.SchemaChanges = append(out.SchemaChanges, changeProto(c))
	}
	return connect.NewResponse(out), nil
}

// snapshot reads up to limit running relationships, of every definition
// of the running schema, at one revision.
func (s *Service) snapshot(ctx context.Context, live string, limit int) (rels []string, truncated bool, err error) {
	compiled, err := authz.CompileSchema(live)
	if err != nil {
		return nil, false, err
	}
	// One revision for every page: that of a fully consistent check.
	d, err := s.cfg.Authz.Check(ctx, authz.Check{Subject: authz.UserSubject("beep-what-if-snapshot"), Permission: authz.Platform.Moderate,
		ResourceID: authz.PlatformID}, authz.FullyConsistent())
	if err != nil {
		return nil, false, err
	}
	at := authz.AtExactSnapshot(d.CheckedAt)
	for _, def := range compiled.ObjectDefinitions {
		cursor := ""
		for {
			page, next, err := s.cfg.Authz.ReadRelationshipsPage(ctx, authz.Filter{ResourceType: authz.ObjectType(def.GetName())}, at, maxPageSize, cursor)
			if err != nil {
				return nil, false, err
			}
			for _, r := range page {
				if len(rels) == limit {
					return rels, true, nil
				}
				rels = append(rels, authz.FormatRelationship(r))
			}
			if next == "" {
				break
			}
			cursor = next
		}
	}
	return rels, false, nil
}
