package main

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beepchat/beep/internal/accesstoken/accesstokentest"
)

// freeAddr is a loopback address nothing listens on (for Kratos' ports).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// kratosBinary is the Kratos that `make test` builds (scripts/build-kratos)
// and passes in BEEP_KRATOS_BIN.
func kratosBinary(t *testing.T) string {
	bin := os.Getenv("BEEP_KRATOS_BIN")
	if bin == "" {
		t.Skip("BEEP_KRATOS_BIN is not set: run `make test`, which builds Kratos (scripts/build-kratos)")
	}
	return bin
}

// jsonCall sends body as JSON and decodes the JSON answer.
func jsonCall(t *testing.T, method, url string, header http.Header, body any) (int, map[string]any) {
	t.Helper()
	return jsonCallWith(t, http.DefaultClient, method, url, header, body)
}

// jsonCallWith is jsonCall from client (a browser's, with its cookies).
func jsonCallWith(t *testing.T, client *http.Client, method, url string, header http.Header, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"raw": string(raw)}
	}
	return resp.StatusCode, out
}

// TestKratosSignUpAndIn: Beep runs Kratos as its child; a new user
// registers with a password through Beep's port (the native/API flow), and
// the session token Kratos gives is accepted by the gateway: the user
// creates a server and owns it. A signed-in user's login gives a token that
// works too; a made-up token and a logged-out session are refused.
func TestKratosSignUpAndIn(t *testing.T) {
	bin := kratosBinary(t)
	inst, logs, stop := start(t, isolated(t, "-kratos-bin", bin, "-kratos-dsn", "memory",
		"-kratos-public-addr", freeAddr(t), "-kratos-admin-addr", freeAddr(t), "-session-cache-ttl", "0s")...)
	defer stop()
	base := "http://" + inst.HTTPAddr

	// Registration (API flow): the flow, then the password method.
	code, flow := jsonCall(t, http.MethodGet, base+"/self-service/registration/api", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("registration flow: %d %v\n%s", code, flow, logs)
	}
	action := flow["ui"].(map[string]any)["action"].(string)
	code, registered := jsonCall(t, http.MethodPost, action, nil, map[string]any{
		"method": "password", "password": "correct horse battery staple 42",
		"traits": map[string]any{"email": "ann@example.org", "username": "ann"},
	})
	if code != http.StatusOK {
		t.Fatalf("registration: %d %v", code, registered)
	}
	token := registered["session_token"].(string)
	identityID := registered["identity"].(map[string]any)["id"].(string)

	createServer := func(token string) (int, map[string]any) {
		return jsonCall(t, http.MethodPost, base+"/beep.community.v1.CommunityService/CreateServer",
			http.Header{"Authorization": {"Bearer " + token}}, map[string]any{"name": "Ann's place"})
	}
	code, created := createServer(token)
	if code != http.StatusOK {
		t.Fatalf("CreateServer with the session token: %d %v", code, created)
	}
	if owner := created["server"].(map[string]any)["ownerId"]; owner != identityID {
		t.Fatalf("the server's owner is %v, want the Kratos identity %s", owner, identityID)
	}
	// The same token in Kratos' own header works too.
	code, _ = jsonCall(t, http.MethodPost, base+"/beep.community.v1.CommunityService/ListMyServers",
		http.Header{"X-Session-Token": {token}}, map[string]any{})
	if code != http.StatusOK {
		t.Fatalf("ListMyServers with X-Session-Token: %d", code)
	}

	// Login (API flow) gives another working session.
	code, flow = jsonCall(t, http.MethodGet, base+"/self-service/login/api", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("login flow: %d %v", code, flow)
	}
	code, loggedIn := jsonCall(t, http.MethodPost, flow["ui"].(map[string]any)["action"].(string), nil, map[string]any{
		"method": "password", "identifier": "ann@example.org", "password": "correct horse battery staple 42"})
	if code != http.StatusOK {
		t.Fatalf("login: %d %v", code, loggedIn)
	}
	second := loggedIn["session_token"].(string)
	if code, _ := createServer(second); code != http.StatusOK {
		t.Fatalf("CreateServer after login: %d", code)
	}
	// A wrong password is Kratos' refusal, not a session.
	code, _ = jsonCall(t, http.MethodPost, flow["ui"].(map[string]any)["action"].(string), nil, map[string]any{
		"method": "password", "identifier": "ann@example.org", "password": "wrong"})
	if code == http.StatusOK {
		t.Fatal("a wrong password signed in")
	}

	// Refused: a made-up token; a session after logout.
	if code, answer := createServer("ory_st_madeup"); code != http.StatusUnauthorized {
		t.Fatalf("a made-up token: %d %v", code, answer)
	}
	code, out := jsonCall(t, http.MethodDelete, base+"/self-service/logout/api", nil, map[string]any{"session_token": second})
	if code != http.StatusNoContent {
		t.Fatalf("logout: %d %v", code, out)
	}
	if code, answer := createServer(second); code != http.StatusUnauthorized {
		t.Fatalf("a logged-out session: %d %v", code, answer)
	}
}

