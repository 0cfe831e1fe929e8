package authz

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	core "github.com/authzed/spicedb/pkg/proto/core/v1"
)

// ExplainKind is what an [ExplainNode] stands for.
type ExplainKind int

// The kinds of explanation nodes.
const (
	// ExplainCheck is a relation or permission of one or more objects, as
	// SpiceDB evaluated it for the subject.
	ExplainCheck ExplainKind = iota + 1
	// ExplainUnion is a + b.
	ExplainUnion
	// ExplainIntersection is a & b.
	ExplainIntersection
	// ExplainExclusion is a - b: its first child is the base, the others
	// are subtracted.
	ExplainExclusion
	// ExplainArrow is tupleset->relation.
	ExplainArrow
	// ExplainComputed is a relation or permission of the same object.
	ExplainComputed
	// ExplainNil is nil: nobody.
	ExplainNil
	// ExplainDirect is the relationships written on a relation.
	ExplainDirect
	// ExplainSelf is self: the resource as its own subject.
	ExplainSelf
)

// Outcome is the result of an [ExplainNode].
type Outcome int

// The outcomes of explanation nodes.
const (
	// NotEvaluated: SpiceDB did not need the node for its answer (it
	// short-circuited), or the explanation stopped before it.
	NotEvaluated Outcome = iota
	Holds
	DoesNotHold
	// Caveated holds only if caveat context says so.
	Caveated
)

func (o Outcome) String() string {
	switch o {
	case Holds:
		return "holds"
	case DoesNotHold:
		return "does not hold"
	case Caveated:
		return "caveated"
	}
	return "not evaluated"
}

// ExplainNode is one node of the explanation of a check.
type ExplainNode struct {
	Kind    ExplainKind
	Outcome Outcome
	// For ExplainCheck: the type and ids of the objects (several when
	// SpiceDB checked them at once), the relation or permission, and the
	// subject.
	ResourceType ObjectType
	ResourceIDs  []string
	Relation     string
	IsPermission bool
	Subject      Subject
	// Expression is the schema text of the node: a permission's expression,
	// an operand such as "server->grant_view_channel", a relation's types.
	Expression string
	// Reason says in words why the node has its outcome.
	Reason string
	// Cached is set when SpiceDB answered from its cache: the children,
	// when present, were computed by asking again at the same revision.
	Cached bool
	// Relationships are the relationships that make a relation hold.
	Relationships []Relationship
	// Caveat is the caveat SpiceDB evaluated here, if any.
	Caveat   *CaveatEvaluation
	Duration time.Duration
	Children []*ExplainNode

	arrow    *core.SetOperation_Child // for ExplainArrow: the operand
	parent   *ExplainNode             // the check whose expression holds the node
	expanded bool
	// decisive is the operand that decided the node's outcome; removal,
	// the exclusion's operand that removed it, if one did.
	decisive, removal string
}

// Object renders the node's objects: "channel:staff", "server:a,b".
func (n *ExplainNode) Object() string {
	return string(n.ResourceType) + ":" + strings.Join(n.ResourceIDs, ",")
}

// CaveatEvaluation is a caveat evaluated during a check.
type CaveatEvaluation struct {
	Name, Expression string
	Outcome          Outcome
	MissingContext   []string
	Context          map[string]any
}

// Explanation is a check's answer and why.
type Explanation struct {
	Decision Decision
	Root     *ExplainNode
}

// explainBudget bounds the calls an explanation makes beyond the check
// itself: expanding what SpiceDB answered from its cache, and reading the
// relationships behind relations.
const explainBudget = 200

