package policytest

import (
	"slices"
	"strings"
	"testing"
)

func TestWhatIf(t *testing.T) {
	current := "definition user {}\ndefinition doc {\n  relation owner: user\n  relation viewer: user\n  permission view = owner + viewer\n  permission edit = owner\n}"
	proposed := strings.Replace(current, "permission view = owner + viewer", "permission view = owner", 1)
	rels := []string{"doc:readme#owner@user:ann", "doc:readme#viewer@user:bob"}
	file := []byte("assertions:\n  assertTrue:\n    - doc:readme#view@user:ann\n    - doc:readme#view@user:bob\n")
	r, err := WhatIf(t.Context(), current, proposed, rels, "f.yaml", file, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", r.Errors)
	}
	// doc:readme has view and edit; the users have no permissions.
	if r.Compared != 2 || r.Truncated {
		t.Errorf("compared %d (truncated %v), want 2", r.Compared, r.Truncated)
	}
	if len(r.Changes) != 1 || r.Changes[0].Resource != "doc:readme" || r.Changes[0].Permission != "view" ||
		!slices.Equal(r.Changes[0].Lost, []string{"user:bob"}) || len(r.Changes[0].Gained) != 0 {
		t.Errorf("changes = %+v, want bob losing doc:readme#view", r.Changes)
	}
	if r.Assertions != 2 || len(r.Failures) != 1 || r.Failures[0].Line != 4 || !strings.Contains(r.Failures[0].Message, "user:bob") {
		t.Errorf("assertions %d, failures %+v: want bob's assertion failing at line 4", r.Assertions, r.Failures)
	}

	// Nothing changes with the same schema; a limit truncates.
	if r, err := WhatIf(t.Context(), current, current, rels, "f.yaml", nil, 1); err != nil || len(r.Changes) != 0 || !r.Truncated || r.Compared != 1 {
		t.Errorf("same schema: %+v, %v", r, err)
	}
	// A schema that cannot hold the relationships is an error, located.
	broken := strings.Replace(current, "relation viewer: user", "", 1)
	broken = strings.Replace(broken, " + viewer", "", 1)
	if r, err := WhatIf(t.Context(), current, broken, rels, "f.yaml", nil, 100); err != nil || len(r.Errors) == 0 {
		t.Errorf("schema without viewer: %+v, %v", r, err)
	}
}
