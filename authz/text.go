package authz

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/authzed/spicedb/pkg/tuple"
)

// The text forms SpiceDB reads and writes (validation files, zed): an
// object "type:id", a subject "type:id" or "type:id#relation", and a
// relationship "type:id#relation@subject" with an optional caveat
// "[name]" or "[name:{json context}]" and an optional
// "[expiration:2006-01-02T15:04:05Z]".

var (
	typeName     = regexp.MustCompile(`^([a-z][a-z0-9_]{1,61}[a-z0-9]/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$`)
	relationName = regexp.MustCompile(`^[a-z][a-z0-9_]{1,62}[a-z0-9]$`)
)

// ParseObject reads "type:id". The id may not be the wildcard.
func ParseObject(s string) (Object, error) {
	t, id, ok := strings.Cut(s, ":")
	if !ok || !typeName.MatchString(t) || !ValidObjectID(id) {
		return Object{}, fmt.Errorf("%w: %q is not an object type:id", ErrInvalid, s)
	}
	return ObjectType(t).Object(id), nil
}

// ParseSubject reads "type:id", "type:id#relation" or "type:*".
func ParseSubject(s string) (Subject, error) {
	obj, rel, _ := strings.Cut(s, "#")
	t, id, ok := strings.Cut(obj, ":")
	if !ok || !typeName.MatchString(t) || (id != "*" && !ValidObjectID(id)) ||
		(rel != "" && rel != "..." && !relationName.MatchString(rel)) || (id == "*" && rel != "" && rel != "...") {
		return Subject{}, fmt.Errorf("%w: %q is not a subject type:id or type:id#relation", ErrInvalid, s)
	}
	if rel == "..." {
		rel = ""
	}
	return Subject{Object: ObjectType(t).Object(id), Relation: rel}, nil
}

// ParsePermissionName checks a relation or permission name.
func ParsePermissionName(t ObjectType, name string) (Permission, error) {
	if !typeName.MatchString(string(t)) || !relationName.MatchString(name) {
		return Permission{}, fmt.Errorf("%w: %q is not a permission of %q", ErrInvalid, name, t)
	}
	return Permission{ResourceType: t, Name: name}, nil
}

// ParseRelationship reads a relationship in SpiceDB's text form, caveat
// (with its context) and expiration included, as validation files write it:
// "server:s#timed_out@user:carl[expiration:2099-01-01T00:00:00Z]".
func ParseRelationship(s string) (Relationship, error) {
	s = strings.TrimSpace(s)
	parsed, err := tuple.ParseV1Rel(s)
	if err != nil {
		return Relationship{}, fmt.Errorf("%w: %q: %v", ErrInvalid, s, err)
	}
	return relationshipFromProto(parsed), nil
}

// FormatRelationship writes r in SpiceDB's text form, caveat context
// included: ParseRelationship reads it back.
func FormatRelationship(r Relationship) string {
	rel, err := relationshipProto(r)
	if err != nil {
		return r.String()
	}
	s, err := tuple.V1StringRelationship(rel)
	if err != nil || s == "" {
		return r.String()
	}
	return s
}