// Explain answers check with SpiceDB's debug trace and turns the trace into
// a tree: each relation or permission SpiceDB evaluated, under the
// expression of the permission that used it, so that the tree shows which
// path granted the permission, or which exclusion or intersection removed
// it, down to the relationships. Parts SpiceDB answered from its cache are
// asked again at the same revision (within a budget of calls), so the tree
// is complete even for a question asked before.
func (c *Client) Explain(ctx context.Context, check Check, consistency Consistency) (Explanation, error) {
	req, err := checkRequest(check, consistency)
	if err != nil {
		return Explanation{}, err
	}
	req.WithTracing = true
	callCtx, cancel := c.callContext(ctx)
	defer cancel()
	resp, err := c.permissions.CheckPermission(callCtx, req)
	if err != nil {
		return Explanation{}, classify("explain "+describe(check), err)
	}
	out := Explanation{Decision: decision(resp.Permissionship, resp.PartialCaveatInfo, resp.CheckedAt)}
	schemaText := resp.GetDebugTrace().GetSchemaUsed()
	if schemaText == "" {
		if schemaText, err = c.ReadSchema(ctx); err != nil {
			return out, err
		}
	}
	compiled, err := CompileSchema(schemaText)
	if err != nil {
		return out, err
	}
	e := &explainer{c: c, ctx: ctx, subject: check.Subject, at: AtExactSnapshot(out.Decision.CheckedAt),
		defs: map[string]*core.NamespaceDefinition{}, budget: explainBudget}
	for _, def := range compiled.ObjectDefinitions {
		e.defs[def.Name] = def
	}
	outcome := DoesNotHold
	switch {
	case out.Decision.Allowed:
		outcome = Holds
	case out.Decision.Conditional:
		outcome = Caveated
	}
	out.Root = e.rooted(check.Permission.ResourceType, check.ResourceID, check.Permission.Name, outcome, resp.GetDebugTrace().GetCheck())
	e.enrich(out.Root)
	finish(out.Root)
	return out, nil
}

// explainer builds one explanation.
type explainer struct {
	c       *Client
	ctx     context.Context
	subject Subject
	at      Consistency
	defs    map[string]*core.NamespaceDefinition
	budget  int
}

// spend takes one call from the budget.
func (e *explainer) spend() bool {
	if e.budget <= 0 {
		return false
	}
	e.budget--
	return true
}

// relation finds a relation or permission of the schema.
func (e *explainer) relation(t ObjectType, name string) *core.Relation {
	for _, r := range e.defs[string(t)].GetRelation() {
		if r.GetName() == name {
			return r
		}
	}
	return nil
}

func isPermission(r *core.Relation) bool {
	return r.GetUsersetRewrite() != nil && len(r.GetTypeInformation().GetAllowedDirectRelations()) == 0
}

// rooted returns the node of resourceType:id#relation built from trace,
// which may be the trace of what relation stands for (SpiceDB follows a
// permission that is another's alias): the asked node is then made, with
// the trace under it.
func (e *explainer) rooted(t ObjectType, id, relation string, outcome Outcome, trace *v1.CheckDebugTrace) *ExplainNode {
	if trace == nil {
		n := e.checkNode(t, []string{id}, relation, e.subject)
		n.Outcome = outcome
		return n
	}
	got := e.fromTrace(trace)
	if got.ResourceType == t && got.Relation == relation && slices.Equal(got.ResourceIDs, []string{id}) {
		return got
	}
	n := e.checkNode(t, []string{id}, relation, e.subject)
	n.Outcome = outcome
	e.attach(n, []*ExplainNode{got})
	return n
}

// checkNode is an empty ExplainCheck node.
func (e *explainer) checkNode(t ObjectType, ids []string, relation string, subject Subject) *ExplainNode {
	n := &ExplainNode{Kind: ExplainCheck, ResourceType: t, ResourceIDs: ids, Relation: relation, Subject: subject}
	if r := e.relation(t, relation); r != nil {
		n.IsPermission = isPermission(r)
		if n.IsPermission {
			n.Expression = RewriteText(r.GetUsersetRewrite())
		} else {
			n.Expression = allowedTypesText(r)
		}
	}
	return n
}

