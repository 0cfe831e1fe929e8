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
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/authzed/spicedb/pkg/development"
	core "github.com/authzed/spicedb/pkg/proto/core/v1"
	devinterface "github.com/authzed/spicedb/pkg/proto/developer/v1"
	"github.com/authzed/spicedb/pkg/validationfile"
)

// Failure is one thing a file got wrong.
type Failure struct {
	File string
	// Line is the 1-based line in File (0 when SpiceDB gave no position).
	Line int
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
	if parsed.SchemaFile != "" {
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
	return Failure{File: file, Line: line, Kind: e.Kind.String(), Message: e.Message, Context: e.Context}
}

func relationshipLine(parsed *validationfile.ValidationFile, context string) int {
	for i, r := range parsed.Relationships.Relationships {
		if strings.Contains(context, r.Resource.ObjectID) && i < len(parsed.Relationships.RelationshipPositions) {
			return parsed.Relationships.RelationshipPositions[i].LineNumber
		}
	}
	return parsed.Relationships.SourcePosition.LineNumber
}
