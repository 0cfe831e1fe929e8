package policytest_test

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

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