// fromTrace converts SpiceDB's trace of one check and its subproblems.
func (e *explainer) fromTrace(t *v1.CheckDebugTrace) *ExplainNode {
	subject := Subject{
		Object:   ObjectType(t.GetSubject().GetObject().GetObjectType()).Object(t.GetSubject().GetObject().GetObjectId()),
		Relation: t.GetSubject().GetOptionalRelation(),
	}
	n := e.checkNode(ObjectType(t.GetResource().GetObjectType()), strings.Split(t.GetResource().GetObjectId(), ","), t.GetPermission(), subject)
	n.Duration = t.GetDuration().AsDuration()
	switch t.GetResult() {
	case v1.CheckDebugTrace_PERMISSIONSHIP_HAS_PERMISSION:
		n.Outcome = Holds
	case v1.CheckDebugTrace_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		n.Outcome = Caveated
	case v1.CheckDebugTrace_PERMISSIONSHIP_NO_PERMISSION:
		n.Outcome = DoesNotHold
	}
	if info := t.GetCaveatEvaluationInfo(); info != nil {
		ce := &CaveatEvaluation{Name: info.GetCaveatName(), Expression: info.GetExpression(),
			MissingContext: info.GetPartialCaveatInfo().GetMissingRequiredContext(), Context: info.GetContext().AsMap()}
		switch info.GetResult() {
		case v1.CaveatEvalInfo_RESULT_TRUE:
			ce.Outcome = Holds
		case v1.CaveatEvalInfo_RESULT_FALSE:
			ce.Outcome = DoesNotHold
		case v1.CaveatEvalInfo_RESULT_MISSING_SOME_CONTEXT:
			ce.Outcome = Caveated
		}
		n.Caveat = ce
	}
	if _, cached := t.GetResolution().(*v1.CheckDebugTrace_WasCachedResult); cached {
		n.Cached = t.GetWasCachedResult()
	}
	var subs []*ExplainNode
	for _, sub := range t.GetSubProblems().GetTraces() {
		subs = append(subs, e.fromTrace(sub))
	}
	if len(subs) > 0 || !n.Cached {
		e.attach(n, subs)
	}
	return n
}

// attach puts the checks SpiceDB made for n under n: below the operands of
// n's expression for a permission, directly for a relation (the usersets it
// went through).
func (e *explainer) attach(n *ExplainNode, subs []*ExplainNode) {
	n.expanded = true
	r := e.relation(n.ResourceType, n.Relation)
	if r == nil || !isPermission(r) {
		n.Children = append(n.Children, subs...)
		return
	}
	used := map[*ExplainNode]bool{}
	n.Children = append(n.Children, e.rewriteNode(n, r.GetUsersetRewrite(), subs, used))
	for _, s := range subs {
		if !used[s] {
			n.Children = append(n.Children, s) // not matched to an operand: keep it visible
		}
	}
}

func (e *explainer) rewriteNode(n *ExplainNode, rw *core.UsersetRewrite, subs []*ExplainNode, used map[*ExplainNode]bool) *ExplainNode {
	node := &ExplainNode{Expression: RewriteText(rw), parent: n}
	var children []*core.SetOperation_Child
	switch op := rw.GetRewriteOperation().(type) {
	case *core.UsersetRewrite_Union:
		node.Kind, children = ExplainUnion, op.Union.GetChild()
	case *core.UsersetRewrite_Intersection:
		node.Kind, children = ExplainIntersection, op.Intersection.GetChild()
	case *core.UsersetRewrite_Exclusion:
		node.Kind, children = ExplainExclusion, op.Exclusion.GetChild()
	}
	for _, ch := range children {
		node.Children = append(node.Children, e.operandNode(n, ch, subs, used))
	}
	// A one-operand union (an alias such as `permission view = granted_view`)
	// says nothing more than its operand.
	if node.Kind == ExplainUnion && len(node.Children) == 1 {
		return node.Children[0]
	}
	return node
}

