package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beepchat/beep/internal/beepctl"
)

// ctl runs beepctl in this process, as a person would run it.
type ctl struct {
	t   *testing.T
	env map[string]string
}

// as is beepctl with BEEP_URL and, for a user, BEEP_TOKEN set.
func (c ctl) as(user string, env ...string) ctl {
	out := ctl{t: c.t, env: map[string]string{}}
	for k, v := range c.env {
		out.env[k] = v
	}
	if user != "" {
		out.env["BEEP_TOKEN"] = mustToken(c.t, user, 3600)
	}
	for i := 0; i+1 < len(env); i += 2 {
		out.env[env[i]] = env[i+1]
	}
	return out
}

// run returns beepctl's exit code, standard output and standard error.
func (c ctl) run(args ...string) (int, string, string) {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	code := beepctl.Run(c.t.Context(), args, beepctl.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return c.env[k] }})
	return code, stdout.String(), stderr.String()
}

// want runs beepctl and checks its exit code and that its output holds
// every string of contains.
func (c ctl) want(code int, args []string, contains ...string) string {
	c.t.Helper()
	got, stdout, stderr := c.run(args...)
	if got != code {
		c.t.Fatalf("beepctl %s: exit %d, want %d\n%s%s", strings.Join(args, " "), got, code, stdout, stderr)
	}
	for _, s := range contains {
		if !strings.Contains(stdout+stderr, s) {
			c.t.Fatalf("beepctl %s: output lacks %q:\n%s%s", strings.Join(args, " "), s, stdout, stderr)
		}
	}
	return stdout
}

func args(s ...string) []string { return s }

