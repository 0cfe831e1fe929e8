// The file the playground opens with: small enough to read at a glance.
export const sample = {
  content: `schema: |-
  definition user {}

  definition doc {
    relation owner: user
    relation viewer: user
    permission edit = owner
    permission view = owner + viewer
  }
relationships: |-
  doc:readme#owner@user:ann
  doc:readme#viewer@user:bob
assertions:
  assertTrue:
    - doc:readme#view@user:ann
    - doc:readme#view@user:bob
  assertFalse:
    - doc:readme#edit@user:bob
validation:
  doc:readme#view:
    - "[user:ann] is <doc:readme#owner>"
    - "[user:bob] is <doc:readme#viewer>"
`,
  watches: [
    { subject: 'user:bob', permission: 'view', resource: 'doc:readme' },
    { subject: 'user:bob', permission: 'edit', resource: 'doc:readme' },
  ],
};
