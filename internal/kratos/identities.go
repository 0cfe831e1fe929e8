package kratos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	ory "github.com/ory/client-go"
)

// Identities administers Kratos identities through its admin API, with
// Ory's generated client: what the user service needs to export and erase
// an account. The admin API must not be reachable from outside the
// deployment.
type Identities struct {
	api *ory.APIClient
}

// NewIdentities returns the admin client of the Kratos whose admin API is at
// adminURL; client makes the calls (http.DefaultClient when nil).
func NewIdentities(adminURL string, client *http.Client) *Identities {
	cfg := ory.NewConfiguration()
	cfg.Servers = ory.ServerConfigurations{{URL: strings.TrimRight(adminURL, "/")}}
	cfg.HTTPClient = client
	cfg.UserAgent = "beep"
	return &Identities{api: ory.NewAPIClient(cfg)}
}

// Identity returns what Kratos keeps of an identity, as JSON values: its
// traits, addresses, sign-in methods with their identifiers, state and
// dates, without any credential's secrets. found is false when Kratos has
// no such identity.
func (i *Identities) Identity(ctx context.Context, id string) (record map[string]any, found bool, err error) {
	identity, resp, err := i.api.IdentityAPI.GetIdentity(ctx, id).Execute()
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("kratos: reading identity: %w", describe(err))
	}
	raw, err := json.Marshal(identity)
	if err != nil {
		return nil, false, err
	}
	if err := json.Unmarshal(raw, &record); err != nil {
		return nil, false, err
	}
	// Only the kinds and identifiers of credentials: never their secrets
	// (password hashes, OIDC tokens).
	if creds, ok := record["credentials"].(map[string]any); ok {
		for _, c := range creds {
			if c, ok := c.(map[string]any); ok {
				delete(c, "config")
			}
		}
	}
	return record, true, nil
}

// DeleteIdentity deletes an identity and, with it, its sessions and
// credentials. Deleting one that does not exist (any more) succeeds.
func (i *Identities) DeleteIdentity(ctx context.Context, id string) error {
	resp, err := i.api.IdentityAPI.DeleteIdentity(ctx, id).Execute()
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kratos: deleting identity: %w", describe(err))
	}
	return nil
}

// describe adds the body Kratos answered to a generated client's error.
func describe(err error) error {
	var apiErr *ory.GenericOpenAPIError
	if errors.As(err, &apiErr) && len(apiErr.Body()) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(apiErr.Body())))
	}
	return err
}