// operandNode is one operand of n's expression, with the checks SpiceDB
// made for it.
func (e *explainer) operandNode(n *ExplainNode, ch *core.SetOperation_Child, subs []*ExplainNode, used map[*ExplainNode]bool) *ExplainNode {
	node := &ExplainNode{Expression: childText(ch), parent: n}
	match := func(types []string, relation string) {
		for _, s := range subs {
			if slices.Contains(types, string(s.ResourceType)) && slices.Contains(e.aliases(s.ResourceType, relation), s.Relation) {
				node.Children = append(node.Children, s)
				used[s] = true
			}
		}
	}
	switch op := ch.GetChildType().(type) {
	case *core.SetOperation_Child_UsersetRewrite:
		return e.rewriteNode(n, op.UsersetRewrite, subs, used)
	case *core.SetOperation_Child_ComputedUserset:
		node.Kind = ExplainComputed
		match([]string{string(n.ResourceType)}, op.ComputedUserset.GetRelation())
	case *core.SetOperation_Child_TupleToUserset:
		node.Kind, node.arrow = ExplainArrow, ch
		match(e.tuplesetTypes(n.ResourceType, op.TupleToUserset.GetTupleset().GetRelation()), op.TupleToUserset.GetComputedUserset().GetRelation())
	case *core.SetOperation_Child_FunctionedTupleToUserset:
		node.Kind, node.arrow = ExplainArrow, ch
		match(e.tuplesetTypes(n.ResourceType, op.FunctionedTupleToUserset.GetTupleset().GetRelation()), op.FunctionedTupleToUserset.GetComputedUserset().GetRelation())
	case *core.SetOperation_Child_XNil:
		node.Kind, node.Outcome, node.Reason = ExplainNil, DoesNotHold, "nil: nobody"
	case *core.SetOperation_Child_XSelf:
		node.Kind, node.Outcome = ExplainSelf, DoesNotHold
		if e.subject.Relation == "" && e.subject.Object.Type == n.ResourceType && slices.Contains(n.ResourceIDs, e.subject.Object.ID) {
			node.Outcome = Holds
		}
	case *core.SetOperation_Child_XThis:
		node.Kind = ExplainDirect
	}
	return node
}

// aliases is relation, and what SpiceDB checks instead of it when it is an
// alias (a permission that is just another relation or permission:
// `permission view_channel = granted_view_channel`), transitively.
func (e *explainer) aliases(t ObjectType, relation string) []string {
	out := []string{relation}
	for range 8 {
		r := e.relation(t, relation)
		u, ok := r.GetUsersetRewrite().GetRewriteOperation().(*core.UsersetRewrite_Union)
		if !ok || len(u.Union.GetChild()) != 1 {
			break
		}
		cu, ok := u.Union.GetChild()[0].GetChildType().(*core.SetOperation_Child_ComputedUserset)
		if !ok {
			break
		}
		relation = cu.ComputedUserset.GetRelation()
		out = append(out, relation)
	}
	return out
}

// tuplesetTypes are the definitions a tupleset relation points at.
func (e *explainer) tuplesetTypes(t ObjectType, tupleset string) []string {
	var out []string
	for _, a := range e.relation(t, tupleset).GetTypeInformation().GetAllowedDirectRelations() {
		if !slices.Contains(out, a.GetNamespace()) {
			out = append(out, a.GetNamespace())
		}
	}
	return out
}

// enrich completes the tree breadth-first, shallow nodes first, within the
// budget: checks answered from the cache are asked again one level down;
// arrows SpiceDB did not follow are told apart (nothing to follow, or not
// needed); relations that hold get the relationships behind them.
func (e *explainer) enrich(root *ExplainNode) {
	queue := []*ExplainNode{root}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		switch {
		case n.Kind == ExplainCheck && !n.expanded:
			e.expand(n)
		case n.Kind == ExplainArrow && len(n.Children) == 0 && n.parent != nil && n.parent.Outcome != NotEvaluated:
			e.emptyArrow(n)
		}
		if n.Kind == ExplainCheck && !n.IsPermission && (n.Outcome == Holds || n.Outcome == Caveated) && !slices.ContainsFunc(n.Children, holds) {
			e.direct(n)
		}
		queue = append(queue, n.Children...)
	}
}

func holds(n *ExplainNode) bool { return n.Outcome == Holds || n.Outcome == Caveated }

// maxFanOut bounds the objects an explanation follows from one node.
const maxFanOut = 8

// expand asks again, at the same revision, what a cached check was made of.
func (e *explainer) expand(n *ExplainNode) {
	r := e.relation(n.ResourceType, n.Relation)
	if r == nil || e.budget <= 0 {
		return
	}
	var subs []*ExplainNode
	for _, id := range n.ResourceIDs[:min(len(n.ResourceIDs), maxFanOut)] {
		if isPermission(r) {
			subs = append(subs, e.expandPermission(n, id, r.GetUsersetRewrite())...)
		} else {
			subs = append(subs, e.expandRelation(n, id, r)...)
		}
	}
	e.attach(n, subs)
}

