// Beep's schema playground. Everything is validated on the server, with
// SpiceDB's own development code (the admin API's RunPolicies and
// ValidateSchema): the page only edits, shows and draws.
import { EditorView, basicSetup } from 'codemirror';
import { EditorState } from '@codemirror/state';
import { yaml } from '@codemirror/lang-yaml';
import { setDiagnostics, lintGutter } from '@codemirror/lint';
import { call, token, setToken } from './api.js';
import { zed, parseSchema, relationshipsLanguage } from './zed.js';
import { compose, split, locate } from './file.js';
import { schemaGraph, objectGraph, current } from './graph.js';
import { sample } from './sample.js';
import './style.css';

const $ = (id) => document.getElementById(id);
const state = { sections: {}, generated: '', liveHash: '', watches: [], explainIndex: -1, runSeq: 0, lastRun: null };

// The editors.
const editors = {};
function editor(id, language) {
  const view = new EditorView({
    parent: $(id),
    state: EditorState.create({ doc: '', extensions: [basicSetup, lintGutter(), language, EditorView.updateListener.of((u) => { if (u.docChanged) scheduleRun(); })] }),
  });
  view.dom.dataset.editor = id;
  editors[id] = view;
  return view;
}
editor('schema', zed);
editor('relationships', relationshipsLanguage);
editor('assertions', yaml());
editor('validation', yaml());
const text = (id) => editors[id].state.doc.toString();
function setText(id, value) {
  const v = editors[id];
  v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
}
function parts() {
  return { schema: text('schema'), relationships: text('relationships'), assertions: text('assertions'), validation: text('validation') };
}
function load(content, quiet) {
  const p = split(content);
  if (!p.schema && p.schemaFile) status('warn', `schemaFile ${p.schemaFile} cannot be read here: paste the schema, or load the live one`);
  for (const k of ['schema', 'relationships', 'assertions', 'validation']) setText(k, p[k]);
  if (!quiet) scheduleRun(0);
}

function status(kind, msg) {
  const s = $('status');
  s.className = 'badge ' + kind;
  s.textContent = msg;
}

// Diagnostics: a 1-based line and column of an editor, as a range.
function diagnostic(view, line, column, severity, message) {
  const doc = view.state.doc;
  const l = doc.line(Math.min(Math.max(line, 1), doc.lines));
  const from = Math.min(l.from + Math.max(column - 1, 0), l.to);
  return { from, to: from < l.to ? l.to : from, severity, message };
}

// Runs, debounced: every edit re-validates and re-evaluates the watches.
let timer;
function scheduleRun(delay = 350) {
  clearTimeout(timer);
  timer = setTimeout(run, delay);
}

async function run() {
  const seq = ++state.runSeq;
  const { content, sections } = compose(parts());
  state.sections = sections;
  status('busy', 'running…');
  const checks = state.watches.map((w, i) => ({ subject: w.subject, permission: w.permission, resource: w.resource,
    context: contextOf(w), explain: i === state.explainIndex }));
  try {
    const [schema, file] = await Promise.all([
      text('schema').trim() ? call('ValidateSchema', { schemaText: text('schema') }) : Promise.resolve({ valid: false, errors: [{ message: 'the schema is empty' }] }),
      call('RunPolicies', { fileName: 'playground.yaml', content, checks }),
    ]);
    if (seq !== state.runSeq) return; // an edit came since
    state.lastRun = file;
    show(schema, file);
  } catch (e) {
    if (seq !== state.runSeq) return;
    status('fail', e.code === 'unauthenticated' || e.code === 'permission_denied'
      ? `${e.code}: the playground needs platform staff (platform#moderate); give a token` : `${e.code || 'error'}: ${e.message}`);
  }
}

