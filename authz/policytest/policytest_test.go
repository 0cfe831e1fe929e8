package policytest_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/policytest"
)

// printGenerated prints, for every file, the expected relations SpiceDB
// computes for its validation keys: go test ./policytest -run TestPolicies -v -args -generated
var printGenerated = flag.Bool("generated", false, "print the expected relations SpiceDB generates for each file")

// policiesDir is the repository's assertion suite.
const policiesDir = "../../policies-test"

// TestPolicies runs every assertion file of policies-test/, as CI does.
func TestPolicies(t *testing.T) {
	reports, err := policytest.RunDir(t.Context(), policiesDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) == 0 {
		t.Fatalf("no assertion files found in %s", policiesDir)
	}
	total := 0
	for _, r := range reports {
		total += r.Assertions
		t.Run(filepath.Base(r.File), func(t *testing.T) {
			if r.Assertions == 0 {
				t.Errorf("%s holds no assertions", r.File)
			}
			for _, f := range r.Failures {
				t.Error(f.String())
			}
			if *printGenerated {
				t.Logf("generated expected relations for %s:\n%s", r.File, r.Generated)
			}
		})
	}
	t.Logf("%d files, %d assertions", len(reports), total)
}

// TestRunnerReportsFailures proves the runner fails on a wrong file, and says where.
func TestRunnerReportsFailures(t *testing.T) {
	r, err := policytest.RunFile(t.Context(), "testdata/broken.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r.Assertions != 3 {
		t.Errorf("counted %d assertions, want 3", r.Assertions)
	}
	var got []string
	for _, f := range r.Failures {
		got = append(got, f.String())
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{"doc:readme#view@user:bob", "to not exist", "broken.yaml:"} {
		if !strings.Contains(joined, want) {
			t.Errorf("failures do not mention %q:\n%s", want, joined)
		}
	}
	if len(r.Failures) != 2 {
		t.Errorf("got %d failures, want 2:\n%s", len(r.Failures), joined)
	}
}

// TestRunnerReportsSchemaErrors proves a schema that does not compile fails the file.
func TestRunnerReportsSchemaErrors(t *testing.T) {
	r, err := policytest.Run(t.Context(), "inline.yaml", []byte("schema: |-\n  definition user {}\n  definition doc { permission view = nobody }\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() {
		t.Fatal("a schema referencing an unknown relation passed")
	}
	t.Log(r.Failures[0])
}

// TestValidateSchema: errors with their line and column, warnings.
func TestValidateSchema(t *testing.T) {
	errs, warnings, err := policytest.ValidateSchema(t.Context(), "definition user {}\n\ndefinition doc {\n    relation viewer: usr\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 || errs[0].Line != 4 || errs[0].Column == 0 || !strings.Contains(errs[0].Message, "usr") {
		t.Fatalf("errors %+v warnings %+v", errs, warnings)
	}
	errs, warnings, err = policytest.ValidateSchema(t.Context(), "definition user {}\n\ndefinition doc {\n    relation viewer: user\n    permission view = viewer\n    permission view_doc = view\n}\n")
	if err != nil || len(errs) != 0 {
		t.Fatalf("a valid schema: %v %v", errs, err)
	}
	t.Logf("warnings: %+v", warnings)
	errs, _, err = policytest.ValidateSchema(t.Context(), string(must(os.ReadFile("../../schema/beep.zed"))))
	if err != nil || len(errs) != 0 {
		t.Fatalf("Beep's schema: %v %v", errs, err)
	}
}

// TestChecksOfAFile answers and explains checks against a file's own
// schema and relationships, and reports a check that does not fit it.
func TestChecksOfAFile(t *testing.T) {
	file := must(os.ReadFile("testdata/broken.yaml"))
	r, err := policytest.RunWith(t.Context(), "broken.yaml", file, "testdata", policytest.Options{Checks: []policytest.Question{
		{Check: authz.Check{Subject: authz.UserSubject("ann"), Permission: authz.Permission{ResourceType: "doc", Name: "view"}, ResourceID: "readme"}, Explain: true},
		{Check: authz.Check{Subject: authz.UserSubject("bob"), Permission: authz.Permission{ResourceType: "doc", Name: "view"}, ResourceID: "readme"}},
		{Check: authz.Check{Subject: authz.UserSubject("bob"), Permission: authz.Permission{ResourceType: "doc", Name: "edit"}, ResourceID: "readme"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Checks) != 3 {
		t.Fatalf("answers: %+v", r.Checks)
	}
	ann, bob, unknown := r.Checks[0], r.Checks[1], r.Checks[2]
	if !ann.Decision.Allowed || ann.Explanation == nil || ann.Explanation.Outcome != authz.Holds ||
		!strings.Contains(explained(ann.Explanation), "doc:readme#viewer") {
		t.Errorf("ann: %+v %+v", ann.Decision, ann.Explanation)
	}
	if bob.Decision.Allowed || bob.Err != nil {
		t.Errorf("bob: %+v", bob)
	}
	if !errors.Is(unknown.Err, authz.ErrInvalid) {
		t.Errorf("a permission the schema lacks: %+v", unknown)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// explained is what a tree of explanation says, its reasons and
// relationships, node after node: SpiceDB's trace puts the granting
// relationship on the node itself or on a child, run to run.
func explained(n *authz.ExplainNode) string {
	if n == nil {
		return ""
	}
	out := n.Reason
	for _, r := range n.Relationships {
		out += " " + r.String()
	}
	for _, c := range n.Children {
		out += " " + explained(c)
	}
	return out
}
