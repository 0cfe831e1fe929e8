package authz_test

import (
	"strings"
	"testing"

	"github.com/beepchat/beep/authz"
)

func TestValidObjectID(t *testing.T) {
	for _, tc := range []struct {
		id     string
		object bool
		user   bool
	}{
		{"0190a3c4-7b1e-7c2d-9f00-0123456789ab", true, true},
		{"kratos|Ab/9_=+-", true, true},
		{strings.Repeat("a", 200), true, true},
		{strings.Repeat("a", 201), true, false},
		{strings.Repeat("a", 1024), true, false},
		{strings.Repeat("a", 1025), false, false},
		{"", false, false},
		{"*", false, false},
		{"a b", false, false},
		{"a:b", false, false},
		{"a#b", false, false},
		{"a@b", false, false},
		{"a.b", false, false},
		{"é", false, false},
		{"a\x00", false, false},
	} {
		if got := authz.ValidObjectID(tc.id); got != tc.object {
			t.Errorf("ValidObjectID(%.20q…) = %v, want %v", tc.id, got, tc.object)
		}
		if got := authz.ValidUserID(tc.id); got != tc.user {
			t.Errorf("ValidUserID(%.20q…) = %v, want %v", tc.id, got, tc.user)
		}
	}
}