// TestAccessTokensFromAnIssuer: with -oidc-issuer and -oidc-audience, the
// gateway accepts that issuer's access tokens (as Keycloak's), and refuses
// expired, forged, unsigned and wrong-audience ones.
func TestAccessTokensFromAnIssuer(t *testing.T) {
	iss := accesstokentest.New(t)
	inst, _, stop := start(t, isolated(t, "-oidc-issuer", iss.URL, "-oidc-audience", "beep")...)
	defer stop()
	now := time.Now()
	claims := func(change func(map[string]any)) map[string]any {
		c := map[string]any{"iss": iss.URL, "aud": []string{"account", "beep"}, "sub": "5c2f", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix()}
		if change != nil {
			change(c)
		}
		return c
	}
	call := func(token string) (int, map[string]any) {
		return jsonCall(t, http.MethodPost, "http://"+inst.HTTPAddr+"/beep.community.v1.CommunityService/CreateServer",
			http.Header{"Authorization": {"Bearer " + token}}, map[string]any{"name": "Keycloak's"})
	}
	code, created := call(accesstokentest.Sign(t, iss.Key, claims(nil)))
	if code != http.StatusOK {
		t.Fatalf("a valid access token: %d %v", code, created)
	}
	if owner := created["server"].(map[string]any)["ownerId"]; owner != "oidc-5c2f" {
		t.Fatalf("owner %v, want oidc-5c2f", owner)
	}
	for name, token := range map[string]string{
		"expired":        accesstokentest.Sign(t, iss.Key, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() })),
		"wrong audience": accesstokentest.Sign(t, iss.Key, claims(func(c map[string]any) { c["aud"] = "account" })),
		"forged":         accesstokentest.Sign(t, accesstokentest.NewKey(t), claims(nil)),
		"alg none":       accesstokentest.Unsigned(claims(nil)),
	} {
		if code, answer := call(token); code != http.StatusUnauthorized {
			t.Errorf("%s: %d %v, want 401", name, code, answer)
		}
	}
}

