package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/internal/beepctl"
	"github.com/beepchat/beep/internal/pgtest"
)

// TestBeepctlAudit runs `beepctl audit` against a Beep on PostgreSQL
// (SpiceDB's postgres engine) started with -audit-log: a server's log,
// filtered, as a table and as JSON; refused without view_audit_log; the
// audit records of the refusal and of the kick in the file; and what
// `events tail` says when PostgreSQL cannot give SpiceDB a watch.
func TestBeepctlAudit(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	b, stop := adminBeep(t, "-audit-log", auditFile)
	defer stop()
	a := api{t: t, base: "http://" + b.HTTPAddr}
	ann, bob := mustToken(t, "ann", 600), mustToken(t, "bob", 600)
	created := a.ok(ann, "", "CreateServer", map[string]any{"name": "Audited", "public": true})
	server := created["server"].(map[string]any)["id"].(string)
	zed := created["zedToken"].(string)
	role := a.ok(ann, zed, "CreateRole", map[string]any{"serverId": server, "name": "Helpers", "permissions": []string{"view_channel"}})
	zed = a.ok(bob, role["zedToken"].(string), "JoinServer", map[string]any{"serverId": server})["zedToken"].(string)
	zed = a.ok(ann, zed, "KickMember", map[string]any{"serverId": server, "userId": "bob", "reason": "testing the log"})["zedToken"].(string)

	base := ctl{t: t, env: map[string]string{"BEEP_URL": "http://" + b.HTTPAddr, "BEEP_ZED_TOKEN": zed, "HOME": t.TempDir()}}
	owner := base.as("ann")
	out := owner.want(beepctl.ExitOK, args("audit", server), "TIME", "ACTOR", "member_kicked", "bob", "testing the log", "role_created", "name: \"\" → Helpers")
	if strings.Index(out, "member_kicked") > strings.Index(out, "role_created") {
		t.Fatalf("audit: not newest first:\n%s", out)
	}
	out = owner.want(beepctl.ExitOK, args("audit", server, "--action", "role_created", "-o", "json"), `"actorId":"ann"`)
	var entry struct {
		Action     string `json:"action"`
		TargetKind string `json:"targetKind"`
		TargetID   string `json:"targetId"`
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &entry) != nil ||
		entry.Action != "AUDIT_ACTION_ROLE_CREATED" || entry.TargetKind != "role" || entry.TargetID != role["role"].(map[string]any)["id"] {
		t.Fatalf("audit --action role_created -o json:\n%s", out)
	}
	if out := owner.want(beepctl.ExitOK, args("audit", server, "--actor", "bob")); strings.Count(out, "\n") != 1 {
		t.Fatalf("audit --actor bob: bob did nothing audited:\n%s", out)
	}
	owner.want(beepctl.ExitOK, args("audit", server, "--target", "bob", "--limit", "1"), "member_kicked")
	owner.want(beepctl.ExitUsage, args("audit", server, "--action", "nope"), "want one of", "member_banned")
	owner.want(beepctl.ExitUsage, args("audit"), "want 1 argument")
	base.as("bob").want(beepctl.ExitDenied, args("audit", server), "not allowed", "view_audit_log")
	base.as("root").want(beepctl.ExitDenied, args("audit", server), "not allowed") // platform admins are not the server's

	// The audit sink: the refusal and the kick, every field there.
	data, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	var refused, kicked map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit log line %q: %v", line, err)
		}
		switch {
		case r["action"] == "/beep.community.v1.CommunityService/ListAuditLog" && r["principal"] == "bob":
			refused = r
		case r["action"] == "/beep.community.v1.CommunityService/KickMember":
			kicked = r
		}
	}
	for name, r := range map[string]map[string]any{"refusal": refused, "kick": kicked} {
		if r == nil {
			t.Fatalf("no audit record of the %s in:\n%s", name, data)
		}
		for _, k := range []string{"time", "at", "principal", "action", "resource", "permission", "result", "zed_token", "request_id", "trace_id"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%s: no %s: %v", name, k, r)
			}
		}
		if r["request_id"] == "" || r["zed_token"] == "" || r["resource"] != "server:"+server || r["audit"] != true {
			t.Errorf("%s: %v", name, r)
		}
	}
	if refused["result"] != "denied" || refused["permission"] != "server#view_audit_log" || kicked["result"] != "allowed" ||
		kicked["target"] != "bob" || kicked["reason"] != "testing the log" || kicked["principal"] != "ann" {
		t.Errorf("records: refusal %v, kick %v", refused, kicked)
	}

	// Servers and users, for the platform: staff (sam) read, admins (root) delete.
	sam, root := base.as("sam"), base.as("root")
	sam.want(beepctl.ExitOK, args("server", "show", server), "name", "Audited", "owner", "ann", "members", "audit log entries")
	out = sam.want(beepctl.ExitOK, args("server", "show", server, "-o", "json"))
	var shown struct {
		Members int `json:"members"`
		Roles   int `json:"roles"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.Members != 1 || shown.Roles != 2 {
		t.Fatalf("server show -o json: %v\n%s", err, out)
	}
	sam.want(beepctl.ExitOK, args("user", "servers", "ann"), "SERVER", server, "Audited", "yes")
	if out := sam.want(beepctl.ExitOK, args("user", "servers", "bob")); strings.Contains(out, server) {
		t.Fatalf("bob, kicked, still in: %s", out)
	}
	owner.want(beepctl.ExitDenied, args("server", "show", server), "not allowed")
	owner.want(beepctl.ExitDenied, args("user", "servers", "ann"), "not allowed")
	sam.want(beepctl.ExitDenied, args("server", "delete", server), "not allowed")
	owner.want(beepctl.ExitDenied, args("server", "delete", server), "not allowed")
	sam.want(beepctl.ExitUsage, args("server", "frob"), "unknown")
	doomed := a.ok(bob, zed, "CreateServer", map[string]any{"name": "Doomed"})
	doomedID := doomed["server"].(map[string]any)["id"].(string)
	out = root.want(beepctl.ExitOK, args("--zed-token", doomed["zedToken"].(string), "server", "delete", doomedID, "--reason", "spam ring"), "deleted server "+doomedID+" at ")
	gone := strings.TrimSpace(out[strings.LastIndex(out, " ")+1:])
	sam.want(beepctl.ExitError, args("--zed-token", gone, "server", "show", doomedID), "not_found")
	if status, _ := a.call(bob, gone, "GetServer", map[string]any{"serverId": doomedID}); status == 200 {
		t.Fatal("the deleted server still answers")
	}

	// events tail on PostgreSQL: SpiceDB watches only with
	// track_commit_timestamp on, and says what to do otherwise.
	conn, err := pgx.Connect(t.Context(), pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var track string
	if err := conn.QueryRow(t.Context(), `SHOW track_commit_timestamp`).Scan(&track); err != nil {
		t.Fatal(err)
	}
	data, err = os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"action":"/beep.community.v1.CommunityService/RemoveServer"`) || !strings.Contains(string(data), `"reason":"spam ring"`) {
		t.Errorf("no audit record of the removal:\n%s", data)
	}
	if track == "on" {
		t.Log("track_commit_timestamp is on here: events tail watches (TestBeepctl covers it)")
		return
	}
	base.as("sam").want(beepctl.ExitNo, args("events", "tail", "--max", "1", "--timeout", "20s"),
		"track_commit_timestamp = on", "ALTER SYSTEM SET track_commit_timestamp = on", "restart PostgreSQL", "then restart Beep", "-spicedb-engine memory")
}
