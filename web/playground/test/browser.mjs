// The playground in a real headless Chromium (Debian's, driven by
// playwright-core): load the page, break the schema and see the error
// inline, fix it, run a failing assertion and see its location, read a
// check's explanation, open a file of policies-test/, draw the schema,
// and, as a platform admin, see a breaking change refused by what-if and
// Apply. Screenshots go to $ARTIFACTS (artifacts/playground/).
//
//   BEEP_URL=http://127.0.0.1:8080 [ADMIN_TOKEN=...] node test/browser.mjs
//
// cmd/beep/playground_test.go runs it against an in-process Beep. It exits
// non-zero at the first step that does not hold.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const base = process.env.BEEP_URL || 'http://127.0.0.1:8080';
const artifacts = resolve(process.env.ARTIFACTS || '../../artifacts/playground');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
const page = await browser.newPage({ viewport: { width: 1500, height: 1300 } });
const logs = [];
page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
page.on('dialog', (d) => d.accept());

let stepName = '';
async function step(name, fn) {
  stepName = name;
  const t0 = Date.now();
  await fn();
  console.log(`ok   ${name} (${Date.now() - t0} ms)`);
}
const shot = (name) => page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
const status = page.locator('#status');
const schemaEditor = page.locator('#schema .cm-content');
const timeout = 20000;