function show(schema, file) {
  const problems = $('problems');
  problems.replaceChildren();
  const diags = { schema: [], relationships: [], assertions: [], validation: [] };
  const item = (cls, where, message, editorId, line) => {
    const li = document.createElement('li');
    li.className = cls;
    const loc = document.createElement('a');
    loc.textContent = where;
    loc.href = '#';
    loc.onclick = (ev) => { ev.preventDefault(); if (editorId) jump(editorId, line); };
    li.append(loc, ' ', message);
    problems.append(li);
  };
  for (const e of schema.errors || []) {
    item('error', `schema ${e.line || '?'}:${e.column || '?'}`, e.message, 'schema', e.line);
    if (e.line) diags.schema.push(diagnostic(editors.schema, e.line, e.column, 'error', e.message));
  }
  for (const w of schema.warnings || []) {
    item('warning', `schema ${w.line || '?'}:${w.column || '?'}`, `${w.message}${w.warningName ? ' (' + w.warningName + ')' : ''}`, 'schema', w.line);
    if (w.line) diags.schema.push(diagnostic(editors.schema, w.line, w.column, 'warning', w.message));
  }
  const schemaBroken = (schema.errors || []).length > 0;
  for (const f of file.failures || []) {
    if (schemaBroken && (f.kind === 'SCHEMA_ISSUE' || f.kind === 'PARSE_ERROR' || f.kind === 'SCHEMA')) continue; // shown above
    const at = f.line ? locate(state.sections, f.line) : null;
    if (at && at.editor !== 'schema') {
      const column = f.column ? Math.max(f.column - at.indent, 1) : 1;
      item('error', `${at.editor} ${at.line}:${column}`, `${f.kind}: ${f.message}`, at.editor, at.line);
      diags[at.editor].push(diagnostic(editors[at.editor], at.line, column, 'error', f.message));
    } else {
      item('error', f.line ? `line ${f.line}` : f.kind, `${f.kind}: ${f.message}`);
    }
  }
  for (const [k, d] of Object.entries(diags)) editors[k].dispatch(setDiagnostics(editors[k].state, d));
  const failed = (schema.errors || []).length + (schemaBroken ? 0 : (file.failures || []).length);
  if (failed === 0) status('ok', `passed: ${file.assertions || 0} assertions, ${file.expectedRelations || 0} expected relations`);
  else status('fail', `${failed} problem${failed > 1 ? 's' : ''}`);
  state.generated = file.generatedExpectedRelations || '';
  showWatches(file.checks || []);
}

function jump(editorId, line) {
  const v = editors[editorId];
  const l = v.state.doc.line(Math.min(Math.max(line || 1, 1), v.state.doc.lines));
  v.dispatch({ selection: { anchor: l.from }, scrollIntoView: true });
  v.focus();
}

// Check watches: subject, permission, resource (and caveat context, a JSON
// object) → allowed / denied / caveated / invalid.
function contextOf(w) {
  if (!w.context || !w.context.trim()) return undefined;
  try {
    const v = JSON.parse(w.context);
    return v && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
  } catch { return undefined; }
}
const resultNames = { CHECK_RESULT_ALLOWED: 'allowed', CHECK_RESULT_DENIED: 'denied', CHECK_RESULT_CAVEATED: 'caveated' };
function renderWatchRows() {
  const body = $('watches').tBodies[0];
  body.replaceChildren();
  state.watches.forEach((w, i) => {
    const tr = document.createElement('tr');
    tr.dataset.index = i;
    for (const field of ['subject', 'permission', 'resource', 'context']) {
      const td = document.createElement('td');
      const input = document.createElement('input');
      input.value = w[field] || '';
      if (field === 'context') input.placeholder = '{"caveat": "context"}';
      input.className = 'watch-' + field;
      input.oninput = () => { w[field] = input.value; scheduleRun(); };
      td.append(input);
      tr.append(td);
    }
    const result = document.createElement('td');
    result.className = 'watch-result';
    const actions = document.createElement('td');
    const explain = document.createElement('button');
    explain.textContent = 'explain';
    explain.className = 'watch-explain';
    explain.onclick = () => { state.explainIndex = state.explainIndex === i ? -1 : i; scheduleRun(0); };
    const remove = document.createElement('button');
    remove.textContent = '×';
    remove.onclick = () => { state.watches.splice(i, 1); if (state.explainIndex >= state.watches.length) state.explainIndex = -1; renderWatchRows(); scheduleRun(0); };
    actions.append(explain, remove);
    tr.append(result, actions);
    body.append(tr);
  });
}
function showWatches(results) {
  const rows = $('watches').tBodies[0].rows;
  results.forEach((r, i) => {
    if (!rows[i]) return;
    const cell = rows[i].querySelector('.watch-result');
    const w = state.watches[i];
    const badContext = w && w.context && w.context.trim() && !contextOf(w);
    const name = r.error || badContext ? 'invalid' : resultNames[r.result] || 'denied';
    if (badContext) r.error = 'the context is not a JSON object';
    cell.textContent = name + (r.missingContext?.length ? ` (needs ${r.missingContext.join(', ')})` : '');
    cell.title = r.error || '';
    cell.className = 'watch-result ' + name;
  });
  const ex = $('explanation');
  ex.replaceChildren();
  const r = results[state.explainIndex];
  if (r && r.explanation) {
    const h = document.createElement('h3');
    h.textContent = `Why ${r.check.subject} ${resultNames[r.result] === 'allowed' ? 'holds' : 'does not hold'} ${r.check.permission} on ${r.check.resource}`;
    ex.append(h, tree(r.explanation));
  } else if (r && r.error) {
    ex.textContent = r.error;
  }
}

