package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Development tokens let a developer act as any user before identity
// (Kratos, OIDC) lands. They are accepted only when the gateway is given a
// key (beep serve -dev-token-key), which the embedded default never sets.
//
// Format: "beepdev." + base64url(JSON claims) + "." + base64url(HMAC-SHA256).

const devTokenPrefix = "beepdev."

type devClaims struct {
	Subject string `json:"sub"`
	Expires int64  `json:"exp"`
}

// IssueDevToken signs a development token for user, valid for ttl.
func IssueDevToken(key []byte, user string, ttl time.Duration) (string, error) {
	if len(key) < 16 {
		return "", errors.New("the development token key must be at least 16 bytes")
	}
	if user == "" {
		return "", errors.New("a development token needs a user")
	}
	claims, err := json.Marshal(devClaims{Subject: user, Expires: time.Now().Add(ttl).Unix()})
	if err != nil {
		return "", err
	}
	body := base64.RawURLEncoding.EncodeToString(claims)
	return devTokenPrefix + body + "." + sign(key, body), nil
}

func sign(key []byte, body string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// verifyDevToken returns the user of a valid, unexpired token.
func verifyDevToken(key []byte, token string, now time.Time) (string, error) {
	rest, ok := strings.CutPrefix(token, devTokenPrefix)
	if !ok {
		return "", errors.New("not a development token")
	}
	body, sig, ok := strings.Cut(rest, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(sign(key, body))) {
		return "", errors.New("bad signature")
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return "", err
	}
	var c devClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", err
	}
	if c.Subject == "" {
		return "", errors.New("no subject")
	}
	if now.Unix() >= c.Expires {
		return "", errors.New("expired")
	}
	return c.Subject, nil
}
