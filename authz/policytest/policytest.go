// Package policytest runs assertion files in SpiceDB's validation-file format
// (the format `zed validate` and the playground read) with SpiceDB's own
// development code: the file's schema (inline, or schemaFile relative to the
// file), its relationships, its assertTrue / assertFalse / assertCaveated
// assertions, and its expected relations.
//
// CI runs every file of policies-test/ through it; beepctl reuses it.
package policytest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/authzed/spicedb/pkg/development"
	core "github.com/authzed/spicedb/pkg/proto/core/v1"
	devinterface "github.com/authzed/spicedb/pkg/proto/developer/v1"
	"github.com/authzed/spicedb/pkg/tuple"
	"github.com/authzed/spicedb/pkg/validationfile"

	"github.com/beepchat/beep/authz"
)

// Failure is one thing a file got wrong.
type Failure struct {
	File string
	// Line is the 1-based line in File (0 when SpiceDB gave no position),
	// and Column the 1-based column in it (0 when unknown).
	Line, Column int
	// Kind is SpiceDB's error kind, such as ASSERTION_FAILED or PARSE_ERROR.
	Kind string
	// Message says what was expected.
	Message string
	// Context is the assertion, relationship or expected relation at fault.
	Context string
}

func (f Failure) String() string {
	loc := f.File
	if f.Line > 0 {
		loc = fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	s := fmt.Sprintf("%s: %s: %s", loc, f.Kind, f.Message)
	if f.Context != "" && !strings.Contains(f.Message, f.Context) {
		s += " [" + f.Context + "]"
	}
	return s
}

// Report is the outcome of one file.
type Report struct {
	File string
	// Assertions is how many assertions the file holds (all kinds).
	Assertions int
	// ExpectedRelations is how many expected-relations entries it holds.
	ExpectedRelations int
	Failures          []Failure
	// Generated is the expected-relations block SpiceDB computes for the
	// file's validation keys (what `zed validate --update` would write).
	Generated string
	// Checks answers Options.Checks, in their order.
	Checks []Answer
}

// Options are what RunWith does beyond the file itself.
type Options struct {
	// Schema, when set, is the schema of a file that has no inline one: a
	// schemaFile it names is then not read (the server runs files against
	// the schema it runs).
	Schema string
	// Checks are answered against the file's schema and relationships
	// (a playground's "check watches").
	Checks []Question
}

// Question is a check asked of a file's schema and relationships.
type Question struct {
	Check authz.Check
	// Explain also returns the explanation tree.
	Explain bool
}

// Answer is the answer to a Question.
type Answer struct {
	Question Question
	Decision authz.Decision
	// Explanation is set when the question asked for it.
	Explanation *authz.ExplainNode
	// Err is set when the check does not fit the file's schema; Decision
	// is then the zero Decision.
	Err error
}

// OK is true when the file passed.
func (r Report) OK() bool { return len(r.Failures) == 0 }

// RunFile validates one file.
func RunFile(ctx context.Context, path string) (Report, error) {
	contents, err := os.ReadFile(path)
	if err != nil {
		return Report{}, err
	}
	return Run(ctx, path, contents, filepath.Dir(path))
}

// Run validates the contents of a file named name; a schemaFile it names is
// read relative to dir.
func Run(ctx context.Context, name string, contents []byte, dir string) (Report, error) {
	return RunWith(ctx, name, contents, dir, Options{})
}

// RunWith is Run with options: a default schema, and checks to answer.
func RunWith(ctx context.Context, name string, contents []byte, dir string, opts Options) (Report, error) {
	report := Report{File: name}
	parsed, err := validationfile.DecodeValidationFile(contents)
	if err != nil {
		report.Failures = append(report.Failures, Failure{File: name, Kind: "PARSE_ERROR", Message: err.Error()})
		return report, nil
	}
	report.Assertions = len(parsed.Assertions.AssertTrue) + len(parsed.Assertions.AssertFalse) + len(parsed.Assertions.AssertCaveated)
	report.ExpectedRelations = len(parsed.ExpectedRelations.ValidationMap)
	schema := parsed.Schema.Schema
	schemaLine := parsed.Schema.SourcePosition.LineNumber
	if schema == "" && opts.Schema != "" {
		schema, schemaLine = opts.Schema, 0
	} else if parsed.SchemaFile != "" {
		if schema != "" {
			report.Failures = append(report.Failures, Failure{File: name, Kind: "PARSE_ERROR", Message: "both schema and schemaFile are set"})
			return report, nil
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(parsed.SchemaFile)))
		if err != nil {
			report.Failures = append(report.Failures, Failure{File: name, Kind: "PARSE_ERROR", Message: fmt.Sprintf("schemaFile: %v", err)})
			return report, nil
		}
		schema, schemaLine = string(b), 0
	}
	rels := make([]*core.RelationTuple, 0, len(parsed.Relationships.Relationships))
	for _, r := range parsed.Relationships.Relationships {
		rels = append(rels, r.ToCoreTuple())
	}
	devCtx, devErrs, err := development.NewDevContext(ctx, &devinterface.RequestContext{Schema: schema, Relationships: rels})
	if err != nil {
		return report, fmt.Errorf("%s: %w", name, err)
	}
	if devErrs != nil {
		for _, e := range devErrs.InputErrors {
			line := int(e.Line)
			switch e.Source {
			case devinterface.DeveloperError_SCHEMA:
				if schemaLine > 0 && line > 0 {
					line += schemaLine
				}
			case devinterface.DeveloperError_RELATIONSHIP:
				line = relationshipLine(parsed, e.Context)
			}
			report.Failures = append(report.Failures, failure(name, e, line))
		}
		return report, nil
	}
	defer devCtx.Dispose()

	if len(opts.Checks) > 0 {
		if report.Checks, err = answer(devCtx, opts.Checks); err != nil {
			return report, fmt.Errorf("%s: answering checks: %w", name, err)
		}
	}

	assertionErrs, err := development.RunAllAssertions(devCtx, &parsed.Assertions)
	if err != nil {
		return report, fmt.Errorf("%s: running assertions: %w", name, err)
	}
	for _, e := range assertionErrs {
		report.Failures = append(report.Failures, failure(name, e, int(e.Line)))
	}

	membership, validationErrs, err := development.RunValidation(devCtx, &parsed.ExpectedRelations)
	if err != nil {
		return report, fmt.Errorf("%s: running expected relations: %w", name, err)
	}
	for _, e := range validationErrs {
		report.Failures = append(report.Failures, failure(name, e, int(e.Line)))
	}
	if membership != nil {
		if generated, err := development.GenerateValidation(membership); err == nil {
			report.Generated = generated
		}
	}
	return report, nil
}

