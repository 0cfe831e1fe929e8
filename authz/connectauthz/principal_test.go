package connectauthz

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/beepchat/beep/authz"
)

func TestSigner(t *testing.T) {
	key := []byte(strings.Repeat("k", MinKeyBytes))
	if _, err := NewSigner(key[:MinKeyBytes-1]); err == nil {
		t.Fatal("a short key was accepted")
	}
	at := time.Unix(1_800_000_000, 0)
	s, _ := NewSigner(key)
	s.now = func() time.Time { return at }
	other, _ := NewSigner([]byte(strings.Repeat("o", MinKeyBytes)))
	other.now = s.now
	good := s.Sign(authz.Principal{UserID: "ann.b@example.org"})
	tampered := strings.Replace(good, base64Of("ann.b@example.org"), base64Of("eve"), 1)

	tests := []struct {
		name   string
		value  string
		verify *Signer
		after  time.Duration
		want   string // user id, or "" for a refusal
	}{
		{"good", good, s, 0, "ann.b@example.org"},
		{"good until it expires", good, s, principalTTL, "ann.b@example.org"},
		{"expired", good, s, principalTTL + time.Second, ""},
		{"another user's name, same signature", tampered, s, 0, ""},
		{"signed with another key", good, other, 0, ""},
		{"no signature", strings.Join(strings.Split(good, ".")[:2], "."), s, 0, ""},
		{"garbage", "x", s, 0, ""},
		{"empty user", s.Sign(authz.Principal{}), s, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.verify.now = func() time.Time { return at.Add(tt.after) }
			defer func() { tt.verify.now = func() time.Time { return at } }()
			p, err := tt.verify.Verify(tt.value)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted as %q", p.UserID)
				}
				return
			}
			if err != nil || p.UserID != tt.want {
				t.Fatalf("got %q, %v; want %q", p.UserID, err, tt.want)
			}
		})
	}
}

func base64Of(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