// TestBeepctl runs beepctl's commands against a Beep in this process
// (SpiceDB's memory engine, which watches), through the gateway: their
// output, JSON and exit codes.
func TestBeepctl(t *testing.T) {
	b, stop := adminBeep(t, "-spicedb-engine", "memory")
	defer stop()
	home := t.TempDir()
	base := ctl{t: t, env: map[string]string{"BEEP_URL": "http://" + b.HTTPAddr, "BEEP_ZED_TOKEN": string(b.zed), "HOME": home}}
	root, sam := base.as("root"), base.as("sam")
	dir := t.TempDir()

	// The admin writes the worked example of docs/permissions.md.
	relFile := filepath.Join(dir, "worked.txt")
	if err := os.WriteFile(relFile, []byte("// the worked example\n"+strings.Join(workedExample(t), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sam.want(beepctl.ExitDenied, args("rel", "write", "-f", relFile), "not allowed")
	out := root.want(beepctl.ExitOK, args("rel", "write", "-f", relFile), "wrote 24 at ")
	zed := strings.TrimSpace(out[strings.LastIndex(out, " ")+1:])

	// Checks, explained: a grant through a role, a denial by an overwrite.
	sam.want(beepctl.ExitOK, args("check", "bob", "view_channel", "channel:staff", "--explain", "--at", zed),
		"allowed: user:bob view_channel channel:staff", "granted by role_allow_view_channel", "channel:staff#role_allow_view_channel",
		"⇒ role:moderator#member@user:bob")
	sam.want(beepctl.ExitNo, args("check", "user:dina", "view_channel", "channel:staff", "--explain", "--at", zed),
		"denied: user:dina view_channel channel:staff", "removed by everyone_deny_view_channel", "⇒ channel:staff#everyone_deny_view_channel@user:*")
	sam.want(beepctl.ExitNo, args("check", "bob", "send_messages", "channel:staff", "--explain", "--at", zed),
		"removed by member_deny_send_messages", "⇒ channel:staff#member_deny_send_messages@user:bob")
	out = sam.want(beepctl.ExitNo, args("-o", "json", "check", "bob", "send_messages", "channel:staff", "--at", zed))
	var answer struct {
		Result    string `json:"result"`
		CheckedAt string `json:"checkedAt"`
	}
	if err := json.Unmarshal([]byte(out), &answer); err != nil || answer.Result != "CHECK_RESULT_DENIED" || answer.CheckedAt == "" {
		t.Fatalf("check -o json: %v %s", err, out)
	}

	// Reads and lookups.
	out = sam.want(beepctl.ExitOK, args("rel", "read", "server:gophers#member", "--at", zed), "server:gophers#member@user:dina")
	if n := strings.Count(out, "\n"); n != 4 {
		t.Fatalf("rel read: %d lines\n%s", n, out)
	}
	sam.want(beepctl.ExitOK, args("rel", "read", "server@user:carl", "--at", zed), "server:gophers#timed_out@user:carl[expiration:2099-01-01T00:00:00Z]")
	sam.want(beepctl.ExitOK, args("lookup", "resources", "bob", "view_channel", "channel", "--at", zed), "channel:staff", "channel:general")
	out = sam.want(beepctl.ExitOK, args("lookup", "subjects", "user", "view_channel", "channel:staff", "--at", zed), "user:ann", "user:bob")
	if strings.Contains(out, "dina") {
		t.Fatalf("dina sees #staff: %s", out)
	}

	// Refusals and usage errors, with their exit codes.
	base.as("zoe").want(beepctl.ExitDenied, args("schema", "show"), "not allowed")
	base.want(beepctl.ExitDenied, args("schema", "show"), "not signed in")
	sam.want(beepctl.ExitUnavailable, args("--url", "http://127.0.0.1:1", "services", "status"), "unavailable")
	sam.want(beepctl.ExitUsage, args("check", "bob", "view_channel"), "want 3 argument")
	sam.want(beepctl.ExitUsage, args("frobnicate"), "unknown command")
	sam.want(beepctl.ExitUsage, args("-o", "yaml", "schema", "show"), "table or json")
	root.want(beepctl.ExitUsage, args("rel", "write", "channel:staff#no_such_relation@user:bob"), "channel has no relation no_such_relation")

	// The schema: show, compare, refuse a breaking change, validate.
	schema := sam.want(beepctl.ExitOK, args("schema", "show"), "definition platform")
	schemaFile := filepath.Join(dir, "beep.zed")
	_ = os.WriteFile(schemaFile, []byte(schema), 0o600)
	sam.want(beepctl.ExitOK, args("schema", "diff", schemaFile), "no difference")
	breaking := strings.Replace(strings.Replace(schema, "relation staff: user\n", "", 1), "admin + staff", "admin", 1)
	_ = os.WriteFile(schemaFile, []byte(breaking), 0o600)
	sam.want(beepctl.ExitNo, args("schema", "diff", schemaFile), "relation removed", "platform#staff", "BREAKING", "would refuse")
	root.want(beepctl.ExitNo, args("schema", "apply", schemaFile), "refused", "platform#staff", "relationships exist under platform#staff")
	sam.want(beepctl.ExitOK, args("schema", "show"), "relation staff: user")
	invalid := filepath.Join(dir, "invalid.zed")
	_ = os.WriteFile(invalid, []byte("definition user {}\n\ndefinition doc {\n    relation viewer: usr\n}\n"), 0o600)
	sam.want(beepctl.ExitNo, args("schema", "validate", invalid), invalid+":4:")
	sam.want(beepctl.ExitOK, args("schema", "validate", "--offline", "../../schema/beep.zed"), "valid")

	// Assertion files: offline (no server), and on the server against the
	// running schema.
	offline := base.as("", "BEEP_URL", "http://127.0.0.1:1")
	offline.want(beepctl.ExitOK, args("policies", "test", "../../policies-test"), "ok    ../../policies-test/discord/05-worked-example.yaml", " 0 failed")
	offline.want(beepctl.ExitNo, args("policies", "test", "../../authz/policytest/testdata/broken.yaml", "../../policies-test/features/14-profiles.yaml"),
		"FAIL  ../../authz/policytest/testdata/broken.yaml", "broken.yaml:13:7: ASSERTION_FAILED", "doc:readme#view@user:bob", "2 files", "1 failed")
	sam.want(beepctl.ExitOK, args("policies", "test", "--remote", "../../policies-test/discord/05-worked-example.yaml"), "ok    ", "0 failed")

	// The deployment.
	sam.want(beepctl.ExitOK, args("services", "status"), "SERVICE", "community", "spicedb", "serving", "v1.")

	// Drift: lose a relationship behind the community service's back.
	a := api{t: t, base: "http://" + b.HTTPAddr}
	created := a.ok(mustToken(t, "ann", 600), "", "CreateServer", map[string]any{"name": "Drifty"})
	server := created["server"].(map[string]any)["id"].(string)
	sam.want(beepctl.ExitOK, args("reconcile", "--check"), "no drift")
	root.want(beepctl.ExitOK, args("rel", "delete", "server:"+server+"#owner@user:ann"), "deleted at ")
	sam.want(beepctl.ExitNo, args("reconcile", "--check"), "+ server:"+server+"#owner@user:ann")
	sam.want(beepctl.ExitDenied, args("reconcile", "--apply"), "not allowed")
	root.want(beepctl.ExitOK, args("reconcile", "--apply"), "reconciled 1 servers")
	sam.want(beepctl.ExitOK, args("reconcile", "--check"), "no drift")
	sam.want(beepctl.ExitUsage, args("reconcile"), "--check or --apply")

	// events tail sees a change made after the revision it starts from.
	tail := make(chan string, 1)
	go func() {
		code, stdout, stderr := sam.run("events", "tail", "--type", "platform", "--since", zed, "--max", "1", "--timeout", "30s")
		tail <- strings.Join([]string{string(rune('0' + code)), stdout, stderr}, "|")
	}()
	root.want(beepctl.ExitOK, args("rel", "write", "platform:beep#staff@user:eve"), "wrote 1")
	select {
	case got := <-tail:
		if !strings.HasPrefix(got, "0|") || !regexp.MustCompile(`touch +platform:beep#staff@user:eve`).MatchString(got) {
			t.Fatalf("events tail: %s", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("events tail saw nothing in 30s")
	}

	// The config file, YAML or JSON, instead of the environment.
	cfgDir := filepath.Join(home, ".config", "beepctl")
	_ = os.MkdirAll(cfgDir, 0o700)
	yaml := "# beepctl\nurl: http://" + b.HTTPAddr + "\ntoken: \"" + mustToken(t, "sam", 600) + "\"\n"
	_ = os.WriteFile(filepath.Join(cfgDir, "config.yaml"), []byte(yaml), 0o600)
	fromFile := ctl{t: t, env: map[string]string{"HOME": home, "BEEP_ZED_TOKEN": string(b.zed)}}
	fromFile.want(beepctl.ExitOK, args("schema", "show"), "definition platform")
	jsonCfg := filepath.Join(dir, "beepctl.json")
	_ = os.WriteFile(jsonCfg, []byte(`{"url": "http://`+b.HTTPAddr+`", "token": "`+mustToken(t, "zoe", 600)+`"}`), 0o600)
	fromFile.want(beepctl.ExitDenied, args("--config", jsonCfg, "schema", "show"), "not allowed")
	fromFile.want(beepctl.ExitUsage, args("--config", filepath.Join(dir, "absent.yaml"), "schema", "show"), "config file")

	// Completion, and help.
	base.want(beepctl.ExitOK, args("completion", "bash"), "complete -F _beepctl beepctl")
	base.want(beepctl.ExitOK, args("completion", "zsh"), "compdef _beepctl beepctl")
	base.want(beepctl.ExitOK, args("completion", "fish"), "complete -c beepctl")
	base.want(beepctl.ExitOK, args("help"), "Exit codes")
}