// The explanation tree, the shape of authz.Explain (ExplainNode).
const nodeResult = { RESULT_HOLDS: 'holds', RESULT_DOES_NOT_HOLD: 'does-not-hold', RESULT_CAVEATED: 'caveated', RESULT_NOT_EVALUATED: 'not-evaluated' };
function tree(n) {
  const ul = document.createElement('ul');
  ul.className = 'tree';
  const li = document.createElement('li');
  const res = nodeResult[n.result] || 'not-evaluated';
  li.className = 'node ' + res;
  const kind = (n.kind || '').replace('KIND_', '');
  let label = kind === 'CHECK' ? `${n.resource}#${n.relation}${n.isPermission ? ' (permission)' : ''} @ ${n.subject}` : `${kind}${n.expression ? ' ' + n.expression : ''}`;
  if (kind === 'CHECK' && n.expression) label += ` = ${n.expression}`;
  const head = document.createElement('span');
  head.className = 'label';
  head.textContent = label;
  const r = document.createElement('span');
  r.className = 'result';
  r.textContent = res.replace(/-/g, ' ') + (n.cached ? ', cached' : '');
  li.append(head, ' ', r);
  if (n.reason) { const s = document.createElement('span'); s.className = 'reason'; s.textContent = ' — ' + n.reason; li.append(s); }
  for (const rel of n.relationships || []) { const s = document.createElement('div'); s.className = 'rel'; s.textContent = '↳ ' + rel; li.append(s); }
  if (n.caveat) { const s = document.createElement('div'); s.className = 'rel'; s.textContent = `caveat ${n.caveat.name}: ${nodeResult[n.caveat.result] || ''}`; li.append(s); }
  for (const c of n.children || []) li.append(tree(c));
  ul.append(li);
  return ul;
}

$('runNow').onclick = () => scheduleRun(0);
$('addWatch').onclick = () => { state.watches.push({ subject: 'user:', permission: '', resource: '', context: '' }); renderWatchRows(); };

// Expected relations: re-generate, see the diff, accept.
function lineDiff(a, b) {
  const x = a.split('\n'), y = b.split('\n');
  const m = x.length, n = y.length;
  const dp = Array.from({ length: m + 1 }, () => new Int32Array(n + 1));
  for (let i = m - 1; i >= 0; i--) for (let j = n - 1; j >= 0; j--) dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < m && j < n) {
    if (x[i] === y[j]) { out.push(['same', x[i]]); i++; j++; } else if (dp[i + 1][j] >= dp[i][j + 1]) out.push(['del', x[i++]]); else out.push(['add', y[j++]]);
  }
  while (i < m) out.push(['del', x[i++]]);
  while (j < n) out.push(['add', y[j++]]);
  return out;
}
$('regenerate').onclick = async () => {
  await run();
  const pre = $('generatedDiff');
  pre.replaceChildren();
  const generated = state.generated.trimEnd();
  const d = lineDiff(text('validation').trimEnd(), generated);
  for (const [op, line] of d) {
    const s = document.createElement('div');
    s.className = op;
    s.textContent = (op === 'add' ? '+ ' : op === 'del' ? '- ' : '  ') + line;
    pre.append(s);
  }
  if (!d.some(([op]) => op !== 'same')) pre.prepend(Object.assign(document.createElement('div'), { className: 'same', textContent: '(no difference)' }));
  $('acceptGenerated').hidden = false;
};
$('acceptGenerated').onclick = () => { setText('validation', state.generated.trimEnd()); $('acceptGenerated').hidden = true; $('generatedDiff').replaceChildren(); };

// Graphs.
$('showSchemaGraph').onclick = () => schemaGraph($('graph'), text('schema'));
$('showObjectGraph').onclick = async () => {
  const o = $('graphObject').value.trim();
  if (!o) return;
  if (!$('graphLive').checked) { objectGraph($('graph'), text('relationships'), o, 2); return; }
  // Live: the object's relationships, as resource and as subject (one read
  // per definition of the schema in the editor), from the running graph.
  const [type, id] = o.split(':');
  try {
    const read = async (filter) => (await call('ReadRelationships', { filter, pageSize: 1000 })).relationships || [];
    const reads = [read({ resourceType: type, resourceId: id })];
    for (const d of parseSchema(text('schema'))) if (d.kind === 'definition') reads.push(read({ resourceType: d.name, subjectType: type, subjectId: id }));
    const rels = (await Promise.all(reads)).flat().map((r) => r.text);
    objectGraph($('graph'), rels.join('\n'), o, 1);
  } catch (e) { status('fail', `${e.code}: ${e.message}`); }
};

