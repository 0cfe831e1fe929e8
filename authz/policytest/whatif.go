package policytest

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/authzed/spicedb/pkg/development"
	core "github.com/authzed/spicedb/pkg/proto/core/v1"
	devinterface "github.com/authzed/spicedb/pkg/proto/developer/v1"
	"github.com/authzed/spicedb/pkg/tuple"
	"github.com/authzed/spicedb/pkg/validationfile"
	"github.com/authzed/spicedb/pkg/validationfile/blocks"

	"github.com/beepchat/beep/authz"
)

// PermissionChange is how one permission of one object differs between two
// schemas over the same relationships.
type PermissionChange struct {
	// Resource is "type:id".
	Resource, Permission string
	// Gained are the subjects (in the validation-file form: "user:ann",
	// "user:*", "user:ann[...]" when caveated) holding it only with the
	// proposed schema; Lost those holding it only with the current one.
	Gained, Lost []string
}

// WhatIfReport is what a proposed schema would change.
type WhatIfReport struct {
	// Errors are set when the proposed schema does not compile or cannot
	// hold the relationships; nothing else is then computed.
	Errors []Failure
	// Compared is how many (object, permission) pairs were compared, and
	// Truncated whether some were left out past the limit.
	Compared  int
	Truncated bool
	Changes   []PermissionChange
	// Assertions is how many assertions the file held; Failures are those
	// (and the expected relations) that fail with the proposed schema.
	Assertions int
	Failures   []Failure
}