// RunDir validates every .yaml file below dir, in name order.
func RunDir(ctx context.Context, dir string) ([]Report, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	reports := make([]Report, 0, len(files))
	for _, f := range files {
		r, err := RunFile(ctx, f)
		if err != nil {
			return reports, err
		}
		reports = append(reports, r)
	}
	return reports, nil
}

func failure(file string, e *devinterface.DeveloperError, line int) Failure {
	column := int(e.Column)
	if line != int(e.Line) && e.Source != devinterface.DeveloperError_SCHEMA {
		column = 0 // a position of our own: the column is SpiceDB's, of another line
	}
	return Failure{File: file, Line: line, Column: column, Kind: e.Kind.String(), Message: e.Message, Context: e.Context}
}

// answer asks questions of a development context through SpiceDB's v1 API
// served over it, with the client every service uses.
func answer(devCtx *development.DevContext, questions []Question) ([]Answer, error) {
	conn, stop, err := devCtx.RunV1InMemoryService()
	if err != nil {
		return nil, err
	}
	defer stop()
	client := authz.NewClient(conn, authz.WithTimeout(10*time.Second))
	out := make([]Answer, 0, len(questions))
	for _, q := range questions {
		a := Answer{Question: q}
		if q.Explain {
			var ex authz.Explanation
			ex, a.Err = client.Explain(devCtx.Ctx, q.Check, authz.FullyConsistent())
			a.Decision, a.Explanation = ex.Decision, ex.Root
		} else {
			a.Decision, a.Err = client.Check(devCtx.Ctx, q.Check, authz.FullyConsistent())
		}
		if a.Err != nil && !errors.Is(a.Err, authz.ErrInvalid) {
			return out, a.Err
		}
		out = append(out, a)
	}
	return out, nil
}

func relationshipLine(parsed *validationfile.ValidationFile, context string) int {
	// SpiceDB names the relationship at fault (tuple.String): that one.
	for i, r := range parsed.Relationships.Relationships {
		if s, err := tuple.String(r); err == nil && s == context && i < len(parsed.Relationships.RelationshipPositions) {
			return parsed.Relationships.RelationshipPositions[i].LineNumber
		}
	}
	for i, r := range parsed.Relationships.Relationships {
		if strings.Contains(context, r.Resource.ObjectID) && i < len(parsed.Relationships.RelationshipPositions) {
			return parsed.Relationships.RelationshipPositions[i].LineNumber
		}
	}
	return parsed.Relationships.SourcePosition.LineNumber
}