// Files: the embedded policies-test/, import, export.
async function listExamples() {
  try {
    const { files = [] } = await call('ListPolicyFiles');
    const select = $('examples');
    for (const f of files) select.append(new Option(f.name + (f.title ? ' — ' + f.title.slice(0, 60) : ''), f.name));
  } catch { /* shown by the run */ }
}
$('examples').onchange = async (ev) => {
  if (!ev.target.value) return;
  try {
    const { content } = await call('ReadPolicyFile', { name: ev.target.value });
    load(content);
  } catch (e) { status('fail', `${e.code}: ${e.message}`); }
};
$('import').onclick = () => $('importFile').click();
$('importFile').onchange = async (ev) => { const f = ev.target.files[0]; if (f) load(await f.text()); ev.target.value = ''; };
$('export').onclick = () => {
  const blob = new Blob([compose(parts()).content], { type: 'application/yaml' });
  const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(blob), download: 'playground.yaml' });
  a.click();
  URL.revokeObjectURL(a.href);
};

// The live system: read-only, except Apply (platform admins).
function live(...nodes) { $('live').replaceChildren(...nodes); }
function el(tag, props = {}, ...children) { const e = Object.assign(document.createElement(tag), props); e.append(...children); return e; }
$('loadLive').onclick = async () => {
  try {
    const r = await call('ReadSchema');
    state.liveHash = r.schemaHash || '';
    setText('schema', (r.schemaText || '').trimEnd());
    live(el('p', { className: 'ok' }, `Loaded the running schema (hash ${state.liveHash.slice(0, 12)}…).`));
  } catch (e) { live(el('p', { className: 'error' }, `${e.code}: ${e.message}`)); }
};
$('whatIf').onclick = async () => {
  live(el('p', {}, 'what-if: running the proposed schema against the live relationships…'));
  try {
    const r = await call('WhatIfSchema', { schemaText: text('schema'), content: compose(parts()).content });
    if (!r.valid) {
      live(el('p', { className: 'error' }, 'The proposed schema cannot run over the live relationships:'),
        el('ul', {}, ...(r.errors || []).map((e) => el('li', {}, `${e.line ? e.line + ':' + e.column + ' ' : ''}${e.message}`))));
      return;
    }
    const changes = r.changes || [];
    const head = el('p', { className: r.breaking ? 'error' : 'ok', id: 'whatIfSummary' },
      `${r.relationships || 0} live relationships${r.truncated ? ' (truncated)' : ''}, ${r.compared || 0} permissions compared: ${changes.length} would change. ` +
      `${r.assertions || 0} assertions, ${(r.failures || []).length} failing. ` + (r.breaking ? 'Breaking: Apply would refuse it.' : 'Not breaking.'));
    const schemaList = el('ul', {}, ...(r.schemaChanges || []).map((c) => el('li', { className: c.breaking ? 'error' : '' },
      `${(c.kind || '').replace('KIND_', '').toLowerCase()} ${c.definition}${c.name ? '#' + c.name : ''}${c.reason ? ' — ' + c.reason : ''}`)));
    const table = el('table', { id: 'whatIfChanges' }, el('thead', {}, el('tr', {}, el('th', {}, 'resource'), el('th', {}, 'permission'), el('th', {}, 'gained'), el('th', {}, 'lost'))),
      el('tbody', {}, ...changes.slice(0, 500).map((c) => el('tr', {}, el('td', {}, c.resource), el('td', {}, c.permission),
        el('td', { className: 'ok' }, (c.gained || []).join(', ')), el('td', { className: 'error' }, (c.lost || []).join(', '))))));
    const failures = el('ul', {}, ...(r.failures || []).map((f) => el('li', { className: 'error' }, `${f.kind}: ${f.message}`)));
    live(head, schemaList, table, failures);
  } catch (e) { live(el('p', { className: 'error' }, `${e.code}: ${e.message}`)); }
};
$('apply').onclick = async () => {
  if (!confirm('Apply this schema to the running system?')) return;
  try {
    const r = await call('ApplySchema', { schemaText: text('schema'), ifSchemaHash: state.liveHash });
    live(el('p', { className: 'ok', id: 'applyResult' }, r.written ? `Applied at ${r.zedToken}.` : 'The running schema is already equivalent: nothing written.'));
  } catch (e) {
    live(el('p', { className: 'error', id: 'applyResult' }, `Refused (${e.code}): `), el('pre', {}, e.message));
  }
};

// Credentials.
$('token').value = token();
$('token').onchange = () => { setToken($('token').value.trim()); listExamples(); scheduleRun(0); };

(async function start() {
  try {
    const s = await (await fetch('settings.json')).json();
    $('access').textContent = s.access === 'local' ? 'local: anyone on this machine (as platform staff)' : 'platform staff only';
  } catch { /* served without settings */ }
  state.watches = sample.watches.map((w) => ({ ...w }));
  renderWatchRows();
  load(sample.content, true);
  await listExamples();
  scheduleRun(0);
  // A handle for scripts and the browser test: the editors' texts, the graph.
  window.playground = { text, setText, graph: current };
  window.playgroundReady = true;
})();
