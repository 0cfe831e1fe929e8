// Maps the claims of an OIDC provider (Google, the Polytech bridge) to the
// traits of a Beep identity. The email is taken only when the provider
// vouches for it.
local claims = std.extVar('claims');
{
  identity: {
    traits: {
      [if std.objectHas(claims, 'email') && std.objectHas(claims, 'email_verified') && claims.email_verified then 'email' else null]: claims.email,
      [if std.objectHas(claims, 'preferred_username') then 'username' else null]: std.asciiLower(claims.preferred_username),
    },
  },
}
