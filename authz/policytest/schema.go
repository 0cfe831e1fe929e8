package policytest

import (
	"context"
	"strings"

	"github.com/authzed/spicedb/pkg/development"
	devinterface "github.com/authzed/spicedb/pkg/proto/developer/v1"
)

// Problem is an error or a warning of a schema, located in its text.
type Problem struct {
	// Line and Column are 1-based (0 when SpiceDB gave no position).
	Line, Column int
	Message      string
	// Source is the text at fault, when SpiceDB names it.
	Source string
	// Warning is SpiceDB's name of the check that warned, such as
	// "relation-name-references-parent" (warnings only).
	Warning string
}

// ValidateSchema compiles a schema with SpiceDB's development code, as
// `zed validate` and the playground do, and returns its errors and, when it
// compiles, its warnings. err is set only when validation itself failed.
func ValidateSchema(ctx context.Context, schema string) (errs, warnings []Problem, err error) {
	devCtx, devErrs, err := development.NewDevContext(ctx, &devinterface.RequestContext{Schema: schema})
	if err != nil {
		return nil, nil, err
	}
	if devErrs != nil {
		for _, e := range devErrs.GetInputErrors() {
			errs = append(errs, Problem{Line: int(e.GetLine()), Column: int(e.GetColumn()), Message: e.GetMessage(), Source: e.GetContext()})
		}
		if len(errs) == 0 {
			errs = append(errs, Problem{Message: "the schema does not compile"})
		}
		return errs, nil, nil
	}
	defer devCtx.Dispose()
	found, err := development.GetWarnings(ctx, devCtx)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range found {
		p := Problem{Line: int(w.GetLine()), Column: int(w.GetColumn()), Message: w.GetMessage(), Source: w.GetSourceCode()}
		// SpiceDB appends the check's name: "... (relation-name-references-parent)".
		if i := strings.LastIndex(p.Message, " ("); i > 0 && strings.HasSuffix(p.Message, ")") {
			p.Message, p.Warning = p.Message[:i], p.Message[i+2:len(p.Message)-1]
		}
		warnings = append(warnings, p)
	}
	return nil, warnings, nil
}
