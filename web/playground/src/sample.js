// The file the playground opens with: small enough to read at a glance.
export const sample = {
  content: `schema: |-
  definition user {}

  caveat only_on_tuesday(day string) {
    day == "tuesday"
  }

  definition doc {
    relation owner: user
    relation viewer: user | user with only_on_tuesday
    permission edit = owner
    permission view = owner + viewer
  }
relationships: |-
  doc:readme#owner@user:ann
  doc:readme#viewer@user:bob
  doc:readme#viewer@user:carl[only_on_tuesday]
assertions:
  assertTrue:
    - doc:readme#view@user:ann
    - doc:readme#view@user:bob
  assertCaveated:
    - doc:readme#view@user:carl
  assertFalse:
    - doc:readme#edit@user:bob
    - 'doc:readme#view@user:carl with {"day": "monday"}'
validation:
  doc:readme#view:
    - "[user:ann] is <doc:readme#owner>"
    - "[user:bob] is <doc:readme#viewer>"
    - "[user:carl[...]] is <doc:readme#viewer>"
`,
  watches: [
    { subject: 'user:bob', permission: 'view', resource: 'doc:readme' },
    { subject: 'user:bob', permission: 'edit', resource: 'doc:readme' },
    { subject: 'user:carl', permission: 'view', resource: 'doc:readme', context: '' },
  ],
};