try {
  await step('the page loads and the sample passes', async () => {
    await page.goto(base + '/playground/');
    await page.waitForFunction(() => window.playgroundReady === true, null, { timeout });
    await status.filter({ hasText: 'passed: 5 assertions, 1 expected relations' }).waitFor({ timeout });
    await page.locator('#access').filter({ hasText: 'local' }).waitFor({ timeout });
    await page.locator('#watches tbody tr').nth(0).locator('.watch-result.allowed').waitFor({ timeout });
    await page.locator('#watches tbody tr').nth(1).locator('.watch-result.denied').waitFor({ timeout });
    // Carl views only on tuesdays: caveated without the context, allowed with it.
    const carl = page.locator('#watches tbody tr').nth(2);
    await carl.locator('.watch-result.caveated').filter({ hasText: 'needs day' }).waitFor({ timeout });
    await carl.locator('.watch-context').fill('{"day": "tuesday"}');
    await carl.locator('.watch-result.allowed').waitFor({ timeout });
    await carl.locator('.watch-context').fill('{"day": "monday"}');
    await carl.locator('.watch-result.denied').waitFor({ timeout });
    await carl.locator('.watch-context').fill('{"day": ');
    await carl.locator('.watch-result.invalid').waitFor({ timeout });
    await carl.locator('.watch-context').fill('');
    await carl.locator('.watch-result.caveated').waitFor({ timeout });
    await shot('01-loaded');
  });

  await step('a schema error is shown inline, with its line and column', async () => {
    await schemaEditor.click();
    await page.keyboard.press('Control+End');
    await page.keyboard.insertText('\noops');
    await status.filter({ hasText: 'problem' }).waitFor({ timeout });
    await page.locator('#schema .cm-lintRange-error').first().waitFor({ timeout });
    const first = await page.locator('#problems li.error').first().textContent();
    if (!/^schema 13:1 /.test(first)) throw new Error(`the error is not located at line 13, column 1 of the schema: ${first}`);
    await shot('02-schema-error');
  });

  await step('fixing it passes again', async () => {
    for (let i = 0; i < 5; i++) await page.keyboard.press('Backspace');
    await status.filter({ hasText: 'passed' }).waitFor({ timeout });
    if (await page.locator('#schema .cm-lintRange-error').count() !== 0) throw new Error('the error mark stayed');
  });

  await step('a failing assertion is shown with its location', async () => {
    await page.locator('#assertions .cm-content').click();
    await page.keyboard.press('Control+End');
    await page.keyboard.insertText('\n  - doc:readme#edit@user:ann');
    await status.filter({ hasText: '1 problem' }).waitFor({ timeout });
    const failure = page.locator('#problems li.error').filter({ hasText: 'ASSERTION_FAILED' });
    await failure.waitFor({ timeout });
    const text = await failure.textContent();
    if (!text.startsWith('assertions 9:')) throw new Error(`the failure is not located at line 9 of the assertions: ${text}`);
    if (!text.includes('doc:readme#edit@user:ann')) throw new Error(`the failure does not name the assertion: ${text}`);
    await page.locator('#assertions .cm-lintRange-error').first().waitFor({ timeout });
    await shot('03-assertion-failed');
    await page.keyboard.press('Control+z');
    await status.filter({ hasText: 'passed' }).waitFor({ timeout });
  });

  await step('a relationship the schema cannot hold is shown on its line', async () => {
    await page.locator('#relationships .cm-content').click();
    await page.keyboard.press('Control+End');
    await page.keyboard.insertText('\ndoc:readme#nothere@user:zed');
    const failure = page.locator('#problems li.error').filter({ hasText: 'nothere' });
    await failure.waitFor({ timeout });
    const text = await failure.textContent();
    if (!text.startsWith('relationships 4:')) throw new Error(`the failure is not located at line 4 of the relationships: ${text}`);
    await page.locator('#relationships .cm-lintRange-error').first().waitFor({ timeout });
    await page.keyboard.press('Control+z');
    await status.filter({ hasText: 'passed' }).waitFor({ timeout });
  });

  await step('a check watch is explained as a tree', async () => {
    await page.locator('#watches tbody tr').nth(0).locator('.watch-explain').click();
    const ex = page.locator('#explanation');
    await ex.locator('h3').filter({ hasText: 'Why user:bob holds view on doc:readme' }).waitFor({ timeout });
    await ex.locator('.node.holds .label').filter({ hasText: 'doc:readme#viewer' }).first().waitFor({ timeout });
    await ex.locator('.rel').filter({ hasText: 'doc:readme#viewer@user:bob' }).first().waitFor({ timeout });
    // Editing the watch re-evaluates it: erin is nobody.
    const subject = page.locator('#watches tbody tr').nth(0).locator('.watch-subject');
    await subject.fill('user:erin');
    await page.locator('#watches tbody tr').nth(0).locator('.watch-result.denied').waitFor({ timeout });
    await ex.locator('h3').filter({ hasText: 'Why user:erin does not hold view' }).waitFor({ timeout });
    await subject.fill('user:bob');
    await page.locator('#watches tbody tr').nth(0).locator('.watch-result.allowed').waitFor({ timeout });
    await shot('04-explanation');
  });

  await step('expected relations are re-generated with a diff', async () => {
    await page.locator('#relationships .cm-content').click();
    await page.keyboard.press('Control+End');
    await page.keyboard.insertText('\ndoc:readme#viewer@user:dina');
    await status.filter({ hasText: 'problem' }).waitFor({ timeout }); // dina is not expected
    await page.locator('#regenerate').click();
    await page.locator('#generatedDiff .add').filter({ hasText: '[user:dina] is <doc:readme#viewer>' }).waitFor({ timeout });
    await page.locator('#acceptGenerated').click();
    await status.filter({ hasText: 'passed' }).waitFor({ timeout });
  });

  await step('the file is exported as validation YAML and imported again', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#export').click()]);
    const path = `${artifacts}/playground.yaml`;
    await download.saveAs(path);
    const exported = readFileSync(path, 'utf8');
    for (const want of ['schema: |-\n  definition user {}', 'relationships: |-\n  doc:readme#owner@user:ann', '  doc:readme#viewer@user:dina',
      'assertions:\n  assertTrue:', 'assertCaveated:', 'validation:\n  doc:readme#view:']) {
      if (!exported.includes(want)) throw new Error(`the exported file lacks ${JSON.stringify(want)}:\n${exported}`);
    }
    await page.locator('#relationships .cm-content').click();
    await page.keyboard.press('Control+a');
    await page.keyboard.press('Backspace');
    await status.filter({ hasText: 'problem' }).waitFor({ timeout });
    await page.locator('#importFile').setInputFiles(path);
    await status.filter({ hasText: 'passed: 5 assertions' }).waitFor({ timeout });
    const rels = await page.evaluate(() => window.playground.text('relationships'));
    if (!rels.includes('doc:readme#viewer@user:dina')) throw new Error(`the imported relationships: ${rels}`);
  });

  await step('the schema is drawn as a diagram', async () => {
    await page.locator('#showSchemaGraph').click();
    await page.locator('#graph canvas').first().waitFor({ timeout });
    const nodes = await page.evaluate(() => window.playground.graph()?.nodes().length ?? -1);
    if (nodes !== 3) throw new Error(`the diagram has ${nodes} definitions and caveats, want 3`);
    await page.locator('#graphObject').fill('doc:readme');
    await page.locator('#showObjectGraph').click();
    const objects = await page.evaluate(() => window.playground.graph()?.nodes().length ?? -1);
    if (objects !== 5) throw new Error(`doc:readme has ${objects} objects around it, want 5 (itself, ann, bob, carl, dina)`);
    await shot('05-graph');
  });

  await step('a file of policies-test/ opens and passes', async () => {
    await page.locator('#examples').selectOption('discord/05-worked-example.yaml');
    await status.filter({ hasText: /passed: \d+ assertions/ }).waitFor({ timeout: 60000 });
    const watch = page.locator('#watches tbody tr').nth(0);
    await watch.locator('.watch-resource').fill('channel:staff');
    await watch.locator('.watch-permission').fill('view_channel');
    await watch.locator('.watch-subject').fill('user:carl');
    await watch.locator('.watch-result.denied').waitFor({ timeout });
    await page.locator('#explanation .reason').filter({ hasText: 'everyone_deny_view_channel' }).first().waitFor({ timeout });
    await page.locator('#showSchemaGraph').click();
    await shot('06-worked-example');
  });

  if (process.env.ADMIN_TOKEN) {
    await step('what-if and Apply refuse a breaking change, with the reason', async () => {
      await page.locator('#token').fill(process.env.ADMIN_TOKEN);
      await page.locator('#token').dispatchEvent('change');
      await page.locator('#loadLive').click();
      await page.locator('#live .ok').filter({ hasText: 'Loaded the running schema' }).waitFor({ timeout });
      // The live relationships of platform:beep: its admin, sam and the local user as staff.
      await page.locator('#graphObject').fill('platform:beep');
      await page.locator('#graphLive').check();
      await page.locator('#showObjectGraph').click();
      await page.waitForFunction(() => window.playground.graph()?.nodes().length === 4, null, { timeout });
      const ids = await page.evaluate(() => window.playground.graph().nodes().map((n) => n.id()).sort().join(' '));
      if (ids !== 'platform:beep user:playground-local user:root user:sam') throw new Error(`live graph of platform:beep: ${ids}`);
      // Remove platform#manage_schema, which Beep uses: breaking, and root loses it.
      const schema = await page.evaluate(() => window.playground.text('schema'));
      const proposed = schema.replace(/^[ \t]*permission manage_schema = admin[ \t]*\n/m, '');
      if (proposed === schema) throw new Error('the live schema has no platform#manage_schema');
      await page.evaluate((text) => window.playground.setText('schema', text), proposed);
      await page.locator('#whatIf').click();
      const summary = page.locator('#whatIfSummary');
      await summary.filter({ hasText: 'Breaking' }).waitFor({ timeout: 60000 });
      await page.locator('#whatIfChanges td.error').filter({ hasText: 'user:root' }).first().waitFor({ timeout });
      await shot('07-what-if');
      await page.locator('#apply').click();
      const refused = page.locator('#live').filter({ hasText: 'Refused (failed_precondition)' });
      await refused.waitFor({ timeout });
      await page.locator('#live pre').filter({ hasText: 'manage_schema' }).waitFor({ timeout });
      await shot('08-apply-refused');
    });
  }
  console.log('playground: all steps passed');
} catch (e) {
  console.error(`FAIL ${stepName}: ${e.message}`);
  await shot('failure').catch(() => {});
  console.error(logs.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
