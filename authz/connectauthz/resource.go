package connectauthz

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/beepchat/beep/authz"
	authzv1 "github.com/beepchat/beep/gen/beep/authz/v1"
)

// ParseObjectRef reads an object reference "type:id" whose type is one of
// types, such as "thread:0190a3c4-..." for a conversation. The id must be
// one SpiceDB accepts, and not the wildcard "*".
func ParseObjectRef(ref string, types []string) (authz.Object, error) {
	t, id, ok := strings.Cut(ref, ":")
	if !ok || t == "" {
		return authz.Object{}, fmt.Errorf("%q is not a reference type:id (one of %s)", ref, strings.Join(types, ", "))
	}
	if !slices.Contains(types, t) {
		return authz.Object{}, fmt.Errorf("%q: a %s is not one of %s", ref, t, strings.Join(types, ", "))
	}
	if !authz.ValidObjectID(id) {
		return authz.Object{}, fmt.Errorf("%q: not a valid %s id", ref, t)
	}
	return authz.ObjectType(t).Object(id), nil
}

// Resource returns what a request to procedure is checked on, as its
// declared requirement says: the permission and the object's id. It fails
// for an RPC that declares no permission on a resource.
func Resource(procedure string, msg proto.Message) (authz.Permission, string, error) {
	req, method, err := Requirement(protoregistry.GlobalFiles, procedure)
	if err != nil {
		return authz.Permission{}, "", err
	}
	if req.GetPermission() == "" {
		return authz.Permission{}, "", fmt.Errorf("%s declares no permission", procedure)
	}
	return resource(req, method, msg)
}

// resource returns what a request is checked on, as its requirement says:
// the permission, and the id of the object it is checked on. The error is a
// Connect error: Internal for a bad declaration, InvalidArgument for a
// request that does not name a resource properly (before any check).
func resource(req *authzv1.Requirement, method protoreflect.MethodDescriptor, msg proto.Message) (authz.Permission, string, error) {
	types := req.GetResourceTypes()
	if len(types) == 0 {
		perm, err := ParsePermission(req.GetPermission())
		if err != nil {
			return perm, "", connect.NewError(connect.CodeInternal, err)
		}
		resourceID := req.GetResourceId()
		if field := req.GetResourceField(); field != "" {
			if resourceID, err = stringField(msg, method, field); err != nil {
				return perm, "", connect.NewError(connect.CodeInvalidArgument, err)
			}
		}
		return perm, resourceID, nil
	}
	name := req.GetPermission()
	if name == "" || strings.Contains(name, "#") || req.GetResourceField() == "" || req.GetResourceId() != "" {
		return authz.Permission{}, "", connect.NewError(connect.CodeInternal,
			errors.New("resource_types goes with resource_field and a bare permission name"))
	}
	ref, err := stringField(msg, method, req.GetResourceField())
	if err != nil {
		return authz.Permission{}, "", connect.NewError(connect.CodeInvalidArgument, err)
	}
	obj, err := ParseObjectRef(ref, types)
	if err != nil {
		return authz.Permission{}, "", connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %w", req.GetResourceField(), err))
	}
	return authz.Permission{ResourceType: obj.Type, Name: name}, obj.ID, nil
}
