package authz

import (
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func objectRef(o Object) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: string(o.Type), ObjectId: o.ID}
}

func subjectRef(s Subject) *v1.SubjectReference {
	return &v1.SubjectReference{Object: objectRef(s.Object), OptionalRelation: s.Relation}
}

func structOf(m map[string]any) (*structpb.Struct, error) {
	if len(m) == 0 {
		return nil, nil
	}
	return structpb.NewStruct(m)
}

func relationshipProto(r Relationship) (*v1.Relationship, error) {
	if r.Relation.ResourceType == "" || r.Relation.Name == "" || r.ResourceID == "" {
		return nil, fmt.Errorf("%w: incomplete relationship %s", ErrInvalid, r)
	}
	rel := &v1.Relationship{
		Resource: objectRef(r.Resource()),
		Relation: r.Relation.Name,
		Subject:  subjectRef(r.Subject),
	}
	if r.Caveat != nil {
		ctx, err := structOf(r.Caveat.Context)
		if err != nil {
			return nil, fmt.Errorf("%w: caveat context of %s: %v", ErrInvalid, r, err)
		}
		rel.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: r.Caveat.Name, Context: ctx}
	}
	if !r.ExpiresAt.IsZero() {
		rel.OptionalExpiresAt = timestamppb.New(r.ExpiresAt)
	}
	return rel, nil
}

func relationshipFromProto(rel *v1.Relationship) Relationship {
	r := Relationship{
		Relation:   Relation{ResourceType: ObjectType(rel.GetResource().GetObjectType()), Name: rel.GetRelation()},
		ResourceID: rel.GetResource().GetObjectId(),
		Subject: Subject{
			Object:   ObjectType(rel.GetSubject().GetObject().GetObjectType()).Object(rel.GetSubject().GetObject().GetObjectId()),
			Relation: rel.GetSubject().GetOptionalRelation(),
		},
	}
	if c := rel.GetOptionalCaveat(); c != nil {
		r.Caveat = &Caveat{Name: c.GetCaveatName(), Context: c.GetContext().AsMap()}
	}
	if e := rel.GetOptionalExpiresAt(); e != nil {
		r.ExpiresAt = e.AsTime()
	}
	return r
}

func filterProto(f Filter) *v1.RelationshipFilter {
	out := &v1.RelationshipFilter{
		ResourceType:       string(f.ResourceType),
		OptionalResourceId: f.ResourceID,
		OptionalRelation:   f.Relation,
	}
	if f.Subject != nil {
		out.OptionalSubjectFilter = &v1.SubjectFilter{
			SubjectType:       string(f.Subject.Type),
			OptionalSubjectId: f.Subject.ID,
		}
		if f.Subject.Relation != "" {
			out.OptionalSubjectFilter.OptionalRelation = &v1.SubjectFilter_RelationFilter{Relation: f.Subject.Relation}
		}
	}
	return out
}

func operationProto(op Operation) (v1.RelationshipUpdate_Operation, error) {
	switch op {
	case OpTouch:
		return v1.RelationshipUpdate_OPERATION_TOUCH, nil
	case OpCreate:
		return v1.RelationshipUpdate_OPERATION_CREATE, nil
	case OpDelete:
		return v1.RelationshipUpdate_OPERATION_DELETE, nil
	default:
		return 0, fmt.Errorf("%w: unknown operation %d", ErrInvalid, op)
	}
}

func operationFromProto(op v1.RelationshipUpdate_Operation) Operation {
	switch op {
	case v1.RelationshipUpdate_OPERATION_CREATE:
		return OpCreate
	case v1.RelationshipUpdate_OPERATION_DELETE:
		return OpDelete
	default:
		return OpTouch
	}
}
