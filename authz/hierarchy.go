package authz

import "fmt"

// Discord's role hierarchy orders roles by an integer position, which a
// graph cannot compare. The community service keeps positions in its database
// and asks these functions, after SpiceDB has said the actor holds the
// permission (manage_roles, kick_members, ...).

// Rank is a member's place in a server's role hierarchy.
type Rank struct {
	// Owner is true for the server owner, who outranks everyone.
	Owner bool
	// Top is the position of the member's highest role (the @everyone role
	// has position 0, so a member without roles has Top 0).
	Top int
}

// Outranks reports whether a may act on member b (kick, ban, time out,
// change nickname): the owner outranks everyone else;
// otherwise a's highest role must be strictly above b's, and nobody outranks
// the owner.
func (a Rank) Outranks(b Rank) bool {
	if b.Owner {
		return false
	}
	return a.Owner || a.Top > b.Top
}

// OutranksRole reports whether a may edit, delete, reorder, assign or remove
// the role at position: only roles strictly below a's highest role.
func (a Rank) OutranksRole(position int) bool {
	return a.Owner || a.Top > position
}

// RequireOutranks returns a *HierarchyError unless a outranks b.
func (a Rank) RequireOutranks(b Rank) error {
	if !a.Outranks(b) {
		return &HierarchyError{Reason: "the target member's highest role is not below yours"}
	}
	return nil
}

// RequireOutranksRole returns a *HierarchyError unless a outranks the role.
func (a Rank) RequireOutranksRole(position int) error {
	if !a.OutranksRole(position) {
		return &HierarchyError{Reason: fmt.Sprintf("the role (position %d) is not below your highest role (position %d)", position, a.Top)}
	}
	return nil
}

// RequireGrantable returns a *HierarchyError unless the actor, who holds
// the server-wide permissions held, may give a role the flags requested:
// one can only grant permissions one holds (administrator holds them all).
func RequireGrantable(held, requested Flags) error {
	if held.Has(FlagAdministrator) {
		return nil
	}
	if missing := requested.Without(held); missing != 0 {
		return &HierarchyError{Reason: fmt.Sprintf("you cannot grant permissions you do not hold: %s", missing)}
	}
	return nil
}

// HierarchyError is a refusal by the role hierarchy. It matches ErrDenied.
type HierarchyError struct {
	Reason string
}

func (e *HierarchyError) Error() string { return "authz: role hierarchy: " + e.Reason }

// Is makes errors.Is(err, ErrDenied) true.
func (e *HierarchyError) Is(target error) bool { return target == ErrDenied }
