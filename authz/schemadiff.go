package authz

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/authzed/spicedb/pkg/caveats/types"
	"github.com/authzed/spicedb/pkg/diff"
	caveatdiff "github.com/authzed/spicedb/pkg/diff/caveats"
	nsdiff "github.com/authzed/spicedb/pkg/diff/namespace"
	core "github.com/authzed/spicedb/pkg/proto/core/v1"
	"github.com/authzed/spicedb/pkg/schema"
	"github.com/authzed/spicedb/pkg/schemadsl/compiler"
	"github.com/authzed/spicedb/pkg/schemadsl/input"
)

// SchemaChangeKind is what a [SchemaChange] changes.
type SchemaChangeKind string

// The kinds of schema changes.
const (
	DefinitionAdded     SchemaChangeKind = "definition-added"
	DefinitionRemoved   SchemaChangeKind = "definition-removed"
	RelationAdded       SchemaChangeKind = "relation-added"
	RelationRemoved     SchemaChangeKind = "relation-removed"
	RelationChanged     SchemaChangeKind = "relation-changed"
	PermissionAdded     SchemaChangeKind = "permission-added"
	PermissionRemoved   SchemaChangeKind = "permission-removed"
	PermissionChanged   SchemaChangeKind = "permission-changed"
	AllowedTypeAdded    SchemaChangeKind = "allowed-type-added"
	AllowedTypeRemoved  SchemaChangeKind = "allowed-type-removed"
	CaveatAdded         SchemaChangeKind = "caveat-added"
	CaveatRemoved       SchemaChangeKind = "caveat-removed"
	CaveatChanged       SchemaChangeKind = "caveat-changed"
	SchemaCommentChange SchemaChangeKind = "comment-changed"
)

// SchemaChange is one difference between two schemas, as SpiceDB's own
// schema diff sees it.
type SchemaChange struct {
	Kind SchemaChangeKind
	// Definition is the definition (or caveat) changed.
	Definition string
	// Name is the relation, permission or caveat parameter changed, if any.
	Name string
	// Before and After are what changed: a permission's expression, an
	// allowed type ("role#member"), a caveat parameter's type.
	Before, After string
	// Breaking is set by [Client.SchemaChanges] on a change that would
	// orphan relationships or remove what this build of Beep uses.
	Breaking bool
	// Reason says why it is breaking, or what to look out for.
	Reason string
}