// codeFor waits for the development courier to log a message of template
// to recipient after the log's first skip bytes, and returns its code.
func codeFor(t *testing.T, logs *logBuffer, skip int, recipient, template string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	pattern := regexp.MustCompile(`(?:^|[^0-9])([0-9]{6})(?:[^0-9]|$)`)
	for {
		all := logs.String()
		for _, line := range strings.Split(all[min(skip, len(all)):], "\n") {
			if strings.Contains(line, "development courier") && strings.Contains(line, "to="+recipient) && strings.Contains(line, "template="+template) {
				if m := pattern.FindStringSubmatch(line[strings.Index(line, "body="):]); m != nil {
					return m[1]
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s message to %s in the log:\n%s", template, recipient, all)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestVerificationAndRecoveryCodes: Kratos' emails go to the development
// courier, which logs them; with the code from the log, a new user verifies
// their address, and recovers their account (API flows through the
// gateway).
func TestVerificationAndRecoveryCodes(t *testing.T) {
	bin := kratosBinary(t)
	inst, logs, stop := start(t, isolated(t, "-kratos-bin", bin, "-kratos-dsn", "memory",
		"-kratos-public-addr", freeAddr(t), "-kratos-admin-addr", freeAddr(t), "-session-cache-ttl", "0s")...)
	defer stop()
	base := "http://" + inst.HTTPAddr
	const email = "vera@example.org"
	code, flow := jsonCall(t, http.MethodGet, base+"/self-service/registration/api", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("registration flow: %d %v", code, flow)
	}
	code, registered := jsonCall(t, http.MethodPost, flow["ui"].(map[string]any)["action"].(string), nil, map[string]any{
		"method": "password", "password": "a passphrase nobody guesses", "traits": map[string]any{"email": email, "username": "vera"}})
	if code != http.StatusOK {
		t.Fatalf("registration: %d %v", code, registered)
	}
	token := registered["session_token"].(string)
	verified := func() bool {
		code, who := jsonCall(t, http.MethodGet, base+"/sessions/whoami", http.Header{"X-Session-Token": {token}}, nil)
		if code != http.StatusOK {
			t.Fatalf("whoami: %d %v", code, who)
		}
		addresses, _ := who["identity"].(map[string]any)["verifiable_addresses"].([]any)
		return len(addresses) == 1 && addresses[0].(map[string]any)["verified"] == true
	}
	if verified() {
		t.Fatal("the address is verified before any code")
	}

	// Verification: registering sent a code (to the log), for the flow the
	// registration names in continue_with.
	var action string
	continueWith, _ := registered["continue_with"].([]any)
	for _, c := range continueWith {
		if c, ok := c.(map[string]any); ok && c["action"] == "show_verification_ui" {
			id, _ := c["flow"].(map[string]any)["id"].(string)
			action = base + "/self-service/verification?flow=" + id
		}
	}
	if action == "" {
		t.Fatalf("registration named no verification flow: %v", registered)
	}
	verification := codeFor(t, logs, 0, email, "verification_code_valid")
	if _, wrong := jsonCall(t, http.MethodPost, action, nil, map[string]any{"method": "code", "code": "000000"}); wrong["state"] == "passed_challenge" {
		t.Fatal("a wrong verification code passed")
	}
	if code, done := jsonCall(t, http.MethodPost, action, nil, map[string]any{"method": "code", "code": verification}); code != http.StatusOK || done["state"] != "passed_challenge" {
		t.Fatalf("verifying with the code: %d %v", code, done)
	}
	if !verified() {
		t.Fatal("the address is not verified after the code")
	}

	// Recovery: a code by email signs the person in again.
	code, flow = jsonCall(t, http.MethodGet, base+"/self-service/recovery/api", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("recovery flow: %d %v", code, flow)
	}
	action = flow["ui"].(map[string]any)["action"].(string)
	skip := len(logs.String())
	if code, sent := jsonCall(t, http.MethodPost, action, nil, map[string]any{"method": "code", "email": email}); code != http.StatusOK || sent["state"] != "sent_email" {
		t.Fatalf("asking for a recovery code: %d %v", code, sent)
	}
	recovery := codeFor(t, logs, skip, email, "recovery_code_valid")
	code, recovered := jsonCall(t, http.MethodPost, action, nil, map[string]any{"method": "code", "code": recovery})
	t.Logf("recovery answered %d %v", code, recovered)
	var sessionToken string
	continueWith, _ = recovered["continue_with"].([]any)
	for _, c := range continueWith {
		if c, ok := c.(map[string]any); ok && c["action"] == "set_ory_session_token" {
			sessionToken, _ = c["ory_session_token"].(string)
		}
	}
	if sessionToken == "" {
		t.Fatalf("recovery gave no session: %d %v", code, recovered)
	}
	if code, _ := jsonCall(t, http.MethodPost, base+"/beep.community.v1.CommunityService/ListMyServers",
		http.Header{"Authorization": {"Bearer " + sessionToken}}, map[string]any{}); code != http.StatusOK {
		t.Fatalf("the recovered session at the gateway: %d", code)
	}
}

// TestSignInThroughThePages: a browser signs in on Beep's own sign-in page,
// where Kratos' browser flow sends it, with nothing but HTML forms.
func TestSignInThroughThePages(t *testing.T) {
	bin := kratosBinary(t)
	addr := freeAddr(t)
	base := "http://" + addr
	_, logs, stop := start(t, append(isolated(t, "-kratos-bin", bin, "-kratos-dsn", "memory",
		"-kratos-public-addr", freeAddr(t), "-kratos-admin-addr", freeAddr(t), "-session-cache-ttl", "0s"), "-http-addr", addr)...)
	defer stop()
	code, flow := jsonCall(t, http.MethodGet, base+"/self-service/registration/api", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("registration flow: %d", code)
	}
	const password = "pages are plain html forms"
	if code, out := jsonCall(t, http.MethodPost, flow["ui"].(map[string]any)["action"].(string), nil, map[string]any{
		"method": "password", "password": password, "traits": map[string]any{"email": "page@example.org", "username": "page"}}); code != http.StatusOK {
		t.Fatalf("registration: %d %v", code, out)
	}

	c := browser(t)
	resp, _ := browse(t, c, base+"/self-service/login/browser", http.StatusSeeOther)
	page := resp.Header.Get("Location")
	if !strings.HasPrefix(page, base+"/auth/login?flow=") {
		t.Fatalf("Kratos sent the browser to %s, not to Beep's sign-in page\n%s", page, logs)
	}
	_, body := browse(t, c, page, http.StatusOK)
	form := regexp.MustCompile(`<form action="([^"]+)" method="POST">`).FindStringSubmatch(body)
	if form == nil || !strings.Contains(body, `name="identifier"`) || !strings.Contains(body, `name="password"`) {
		t.Fatalf("the sign-in page has no password form:\n%s", body)
	}
	values := url.Values{"identifier": {"page@example.org"}, "password": {password}, "method": {"password"}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(body, -1) {
		values.Set(m[1], html.UnescapeString(m[2]))
	}
	posted, _ := postForm(t, c, html.UnescapeString(form[1]), values, http.StatusSeeOther)
	t.Logf("signed in, sent to %s", posted.Header.Get("Location"))
	if id := whoami(t, c, base); id == "" {
		t.Fatal("not signed in after the page's form")
	}
	// A flow that does not exist starts a new one.
	resp, _ = browse(t, browser(t), base+"/auth/login?flow=00000000-0000-0000-0000-000000000000", http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/self-service/login/browser" {
		t.Fatalf("an unknown flow sent the browser to %q", loc)
	}
}