// expandPermission checks each operand of a permission's expression.
func (e *explainer) expandPermission(n *ExplainNode, id string, rw *core.UsersetRewrite) []*ExplainNode {
	var subs []*ExplainNode
	var walk func(rw *core.UsersetRewrite)
	walk = func(rw *core.UsersetRewrite) {
		var children []*core.SetOperation_Child
		switch op := rw.GetRewriteOperation().(type) {
		case *core.UsersetRewrite_Union:
			children = op.Union.GetChild()
		case *core.UsersetRewrite_Intersection:
			children = op.Intersection.GetChild()
		case *core.UsersetRewrite_Exclusion:
			children = op.Exclusion.GetChild()
		}
		for _, ch := range children {
			switch op := ch.GetChildType().(type) {
			case *core.SetOperation_Child_UsersetRewrite:
				walk(op.UsersetRewrite)
			case *core.SetOperation_Child_ComputedUserset:
				if s := e.traced(n.ResourceType.Object(id), op.ComputedUserset.GetRelation(), n.Subject); s != nil {
					subs = append(subs, s)
				}
			case *core.SetOperation_Child_TupleToUserset:
				subs = append(subs, e.follow(n.ResourceType.Object(id), op.TupleToUserset.GetTupleset().GetRelation(), op.TupleToUserset.GetComputedUserset().GetRelation(), n.Subject)...)
			case *core.SetOperation_Child_FunctionedTupleToUserset:
				subs = append(subs, e.follow(n.ResourceType.Object(id), op.FunctionedTupleToUserset.GetTupleset().GetRelation(), op.FunctionedTupleToUserset.GetComputedUserset().GetRelation(), n.Subject)...)
			}
		}
	}
	walk(rw)
	return subs
}

// follow checks relation on the objects obj's tupleset points at.
func (e *explainer) follow(obj Object, tupleset, relation string, subject Subject) []*ExplainNode {
	if !e.spend() {
		return nil
	}
	rels, _, err := e.c.ReadRelationshipsPage(e.ctx, Filter{ResourceType: obj.Type, ResourceID: obj.ID, Relation: tupleset}, e.at, maxFanOut, "")
	if err != nil {
		return nil
	}
	var subs []*ExplainNode
	for _, r := range rels {
		if s := e.traced(r.Subject.Object, relation, subject); s != nil {
			subs = append(subs, s)
		}
	}
	return subs
}

// expandRelation finds the usersets through which a relation may reach the
// subject, and checks them.
func (e *explainer) expandRelation(n *ExplainNode, id string, r *core.Relation) []*ExplainNode {
	var subs []*ExplainNode
	for _, allowed := range r.GetTypeInformation().GetAllowedDirectRelations() {
		rel := allowed.GetRelation()
		if rel == "" || rel == "..." || allowed.GetPublicWildcard() != nil {
			continue
		}
		if !e.spend() {
			break
		}
		rels, _, err := e.c.ReadRelationshipsPage(e.ctx, Filter{ResourceType: n.ResourceType, ResourceID: id, Relation: n.Relation,
			Subject: &SubjectFilter{Type: ObjectType(allowed.GetNamespace()), Relation: rel}}, e.at, maxFanOut, "")
		if err != nil {
			continue
		}
		for _, found := range rels {
			if s := e.traced(found.Subject.Object, found.Subject.Relation, n.Subject); s != nil {
				subs = append(subs, s)
			}
		}
	}
	return subs
}

// traced checks obj#relation for subject at the explanation's revision,
// with SpiceDB's trace.
func (e *explainer) traced(obj Object, relation string, subject Subject) *ExplainNode {
	if !e.spend() {
		return nil
	}
	req := &v1.CheckPermissionRequest{Consistency: e.at.proto(), Resource: objectRef(obj), Permission: relation,
		Subject: subjectRef(subject), WithTracing: true}
	ctx, cancel := e.c.callContext(e.ctx)
	defer cancel()
	resp, err := e.c.permissions.CheckPermission(ctx, req)
	if err != nil {
		return nil
	}
	outcome := DoesNotHold
	switch resp.GetPermissionship() {
	case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
		outcome = Holds
	case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		outcome = Caveated
	}
	n := e.rooted(obj.Type, obj.ID, relation, outcome, resp.GetDebugTrace().GetCheck())
	n.Subject = subject
	return n
}