func (c SchemaChange) String() string {
	s := string(c.Kind) + " " + c.Definition
	if c.Name != "" {
		s += "#" + c.Name
	}
	if c.Before != "" || c.After != "" {
		s += fmt.Sprintf(" (%s -> %s)", orDash(c.Before), orDash(c.After))
	}
	if c.Breaking {
		s += " BREAKING: " + c.Reason
	} else if c.Reason != "" {
		s += ": " + c.Reason
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// CompileSchema compiles a schema with SpiceDB's compiler; its error matches
// ErrInvalid and says where the schema is wrong.
func CompileSchema(text string) (*compiler.CompiledSchema, error) {
	compiled, err := compiler.Compile(compiler.InputSchema{Source: input.Source("schema"), SchemaString: text}, compiler.AllowUnprefixedObjectType())
	if err != nil {
		return nil, fmt.Errorf("%w: schema does not compile: %v", ErrInvalid, err)
	}
	return compiled, nil
}

// DiffSchemas lists what proposed changes relative to current, in order of
// definition. It reads nothing: Breaking is set only by [Client.SchemaChanges].
func DiffSchemas(current, proposed string) ([]SchemaChange, error) {
	before, err := CompileSchema(current)
	if err != nil {
		return nil, fmt.Errorf("the current schema: %w", err)
	}
	after, err := CompileSchema(proposed)
	if err != nil {
		return nil, err
	}
	d, err := diff.DiffSchemas(diff.NewDiffableSchemaFromCompiledSchema(before), diff.NewDiffableSchemaFromCompiledSchema(after), types.Default.TypeSet)
	if err != nil {
		return nil, fmt.Errorf("%w: comparing schemas: %v", ErrInvalid, err)
	}
	relationsOf := func(c *compiler.CompiledSchema) map[string]*core.Relation {
		out := map[string]*core.Relation{}
		for _, def := range c.ObjectDefinitions {
			for _, r := range def.Relation {
				out[def.Name+"#"+r.Name] = r
			}
		}
		return out
	}
	oldRels, newRels := relationsOf(before), relationsOf(after)
	var out []SchemaChange
	for _, name := range d.AddedNamespaces {
		out = append(out, SchemaChange{Kind: DefinitionAdded, Definition: name})
	}
	for _, name := range d.RemovedNamespaces {
		out = append(out, SchemaChange{Kind: DefinitionRemoved, Definition: name})
	}
	for name, nd := range d.ChangedNamespaces {
		for _, delta := range nd.Deltas() {
			key := name + "#" + delta.RelationName
			ch := SchemaChange{Definition: name, Name: delta.RelationName}
			switch delta.Type {
			case nsdiff.AddedRelation:
				ch.Kind, ch.After = RelationAdded, allowedTypesText(newRels[key])
			case nsdiff.RemovedRelation:
				ch.Kind, ch.Before = RelationRemoved, allowedTypesText(oldRels[key])
			case nsdiff.AddedPermission:
				ch.Kind, ch.After = PermissionAdded, RewriteText(newRels[key].GetUsersetRewrite())
			case nsdiff.RemovedPermission:
				ch.Kind, ch.Before = PermissionRemoved, RewriteText(oldRels[key].GetUsersetRewrite())
			case nsdiff.ChangedPermissionImpl:
				ch.Kind = PermissionChanged
				ch.Before, ch.After = RewriteText(oldRels[key].GetUsersetRewrite()), RewriteText(newRels[key].GetUsersetRewrite())
			case nsdiff.LegacyChangedRelationImpl:
				ch.Kind = RelationChanged
			case nsdiff.RelationAllowedTypeAdded:
				ch.Kind, ch.After = AllowedTypeAdded, schema.SourceForAllowedRelation(delta.AllowedType)
			case nsdiff.RelationAllowedTypeRemoved:
				ch.Kind, ch.Before = AllowedTypeRemoved, schema.SourceForAllowedRelation(delta.AllowedType)
			case nsdiff.NamespaceCommentsChanged, nsdiff.ChangedPermissionComment, nsdiff.ChangedRelationComment:
				ch.Kind = SchemaCommentChange
			default:
				ch.Kind = SchemaChangeKind(delta.Type)
			}
			out = append(out, ch)
		}
	}
	for _, name := range d.AddedCaveats {
		out = append(out, SchemaChange{Kind: CaveatAdded, Definition: name})
	}
	for _, name := range d.RemovedCaveats {
		out = append(out, SchemaChange{Kind: CaveatRemoved, Definition: name})
	}
	for name, cd := range d.ChangedCaveats {
		for _, delta := range cd.Deltas() {
			ch := SchemaChange{Kind: CaveatChanged, Definition: name, Name: delta.ParameterName, Reason: string(delta.Type)}
			switch delta.Type {
			case caveatdiff.RemovedParameter, caveatdiff.ParameterTypeChanged:
				ch.Breaking = true
				ch.Reason = "SpiceDB refuses to remove or retype a caveat parameter (" + string(delta.Type) + ")"
			case caveatdiff.CaveatCommentsChanged:
				ch.Kind = SchemaCommentChange
			}
			out = append(out, ch)
		}
	}
	order := map[string]int{}
	for i, def := range before.ObjectDefinitions {
		order[def.Name] = i
	}
	for i, def := range after.ObjectDefinitions {
		if _, ok := order[def.Name]; !ok {
			order[def.Name] = len(before.ObjectDefinitions) + i
		}
	}
	slices.SortStableFunc(out, func(a, b SchemaChange) int {
		if oa, ob := order[a.Definition], order[b.Definition]; oa != ob {
			return oa - ob
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// allowedTypesText renders a relation's allowed subject types: "user | role#member".
func allowedTypesText(r *core.Relation) string {
	var types []string
	for _, t := range r.GetTypeInformation().GetAllowedDirectRelations() {
		types = append(types, schema.SourceForAllowedRelation(t))
	}
	return strings.Join(types, " | ")
}

// SchemaChanges is what writing a schema would change.
type SchemaChanges struct {
	// Current is the running schema, and CurrentHash its [SchemaHash].
	Current, CurrentHash string
	// Identical is true when the proposed schema compiles to the running one.
	Identical bool
	Changes   []SchemaChange
}

// Breaking lists the breaking changes.
func (s SchemaChanges) Breaking() []SchemaChange {
	var out []SchemaChange
	for _, c := range s.Changes {
		if c.Breaking {
			out = append(out, c)
		}
	}
	return out
}

// SchemaChanges compares proposed with the schema SpiceDB runs and marks
// the breaking changes: those that remove a definition, relation or
// permission that this build of Beep uses (the names of [SchemaText], which
// the services' code checks and writes), that remove a definition or
// relation existing relationships still use (as resource or as subject), or
// an allowed subject type that existing relationships have, and caveat
// parameter changes SpiceDB refuses. Permission expressions may change
// freely: that is what schemas are changed for.
func (c *Client) SchemaChanges(ctx context.Context, proposed string) (SchemaChanges, error) {
	current, err := c.ReadSchema(ctx)
	if err != nil {
		return SchemaChanges{}, err
	}
	out := SchemaChanges{Current: current}
	proposedHash, err := SchemaHash(proposed)
	if err != nil {
		return out, err
	}
	if current != "" {
		if out.CurrentHash, err = SchemaHash(current); err == nil && out.CurrentHash == proposedHash {
			out.Identical = true
			return out, nil
		}
	}
	if out.Changes, err = DiffSchemas(current, proposed); err != nil {
		return out, err
	}
	if err := c.markBreaking(ctx, current, out.Changes); err != nil {
		return out, err
	}
	return out, nil
}

// markBreaking sets Breaking and Reason on changes.
func (c *Client) markBreaking(ctx context.Context, current string, changes []SchemaChange) error {
	compiled, err := CompileSchema(current)
	if err != nil {
		return err
	}
	relations := map[string]*core.Relation{}
	for _, def := range compiled.ObjectDefinitions {
		for _, r := range def.Relation {
			relations[def.Name+"#"+r.Name] = r
		}
	}
	// exists says whether any relationship matches f (read fully consistent:
	// a schema write is checked against the newest data).
	exists := func(f Filter) (bool, error) {
		rels, _, err := c.ReadRelationshipsPage(ctx, f, FullyConsistent(), 1, "")
		return len(rels) > 0, err
	}
	for i := range changes {
		ch := &changes[i]
		var used []string
		switch ch.Kind {
		case DefinitionRemoved:
			if slices.Contains(ObjectTypes, ObjectType(ch.Definition)) {
				used = append(used, "this build of Beep uses the definition "+ch.Definition)
			}
			found, err := exists(Filter{ResourceType: ObjectType(ch.Definition)})
			if err != nil {
				return err
			}
			if found {
				used = append(used, "relationships exist on "+ch.Definition+" objects")
			}
		case RelationRemoved, PermissionRemoved:
			if usedByBeep(ch.Definition, ch.Name) {
				used = append(used, fmt.Sprintf("this build of Beep uses %s#%s", ch.Definition, ch.Name))
			}
			if ch.Kind == RelationRemoved {
				found, err := relationInUse(compiled, ch.Definition, relations[ch.Definition+"#"+ch.Name], exists)
				if err != nil {
					return err
				}
				used = append(used, found...)
			}
		case AllowedTypeRemoved:
			allowed := allowedTypeOf(relations[ch.Definition+"#"+ch.Name], ch.Before)
			if allowed != nil {
				sf := SubjectFilter{Type: ObjectType(allowed.GetNamespace()), Relation: allowed.GetRelation()}
				if sf.Relation == "..." {
					sf.Relation = ""
				}
				if allowed.GetPublicWildcard() != nil {
					sf.ID, sf.Relation = "*", ""
				}
				found, err := exists(Filter{ResourceType: ObjectType(ch.Definition), Relation: ch.Name, Subject: &sf})
				if err != nil {
					return err
				}
				if found {
					used = append(used, fmt.Sprintf("relationships of %s#%s have a subject of type %s", ch.Definition, ch.Name, ch.Before))
				}
			}
			if !ch.Breaking && len(used) == 0 && usedByBeep(ch.Definition, ch.Name) {
				ch.Reason = "no relationship has it today, but this build of Beep writes " + ch.Definition + "#" + ch.Name + " and may write such subjects"
			}
		case CaveatRemoved:
			// SpiceDB refuses the write if a relation still names it; the
			// proposed schema would not compile then either.
		}
		if len(used) > 0 {
			ch.Breaking = true
			ch.Reason = strings.Join(used, "; ")
		}
	}
	return nil
}

// usedByBeep says whether this build's schema (the names of schema_gen.go)
// has definition#name.
func usedByBeep(definition, name string) bool {
	_, ok := schemaNames[definition+"#"+name]
	return ok
}

// relationInUse says why a relation still has relationships, as the
// resource's relation or as a subject's (type#relation).
func relationInUse(compiled *compiler.CompiledSchema, definition string, rel *core.Relation, exists func(Filter) (bool, error)) ([]string, error) {
	if rel == nil {
		return nil, nil
	}
	var used []string
	found, err := exists(Filter{ResourceType: ObjectType(definition), Relation: rel.GetName()})
	if err != nil {
		return nil, err
	}
	if found {
		used = append(used, fmt.Sprintf("relationships exist under %s#%s", definition, rel.GetName()))
	}
	// As a subject: relationships of any definition naming definition#name.
	for _, def := range compiled.ObjectDefinitions {
		for _, r := range def.Relation {
			for _, t := range r.GetTypeInformation().GetAllowedDirectRelations() {
				if t.GetNamespace() != definition || t.GetRelation() != rel.GetName() {
					continue
				}
				found, err := exists(Filter{ResourceType: ObjectType(def.Name), Relation: r.Name,
					Subject: &SubjectFilter{Type: ObjectType(definition), Relation: rel.GetName()}})
				if err != nil {
					return nil, err
				}
				if found {
					used = append(used, fmt.Sprintf("relationships of %s#%s have %s#%s subjects", def.Name, r.Name, definition, rel.GetName()))
				}
			}
		}
	}
	return used, nil
}

// allowedTypeOf finds the allowed type of r written as text.
func allowedTypeOf(r *core.Relation, text string) *core.AllowedRelation {
	for _, t := range r.GetTypeInformation().GetAllowedDirectRelations() {
		if schema.SourceForAllowedRelation(t) == text {
			return t
		}
	}
	return nil
}

// RewriteText renders a permission's expression as the schema language
// writes it: "view_channel & granted_send_messages".
func RewriteText(rw *core.UsersetRewrite) string {
	if rw == nil {
		return ""
	}
	var b strings.Builder
	writeRewrite(&b, rw, false)
	return b.String()
}

func writeRewrite(b *strings.Builder, rw *core.UsersetRewrite, nested bool) {
	var (
		op       string
		children []*core.SetOperation_Child
	)
	switch r := rw.GetRewriteOperation().(type) {
	case *core.UsersetRewrite_Union:
		op, children = " + ", r.Union.GetChild()
	case *core.UsersetRewrite_Intersection:
		op, children = " & ", r.Intersection.GetChild()
	case *core.UsersetRewrite_Exclusion:
		op, children = " - ", r.Exclusion.GetChild()
	}
	if nested && len(children) > 1 {
		b.WriteString("(")
	}
	for i, child := range children {
		if i > 0 {
			b.WriteString(op)
		}
		b.WriteString(childText(child))
	}
	if nested && len(children) > 1 {
		b.WriteString(")")
	}
}

// childText renders one operand of an expression.
func childText(child *core.SetOperation_Child) string {
	switch ch := child.GetChildType().(type) {
	case *core.SetOperation_Child_UsersetRewrite:
		var b strings.Builder
		writeRewrite(&b, ch.UsersetRewrite, true)
		return b.String()
	case *core.SetOperation_Child_XThis:
		return "_this"
	case *core.SetOperation_Child_XNil:
		return "nil"
	case *core.SetOperation_Child_XSelf:
		return "self"
	case *core.SetOperation_Child_ComputedUserset:
		return ch.ComputedUserset.GetRelation()
	case *core.SetOperation_Child_TupleToUserset:
		return ch.TupleToUserset.GetTupleset().GetRelation() + "->" + ch.TupleToUserset.GetComputedUserset().GetRelation()
	case *core.SetOperation_Child_FunctionedTupleToUserset:
		fn := "any"
		if ch.FunctionedTupleToUserset.GetFunction() == core.FunctionedTupleToUserset_FUNCTION_ALL {
			fn = "all"
		}
		return ch.FunctionedTupleToUserset.GetTupleset().GetRelation() + "." + fn + "(" + ch.FunctionedTupleToUserset.GetComputedUserset().GetRelation() + ")"
	}
	return "?"
}

// FitRelationships says, with ErrInvalid, which of rels the schema (text)
// cannot hold: an unknown definition or relation, a permission (which
// cannot be written), or a subject type the relation does not allow.
func FitRelationships(schemaText string, rels []Relationship) error {
	compiled, err := CompileSchema(schemaText)
	if err != nil {
		return err
	}
	defs := map[string]map[string]*core.Relation{}
	for _, def := range compiled.ObjectDefinitions {
		defs[def.Name] = map[string]*core.Relation{}
		for _, r := range def.Relation {
			defs[def.Name][r.Name] = r
		}
	}
	var problems []string
	for i, r := range rels {
		relations, ok := defs[string(r.Relation.ResourceType)]
		rel := relations[r.Relation.Name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("[%d] %s: no definition %s", i, FormatRelationship(r), r.Relation.ResourceType))
			continue
		case rel == nil:
			problems = append(problems, fmt.Sprintf("[%d] %s: %s has no relation %s", i, FormatRelationship(r), r.Relation.ResourceType, r.Relation.Name))
			continue
		case len(rel.GetTypeInformation().GetAllowedDirectRelations()) == 0:
			problems = append(problems, fmt.Sprintf("[%d] %s: %s is a permission, computed, not written", i, FormatRelationship(r), r.Relation))
			continue
		}
		allowed := slices.ContainsFunc(rel.GetTypeInformation().GetAllowedDirectRelations(), func(a *core.AllowedRelation) bool {
			if a.GetNamespace() != string(r.Subject.Object.Type) {
				return false
			}
			if a.GetPublicWildcard() != nil {
				return r.Subject.Object.ID == "*"
			}
			want := a.GetRelation()
			if want == "..." {
				want = ""
			}
			return r.Subject.Object.ID != "*" && want == r.Subject.Relation
		})
		if !allowed {
			problems = append(problems, fmt.Sprintf("[%d] %s: %s allows %s", i, FormatRelationship(r), r.Relation, allowedTypesText(rel)))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: the schema cannot hold: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}