// WhatIf evaluates a proposed schema against relationships (in text form,
// such as a snapshot of the running graph) beside the current schema: for
// every object the relationships name and every permission of its
// definition (at most maxPairs pairs), the subjects SpiceDB expands it to
// with each schema; and, when file is given, its assertions and expected
// relations with the proposed schema and these relationships (its own
// schema and relationships are ignored). Everything runs in SpiceDB's
// development sandbox.
func WhatIf(ctx context.Context, current, proposed string, relationships []string, name string, file []byte, maxPairs int) (WhatIfReport, error) {
	var report WhatIfReport
	rels := make([]*core.RelationTuple, 0, len(relationships))
	objects := map[string]bool{}
	for _, text := range relationships {
		r, err := tuple.Parse(text)
		if err != nil {
			return report, fmt.Errorf("%w: relationship %q: %v", authz.ErrInvalid, text, err)
		}
		rels = append(rels, r.ToCoreTuple())
		objects[r.Resource.ObjectType+":"+r.Resource.ObjectID] = true
		if r.Subject.ObjectID != tuple.PublicWildcard {
			objects[r.Subject.ObjectType+":"+r.Subject.ObjectID] = true
		}
	}

	proposedCtx, devErrs, err := development.NewDevContext(ctx, &devinterface.RequestContext{Schema: proposed, Relationships: rels})
	if err != nil {
		return report, err
	}
	if devErrs != nil {
		for _, e := range devErrs.InputErrors {
			report.Errors = append(report.Errors, failure(name, e, int(e.Line)))
		}
		return report, nil
	}
	defer proposedCtx.Dispose()
	currentCtx, devErrs, err := development.NewDevContext(ctx, &devinterface.RequestContext{Schema: current, Relationships: rels})
	if err != nil {
		return report, err
	}
	if devErrs != nil {
		return report, fmt.Errorf("the current schema cannot hold its relationships: %v", devErrs.InputErrors)
	}
	defer currentCtx.Dispose()

	currentPerms, err := permissionsOf(current)
	if err != nil {
		return report, err
	}
	proposedPerms, err := permissionsOf(proposed)
	if err != nil {
		return report, err
	}
	sorted := make([]string, 0, len(objects))
	for o := range objects {
		sorted = append(sorted, o)
	}
	sort.Strings(sorted)
	type pair struct{ object, permission string }
	var pairs []pair
	for _, o := range sorted {
		typ := o[:strings.Index(o, ":")]
		names := map[string]bool{}
		for _, p := range currentPerms[typ] {
			names[p] = true
		}
		for _, p := range proposedPerms[typ] {
			names[p] = true
		}
		perms := make([]string, 0, len(names))
		for p := range names {
			perms = append(perms, p)
		}
		sort.Strings(perms)
		for _, p := range perms {
			if len(pairs) == maxPairs {
				report.Truncated = true
				break
			}
			pairs = append(pairs, pair{o, p})
		}
	}
	report.Compared = len(pairs)

	expand := func(devCtx *development.DevContext, perms map[string][]string) (map[string]map[string]bool, error) {
		keys := blocks.ValidationMap{}
		for _, p := range pairs {
			typ, id, _ := strings.Cut(p.object, ":")
			if !contains(perms[typ], p.permission) {
				continue
			}
			keys[blocks.ObjectRelation{ObjectRelationString: p.object + "#" + p.permission,
				ObjectAndRelation: tuple.ObjectAndRelation{ObjectType: typ, ObjectID: id, Relation: p.permission}}] = nil
		}
		set, _, err := development.RunValidation(devCtx, &blocks.ParsedExpectedRelations{ValidationMap: keys})
		if err != nil {
			return nil, err
		}
		out := map[string]map[string]bool{}
		if set == nil {
			return out, nil
		}
		for onr, found := range set.SubjectsByONR() {
			subjects := map[string]bool{}
			for _, s := range found.ListFound() {
				subjects[s.ToValidationString()] = true
			}
			out[onr] = subjects
		}
		return out, nil
	}
	before, err := expand(currentCtx, currentPerms)
	if err != nil {
		return report, fmt.Errorf("expanding with the current schema: %w", err)
	}
	after, err := expand(proposedCtx, proposedPerms)
	if err != nil {
		return report, fmt.Errorf("expanding with the proposed schema: %w", err)
	}
	for _, p := range pairs {
		key := p.object + "#" + p.permission
		c := PermissionChange{Resource: p.object, Permission: p.permission}
		for s := range after[key] {
			if !before[key][s] {
				c.Gained = append(c.Gained, s)
			}
		}
		for s := range before[key] {
			if !after[key][s] {
				c.Lost = append(c.Lost, s)
			}
		}
		if len(c.Gained)+len(c.Lost) > 0 {
			sort.Strings(c.Gained)
			sort.Strings(c.Lost)
			report.Changes = append(report.Changes, c)
		}
	}

	if len(strings.TrimSpace(string(file))) == 0 {
		return report, nil
	}
	parsed, err := validationfile.DecodeValidationFile(file)
	if err != nil {
		report.Failures = append(report.Failures, Failure{File: name, Kind: "PARSE_ERROR", Message: err.Error()})
		return report, nil
	}
	report.Assertions = len(parsed.Assertions.AssertTrue) + len(parsed.Assertions.AssertFalse) + len(parsed.Assertions.AssertCaveated)
	assertionErrs, err := development.RunAllAssertions(proposedCtx, &parsed.Assertions)
	if err != nil {
		return report, fmt.Errorf("running assertions: %w", err)
	}
	for _, e := range assertionErrs {
		report.Failures = append(report.Failures, failure(name, e, int(e.Line)))
	}
	_, validationErrs, err := development.RunValidation(proposedCtx, &parsed.ExpectedRelations)
	if err != nil {
		return report, fmt.Errorf("running expected relations: %w", err)
	}
	for _, e := range validationErrs {
		report.Failures = append(report.Failures, failure(name, e, int(e.Line)))
	}
	return report, nil
}

// permissionsOf lists the permissions of every definition of a schema.
func permissionsOf(schema string) (map[string][]string, error) {
	compiled, err := authz.CompileSchema(schema)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, def := range compiled.ObjectDefinitions {
		for _, r := range def.GetRelation() {
			if r.GetUsersetRewrite() != nil {
				out[def.GetName()] = append(out[def.GetName()], r.GetName())
			}
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
