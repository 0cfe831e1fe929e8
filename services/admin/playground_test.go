package admin

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz/policytest"
	adminv1 "github.com/beepchat/beep/gen/beep/admin/v1"
)

func TestInlineSchema(t *testing.T) {
	file := "# A test.\nschemaFile: ../../schema/beep.zed\nrelationships: |-\n  doc:d#viewer@user:ann\nassertions:\n  assertTrue:\n    - doc:d#view@user:ann\n"
	schema := "definition user {}\n\ndefinition doc {\n    relation viewer: user\n    permission view = viewer\n}\n"
	got := InlineSchema(file, schema)
	want := "# A test.\nschema: |-\n  definition user {}\n\n  definition doc {\n      relation viewer: user\n      permission view = viewer\n  }\nrelationships: |-\n"
	if !strings.HasPrefix(got, want) {
		t.Fatalf("InlineSchema:\n%s\nwant a prefix\n%s", got, want)
	}
	// What it makes runs, and passes, on its own.
	report, err := policytest.Run(context.Background(), "inline.yaml", []byte(got), t.TempDir())
	if err != nil || !report.OK() || report.Assertions != 1 {
		t.Fatalf("the inlined file: %+v %v", report, err)
	}
	if same := InlineSchema("schema: |-\n  definition user {}\n", schema); same != "schema: |-\n  definition user {}\n" {
		t.Errorf("a file with its schema inline changed: %q", same)
	}
}

func TestPolicyFiles(t *testing.T) {
	s := New(Config{PolicyFiles: fstest.MapFS{
		"b/two.yaml":  {Data: []byte("# Second file\nschemaFile: x.zed\n")},
		"a/one.yaml":  {Data: []byte("#  First file  \nschema: |-\n  definition user {}\n")},
		"a/notes.txt": {Data: []byte("not a policy file")},
	}})
	list, err := s.ListPolicyFiles(t.Context(), connect.NewRequest(&adminv1.ListPolicyFilesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Msg.Files) != 2 || list.Msg.Files[0].Name != "a/one.yaml" || list.Msg.Files[0].Title != "First file" || list.Msg.Files[1].Title != "Second file" {
		t.Errorf("ListPolicyFiles = %v", list.Msg.Files)
	}
	read, err := s.ReadPolicyFile(t.Context(), connect.NewRequest(&adminv1.ReadPolicyFileRequest{Name: "b/two.yaml"}))
	if err != nil || !strings.Contains(read.Msg.Content, "schema: |-\n  // Code generated") {
		t.Errorf("ReadPolicyFile: %v %v", read, err)
	}
	for name, code := range map[string]connect.Code{"": connect.CodeInvalidArgument, "../a/one.yaml": connect.CodeInvalidArgument, "c/none.yaml": connect.CodeNotFound} {
		if _, err := s.ReadPolicyFile(t.Context(), connect.NewRequest(&adminv1.ReadPolicyFileRequest{Name: name})); connect.CodeOf(err) != code {
			t.Errorf("ReadPolicyFile(%q): %v, want %v", name, err, code)
		}
	}
	// The embedded default holds policies-test/.
	list, err = New(Config{}).ListPolicyFiles(t.Context(), connect.NewRequest(&adminv1.ListPolicyFilesRequest{}))
	if err != nil || len(list.Msg.Files) < 19 {
		t.Errorf("the embedded files: %v %v", list, err)
	}
}