// emptyArrow tells an arrow SpiceDB did not follow: when its tupleset names
// nothing, it does not hold; otherwise SpiceDB did not need it.
func (e *explainer) emptyArrow(n *ExplainNode) {
	p := n.parent
	tupleset := ""
	switch op := n.arrow.GetChildType().(type) {
	case *core.SetOperation_Child_TupleToUserset:
		tupleset = op.TupleToUserset.GetTupleset().GetRelation()
	case *core.SetOperation_Child_FunctionedTupleToUserset:
		tupleset = op.FunctionedTupleToUserset.GetTupleset().GetRelation()
	}
	for _, id := range p.ResourceIDs[:min(len(p.ResourceIDs), maxFanOut)] {
		if !e.spend() {
			return
		}
		rels, _, err := e.c.ReadRelationshipsPage(e.ctx, Filter{ResourceType: p.ResourceType, ResourceID: id, Relation: tupleset}, e.at, 1, "")
		if err != nil || len(rels) > 0 {
			return
		}
	}
	n.Outcome = DoesNotHold
	n.Reason = fmt.Sprintf("%s has no %s", p.Object(), tupleset)
}

// direct finds the relationships that make relation n hold for its subject:
// the subject itself, or a wildcard.
func (e *explainer) direct(n *ExplainNode) {
	for _, id := range n.ResourceIDs[:min(len(n.ResourceIDs), maxFanOut)] {
		for _, sid := range []string{n.Subject.Object.ID, "*"} {
			if sid == "*" && n.Subject.Relation != "" {
				continue
			}
			if !e.spend() {
				return
			}
			rels, _, err := e.c.ReadRelationshipsPage(e.ctx, Filter{ResourceType: n.ResourceType, ResourceID: id, Relation: n.Relation,
				Subject: &SubjectFilter{Type: n.Subject.Object.Type, ID: sid, Relation: n.Subject.Relation}}, e.at, maxFanOut, "")
			if err == nil {
				n.Relationships = append(n.Relationships, rels...)
			}
		}
	}
}

// finish computes the outcome of expression nodes from their operands, and
// the reasons, bottom-up. A check's outcome is SpiceDB's. Reasons name the
// operands of the schema that decided: the one that granted a permission
// ("granted by role_allow_view_channel"), the exclusion that removed it
// ("removed by everyone_deny_view_channel"), carried up to the permission
// asked about, or the operand that failed an intersection.
func finish(n *ExplainNode) {
	for _, ch := range n.Children {
		finish(ch)
	}
	switch n.Kind {
	case ExplainCheck:
		if n.Outcome == NotEvaluated && len(n.Children) > 0 {
			n.Outcome = n.Children[0].Outcome
		}
		if !n.IsPermission {
			n.decisive = n.Relation
			n.Reason = relationReason(n)
			break
		}
		if len(n.Children) > 0 {
			e := n.Children[0]
			n.decisive, n.removal = e.decisive, e.removal
		}
		n.Reason = permissionReason(n)
	case ExplainComputed, ExplainArrow:
		if n.Outcome != NotEvaluated && len(n.Children) == 0 {
			n.decisive = n.Expression
			break // decided without children (an arrow with nothing to follow)
		}
		n.Outcome = combine(n.Children, strings.Contains(n.Expression, ".all("))
		n.decisive = n.Expression
		if h := firstWith(n.Children, Holds, Caveated); h != nil && holds(n) {
			n.Reason = "via " + h.Object() + "#" + h.Relation
			if h.IsPermission && h.decisive != "" {
				n.decisive = h.decisive
			}
		} else if n.Outcome == DoesNotHold && len(n.Children) > 0 {
			n.Reason = "does not hold for " + objectsOf(n.Children)
			for _, ch := range n.Children {
				if ch.removal != "" {
					n.removal, n.Reason = ch.removal, "removed by "+ch.removal
					break
				}
			}
		}
	case ExplainUnion:
		n.Outcome = combine(n.Children, false)
		if h := firstWith(n.Children, Holds); h != nil {
			n.decisive, n.Reason = h.decisive, "granted by "+h.decisive
		} else if n.Outcome == DoesNotHold {
			n.Reason = "no term holds"
			for _, ch := range n.Children {
				if ch.removal != "" {
					n.removal, n.Reason = ch.removal, "removed by "+ch.removal
					break
				}
			}
		}
	case ExplainIntersection:
		n.Outcome = combine(n.Children, true)
		if d := firstWith(n.Children, DoesNotHold); d != nil {
			n.decisive, n.removal = d.decisive, d.removal
			n.Reason = d.decisive + " does not hold"
			if d.removal != "" {
				n.Reason = "removed by " + d.removal
			}
		} else if n.Outcome == Holds && len(n.Children) > 0 {
			n.decisive, n.Reason = n.Children[len(n.Children)-1].decisive, "every term holds"
		}
	case ExplainExclusion:
		exclusion(n)
	default:
		n.decisive = n.Expression
	}
}

