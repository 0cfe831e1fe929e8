package authz

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrDenied is matched by every [*DeniedError].
	ErrDenied = errors.New("authz: permission denied")
	// ErrUnavailable means SpiceDB could not answer (timeout, connection,
	// overload). Callers must treat it as a refusal.
	ErrUnavailable = errors.New("authz: authorization service unavailable")
	// ErrInvalid means the request does not fit the schema (unknown type,
	// relation or permission, malformed id).
	ErrInvalid = errors.New("authz: invalid request")
	// ErrPreconditionFailed means a write's precondition did not hold, or a
	// Create found its relationship already there; nothing was written.
	ErrPreconditionFailed = errors.New("authz: precondition failed")
	// ErrSchemaBreaking means SpiceDB refused a schema change because
	// existing relationships depend on what it removes.
	ErrSchemaBreaking = errors.New("authz: schema change refused")
)

// DeniedError says who was refused what. It matches [ErrDenied].
type DeniedError struct {
	Subject    Subject
	Permission Permission
	ResourceID string
	// Conditional is true when the permission depended on caveat context that
	// was missing: it is refused all the same.
	Conditional bool
}

func (e *DeniedError) Error() string {
	s := fmt.Sprintf("authz: %s lacks %s on %s:%s", e.Subject, e.Permission.Name, e.Permission.ResourceType, e.ResourceID)
	if e.Conditional {
		s += " (conditional: caveat context missing)"
	}
	return s
}

// Is makes errors.Is(err, ErrDenied) true.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// classify turns a gRPC error from SpiceDB on a read or check into one of
// the package's sentinel errors, keeping SpiceDB's message. SpiceDB answers
// FailedPrecondition when a request names something the schema lacks.
func classify(op string, err error) error {
	if status.Code(err) == codes.FailedPrecondition {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, op, status.Convert(err).Message())
	}
	return classifyWrite(op, err)
}

// classifyWrite is classify for writes, where FailedPrecondition means a
// precondition did not hold.
func classifyWrite(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
	}
	switch st.Code() {
	case codes.InvalidArgument, codes.NotFound, codes.OutOfRange:
		return fmt.Errorf("%w: %s: %s", ErrInvalid, op, st.Message())
	case codes.FailedPrecondition, codes.AlreadyExists:
		return fmt.Errorf("%w: %s: %s", ErrPreconditionFailed, op, st.Message())
	default:
		return fmt.Errorf("%w: %s: %s: %s", ErrUnavailable, op, st.Code(), st.Message())
	}
}
