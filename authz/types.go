package authz

import (
	"fmt"
	"time"
)

// ObjectType is a definition of the schema, such as "channel".
type ObjectType string

// Object is one object of the graph: a type and an id.
type Object struct {
	Type ObjectType
	ID   string
}

// Object returns the object of this type with the given id.
func (t ObjectType) Object(id string) Object { return Object{Type: t, ID: id} }

// String renders the object as SpiceDB does: type:id.
func (o Object) String() string { return string(o.Type) + ":" + o.ID }

// Subject returns the object itself as a subject (no relation).
func (o Object) Subject() Subject { return Subject{Object: o} }

// Relation is a relation of a definition, such as channel#server.
type Relation struct {
	ResourceType ObjectType
	Name         string
}

// String renders the relation as type#name.
func (r Relation) String() string { return string(r.ResourceType) + "#" + r.Name }

// Permission is a permission of a definition, such as channel#send_messages.
type Permission struct {
	ResourceType ObjectType
	Name         string
}

// String renders the permission as type#name.
func (p Permission) String() string { return string(p.ResourceType) + "#" + p.Name }

// InSchema reports whether the schema has this permission (or relation:
// both can be checked).
func (p Permission) InSchema() bool {
	_, ok := schemaNames[p.String()]
	return ok
}

// Subject is who a relationship or a check is about: an object, or the set of
// subjects that have Relation on the object (a userset such as role:r#member),
// or every object of a type (ID "*", see [Wildcard]).
type Subject struct {
	Object   Object
	Relation string
}

// UserSubject is the user with the given id, the usual subject of a check.
func UserSubject(id string) Subject { return TypeUser.Object(id).Subject() }

// Wildcard is every object of type t (t:*).
func Wildcard(t ObjectType) Subject { return Subject{Object: Object{Type: t, ID: "*"}} }

// Userset is the subjects that have rel on the object with the given id,
// such as role:r#member.
func Userset(rel Relation, id string) Subject {
	return Subject{Object: rel.ResourceType.Object(id), Relation: rel.Name}
}

// String renders the subject as type:id or type:id#relation.
func (s Subject) String() string {
	if s.Relation == "" {
		return s.Object.String()
	}
	return s.Object.String() + "#" + s.Relation
}

// ZedToken is an opaque SpiceDB revision. A write returns the one it was
// written at; a check given it with [AtLeastAsFresh] sees that write.
type ZedToken string

// Caveat attaches a named caveat and part of its context to a relationship.
type Caveat struct {
	Name    string
	Context map[string]any
}

// Relationship is one edge of the graph: ResourceID's Relation is Subject.
type Relationship struct {
	Relation   Relation
	ResourceID string
	Subject    Subject
	// Caveat, when set, makes the relationship conditional.
	Caveat *Caveat
	// ExpiresAt, when not zero, is when SpiceDB stops honouring the relationship.
	ExpiresAt time.Time
}

// Resource is the object the relationship starts from.
func (r Relationship) Resource() Object { return r.Relation.ResourceType.Object(r.ResourceID) }

// String renders the relationship in SpiceDB's text form.
func (r Relationship) String() string {
	s := fmt.Sprintf("%s#%s@%s", r.Resource(), r.Relation.Name, r.Subject)
	if r.Caveat != nil {
		s += "[" + r.Caveat.Name + "]"
	}
	if !r.ExpiresAt.IsZero() {
		s += "[expiration:" + r.ExpiresAt.UTC().Format(time.RFC3339) + "]"
	}
	return s
}

// Operation is what a write does with a relationship.
type Operation int

const (
	// OpTouch writes the relationship whether or not it exists.
	OpTouch Operation = iota + 1
	// OpCreate writes the relationship and fails if it exists.
	OpCreate
	// OpDelete removes the relationship if it exists.
	OpDelete
)

// Update is one operation of a write.
type Update struct {
	Op           Operation
	Relationship Relationship
}

// Touch writes r, whether or not it exists.
func Touch(r Relationship) Update { return Update{Op: OpTouch, Relationship: r} }

// Create writes r and makes the whole write fail if it already exists.
func Create(r Relationship) Update { return Update{Op: OpCreate, Relationship: r} }

// Delete removes r if it exists.
func Delete(r Relationship) Update { return Update{Op: OpDelete, Relationship: r} }

// Filter selects relationships. ResourceType is required; every other empty
// field matches anything.
type Filter struct {
	ResourceType ObjectType
	ResourceID   string
	Relation     string
	// Subject, when set, restricts the subject; its empty fields match anything.
	Subject *SubjectFilter
}

// SubjectFilter restricts the subject of a [Filter].
type SubjectFilter struct {
	Type     ObjectType
	ID       string
	Relation string
}

// Precondition makes a write conditional on relationships matching (or not
// matching) a filter, checked atomically with the write.
type Precondition struct {
	MustMatch bool
	Filter    Filter
}

// MustMatch is a precondition that at least one relationship matches f.
func MustMatch(f Filter) Precondition { return Precondition{MustMatch: true, Filter: f} }

// MustNotMatch is a precondition that no relationship matches f.
func MustNotMatch(f Filter) Precondition { return Precondition{Filter: f} }

// PlatformID is the id of the one platform object, Beep itself
// (platform:beep): its admin and staff relations say who administers Beep.
const PlatformID = "beep"