// exclusion is base - others.
func exclusion(n *ExplainNode) {
	if len(n.Children) == 0 {
		return
	}
	base, rest := n.Children[0], n.Children[1:]
	n.decisive = base.decisive
	switch base.Outcome {
	case DoesNotHold:
		n.Outcome, n.removal = DoesNotHold, base.removal
		n.Reason = base.decisive + " does not hold"
		if base.removal != "" {
			n.Reason = "removed by " + base.removal
		}
		return
	case NotEvaluated:
		return
	}
	if d := firstWith(rest, Holds); d != nil {
		n.Outcome, n.removal, n.Reason = DoesNotHold, d.decisive, "removed by "+d.decisive
		return
	}
	if c := firstWith(rest, Caveated); c != nil {
		n.Outcome, n.Reason = Caveated, "removed by "+c.decisive+" unless its caveat says otherwise"
		return
	}
	if firstWith(rest, NotEvaluated) != nil {
		return
	}
	n.Outcome = base.Outcome
	n.Reason = base.decisive + " holds, nothing removes it"
}

func permissionReason(n *ExplainNode) string {
	switch {
	case n.Outcome == Holds && n.decisive != "":
		return "granted by " + n.decisive
	case n.Outcome == Caveated:
		return "holds only if its caveat says so"
	case n.removal != "":
		return "removed by " + n.removal
	case n.Outcome == DoesNotHold && len(n.Children) > 0 && n.Children[0].Reason != "":
		return n.Children[0].Reason
	}
	return ""
}

func relationReason(n *ExplainNode) string {
	switch n.Outcome {
	case Holds, Caveated:
		if h := firstWith(n.Children, Holds, Caveated); h != nil {
			return "through " + h.Object() + "#" + h.Relation
		}
		if len(n.Relationships) > 0 {
			return "relationship " + FormatRelationship(n.Relationships[0])
		}
		if n.Cached {
			return "answered from SpiceDB's cache"
		}
	case DoesNotHold:
		return "no relationship gives it to " + n.Subject.String()
	}
	return ""
}

// combine is the outcome of operands joined by union (all false) or
// intersection (all true), in three-valued logic.
func combine(children []*ExplainNode, all bool) Outcome {
	if len(children) == 0 {
		return NotEvaluated
	}
	var yes, no, maybe, unknown int
	for _, c := range children {
		switch c.Outcome {
		case Holds:
			yes++
		case DoesNotHold:
			no++
		case Caveated:
			maybe++
		default:
			unknown++
		}
	}
	if all {
		switch {
		case no > 0:
			return DoesNotHold
		case unknown > 0:
			return NotEvaluated
		case maybe > 0:
			return Caveated
		}
		return Holds
	}
	switch {
	case yes > 0:
		return Holds
	case maybe > 0:
		return Caveated
	case unknown > 0:
		return NotEvaluated
	}
	return DoesNotHold
}

func firstWith(nodes []*ExplainNode, outcomes ...Outcome) *ExplainNode {
	for _, n := range nodes {
		if slices.Contains(outcomes, n.Outcome) {
			return n
		}
	}
	return nil
}

func objectsOf(nodes []*ExplainNode) string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Object()+"#"+n.Relation)
	}
	return strings.Join(out, ", ")
}

// Walk calls fn on n and every node below it, depth first.
func (n *ExplainNode) Walk(fn func(*ExplainNode)) {
	fn(n)
	for _, ch := range n.Children {
		ch.Walk(fn)
	}
}
