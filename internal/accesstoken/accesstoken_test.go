package accesstoken_test

import (
	"testing"
	"time"

	"github.com/beepchat/beep/internal/accesstoken"
	"github.com/beepchat/beep/internal/accesstoken/accesstokentest"
)

func TestVerify(t *testing.T) {
	iss := accesstokentest.New(t)
	v, err := accesstoken.New(t.Context(), accesstoken.Config{Issuer: iss.URL, Audience: "beep", SubjectPrefix: "polytech-", ClockSkew: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(change func(map[string]any)) map[string]any {
		c := map[string]any{"iss": iss.URL, "aud": "beep", "sub": "f_1234", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix()}
		if change != nil {
			change(c)
		}
		return c
	}
	other := accesstokentest.NewKey(t)
	sign := func(c map[string]any) string { return accesstokentest.Sign(t, iss.Key, c) }
	tests := []struct {
		name  string
		token string
		want  string // "" = refused
	}{
		{"valid", sign(claims(nil)), "polytech-f_1234"},
		{"expired within the skew", sign(claims(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() })), "polytech-f_1234"},
		{"audience among several", sign(claims(func(c map[string]any) { c["aud"] = []string{"account", "beep"} })), "polytech-f_1234"},
		{"expired", sign(claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), ""},
		{"no expiry", sign(claims(func(c map[string]any) { delete(c, "exp") })), ""},
		{"issued in the future", sign(claims(func(c map[string]any) { c["iat"] = now.Add(time.Hour).Unix() })), ""},
		{"wrong audience", sign(claims(func(c map[string]any) { c["aud"] = "account" })), ""},
		{"wrong issuer", sign(claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), ""},
		{"signed by another key", accesstokentest.Sign(t, other, claims(nil)), ""},
		{"alg none", accesstokentest.Unsigned(claims(nil)), ""},
		{"no subject", sign(claims(func(c map[string]any) { delete(c, "sub") })), ""},
		{"a subject no user id can hold", sign(claims(func(c map[string]any) { c["sub"] = "ann@example.org" })), ""},
		{"garbage", "a.b.c", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !accesstoken.LooksLikeJWT(tt.token) {
				t.Fatalf("%q does not look like a JWT", tt.token)
			}
			got, err := v.Verify(t.Context(), tt.token)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted as %q", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
