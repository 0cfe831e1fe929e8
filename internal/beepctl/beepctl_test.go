package beepctl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
)

func TestParseFilter(t *testing.T) {
	for text, want := range map[string]string{
		"server":                             "server|||||",
		"server:s1":                          "server|s1||||",
		"server:s1#member":                   "server|s1|member|||",
		"server#member@user:bob":             "server||member|user|bob|",
		"role@server:s1#member":              "role|||server|s1|member",
		"channel:c#role_allow_x@role#member": "channel|c|role_allow_x|role||member",
	} {
		f, err := parseFilter(text)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		got := strings.Join([]string{f.ResourceType, f.ResourceId, f.Relation, f.SubjectType, f.SubjectId, f.SubjectRelation}, "|")
		if got != want {
			t.Errorf("%s: %s, want %s", text, got, want)
		}
	}
	for _, bad := range []string{"", ":x", "server@", "server@:bob"} {
		if _, err := parseFilter(bad); err == nil {
			t.Errorf("parseFilter(%q) accepted", bad)
		}
	}
}

func TestReadSettings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s, err := readSettings(write("a.yaml", "# beepctl\n---\nurl: https://beep.example.org # the gateway\ntoken: 'ory_st_x'\n"))
	if err != nil || s.URL != "https://beep.example.org" || s.Token != "ory_st_x" {
		t.Fatalf("yaml: %+v %v", s, err)
	}
	s, err = readSettings(write("b.json", `{"url": "http://127.0.0.1:8080", "token": "t"}`))
	if err != nil || s.URL != "http://127.0.0.1:8080" || s.Token != "t" {
		t.Fatalf("json: %+v %v", s, err)
	}
	for _, bad := range []string{"urls: x\n", "just words\n", "{not json"} {
		if _, err := readSettings(write("bad", bad)); err == nil {
			t.Errorf("readSettings accepted %q", bad)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for code, want := range map[connect.Code]int{
		connect.CodeUnauthenticated:    ExitDenied,
		connect.CodePermissionDenied:   ExitDenied,
		connect.CodeUnavailable:        ExitUnavailable,
		connect.CodeDeadlineExceeded:   ExitUnavailable,
		connect.CodeInvalidArgument:    ExitUsage,
		connect.CodeFailedPrecondition: ExitNo,
		connect.CodeInternal:           ExitError,
		connect.CodeUnimplemented:      ExitError,
	} {
		if got, _ := classify(connect.NewError(code, errors.New("x"))); got != want {
			t.Errorf("%v: exit %d, want %d", code, got, want)
		}
	}
	if got, _ := classify(context.DeadlineExceeded); got != ExitUnavailable {
		t.Errorf("a deadline: %d", got)
	}
	var out, errOut bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	for _, args := range [][]string{{}, {"nope"}, {"schema"}, {"schema", "nope"}, {"check", "--nope"}, {"rel", "read"}, {"reconcile", "--check", "--apply"}} {
		if got := Run(t.Context(), args, env); got != ExitUsage {
			t.Errorf("beepctl %v: exit %d, want %d", args, got, ExitUsage)
		}
	}
	if got := Run(t.Context(), []string{"check", "-h"}, env); got != ExitOK {
		t.Errorf("check -h: exit %d", got)
	}
	if subjectArg("bob") != "user:bob" || subjectArg("role:r#member") != "role:r#member" {
		t.Error("subjectArg")
	}
}

func TestAuditActions(t *testing.T) {
	for _, s := range []string{"member_kicked", "MEMBER_KICKED", "AUDIT_ACTION_MEMBER_KICKED"} {
		if a, err := parseAuditAction(s); err != nil || auditActionName(a) != "member_kicked" {
			t.Errorf("%s: %v %v", s, a, err)
		}
	}
	for _, bad := range []string{"", "unspecified", "kicked"} {
		if _, err := parseAuditAction(bad); err == nil {
			t.Errorf("parseAuditAction(%q) accepted", bad)
		}
	}
}

func TestWatchError(t *testing.T) {
	other := connect.NewError(connect.CodeUnavailable, errors.New("down"))
	if watchError(other) != other {
		t.Error("an unrelated error was rewritten")
	}
	err := watchError(connect.NewError(connect.CodeFailedPrecondition, errors.New("SpiceDB cannot watch: track_commit_timestamp = on")))
	var ex *exitError
	if !errors.As(err, &ex) || ex.code != ExitNo || !strings.Contains(ex.msg, "ALTER SYSTEM SET track_commit_timestamp = on") {
		t.Errorf("watchError: %v", err)
	}
}
