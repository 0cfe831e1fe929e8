package policytest

import (
	"testing"
)

// A relationship the schema cannot hold is located on its own line, not on
// the first relationship of the same object.
func TestRelationshipLine(t *testing.T) {
	file := "schema: |-\n  definition user {}\n  definition doc {\n    relation viewer: user\n  }\nrelationships: |-\n  doc:readme#viewer@user:ann\n  doc:readme#viewer@user:bob\n  doc:readme#nothere@user:zed\n"
	r, err := Run(t.Context(), "f.yaml", []byte(file), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Failures) != 1 || r.Failures[0].Line != 9 || r.Failures[0].Kind != "UNKNOWN_RELATION" {
		t.Fatalf("failures = %+v, want UNKNOWN_RELATION at line 9", r.Failures)
	}
}
