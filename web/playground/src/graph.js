// Diagrams with cytoscape: the schema (definitions, their relations to the
// types they allow, and the arrows of permissions), and the relationships
// of one object with its neighbours.
import cytoscape from 'cytoscape';
import { parseSchema } from './zed.js';

const style = [
  { selector: 'node', style: { label: 'data(label)', 'font-size': 11, 'text-valign': 'center', 'text-halign': 'center',
    'background-color': '#dbe7ff', 'border-color': '#4063c9', 'border-width': 1, shape: 'round-rectangle',
    width: (n) => Math.max(30, n.data('label').length * 6.6 + 10), height: 24, color: '#10204a' } },
  { selector: 'node.focus', style: { 'background-color': '#ffe3a6', 'border-color': '#b27b00' } },
  { selector: 'node.caveat', style: { 'background-color': '#eee', shape: 'ellipse' } },
  { selector: 'edge', style: { label: 'data(label)', 'font-size': 9, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle',
    width: 1.2, 'line-color': '#7a8bb8', 'target-arrow-color': '#7a8bb8', 'text-background-color': '#fff',
    'text-background-opacity': 0.8, 'text-rotation': 'autorotate' } },
  { selector: 'edge.arrow', style: { 'line-style': 'dashed', 'line-color': '#c06', 'target-arrow-color': '#c06' } },
];

let cy;

// current is the graph drawn last (for the browser test).
export function current() { return cy; }
function draw(container, elements, layout) {
  if (cy) cy.destroy();
  cy = cytoscape({ container, elements, style, layout });
  return cy;
}

// schemaGraph draws the definitions of a schema. Relations become edges to
// their allowed types ("role#member" points at role), arrows of permissions
// dashed edges to where they lead.
export function schemaGraph(container, schemaText) {
  const defs = parseSchema(schemaText);
  const names = new Set(defs.map((d) => d.name));
  const elements = [];
  for (const d of defs) {
    elements.push({ data: { id: d.name, label: d.name + (d.kind === 'caveat' ? ' (caveat)' : '') }, classes: d.kind });
  }
  // One edge per (definition, target, kind), labelled with its relations:
  // Beep's overwrites give a definition dozens of relations to user.
  const edges = new Map();
  const add = (source, target, kind, label) => {
    const id = `${source}->${target}:${kind}`;
    if (!edges.has(id)) edges.set(id, { source, target, kind, labels: [] });
    const e = edges.get(id);
    if (!e.labels.includes(label)) e.labels.push(label);
  };
  for (const d of defs) {
    const relTypes = Object.fromEntries(d.relations.map((r) => [r.name, r.types]));
    for (const r of d.relations) {
      for (const t of r.types) {
        const target = t.split(/[#:]/)[0];
        if (names.has(target)) add(d.name, target, 'relation', r.name + (t.includes('#') ? '→#' + t.split('#')[1] : ''));
      }
    }
    for (const p of d.permissions) {
      for (const a of p.arrows) {
        for (const t of relTypes[a.via] || []) {
          const target = t.split(/[#:]/)[0];
          if (names.has(target)) add(d.name, target, 'arrow', `${a.via}->${a.to}`);
        }
      }
    }
  }
  // A large schema (Beep's) is drawn without edge labels: tap an edge.
  const quiet = edges.size > 16;
  for (const [id, e] of edges) {
    const shown = quiet ? '' : e.labels.slice(0, 2).join(', ') + (e.labels.length > 2 ? ` +${e.labels.length - 2}` : '');
    elements.push({ data: { id, source: e.source, target: e.target, label: shown, all: e.labels.join('\n') }, classes: e.kind });
  }
  const graph = draw(container, elements, { name: 'circle', padding: 20, spacingFactor: 1.1, avoidOverlap: true });
  graph.on('tap', 'edge', (ev) => { ev.target.data('label', ev.target.data('label') === ev.target.data('all') ? '' : ev.target.data('all')); });
  return graph;
}

// parseRel reads "type:id#relation@type:id[#relation][caveat]".
export function parseRel(line) {
  const m = line.trim().match(/^([^:#\s]+):([^#\s]+)#([^@\s]+)@([^:#\s\[]+):([^#\s\[]+)(?:#([^\s\[]+))?/);
  if (!m) return null;
  return { resource: `${m[1]}:${m[2]}`, relation: m[3], subject: `${m[4]}:${m[5]}`, subjectRelation: m[6] || '' };
}

// objectGraph draws the relationships of one object and of its neighbours.
export function objectGraph(container, relationshipsText, object, depth = 2) {
  const rels = relationshipsText.split('\n').map(parseRel).filter(Boolean);
  const nodes = new Set([object]);
  let frontier = new Set([object]);
  const edges = new Map();
  for (let i = 0; i < depth; i++) {
    const next = new Set();
    for (const r of rels) {
      if (frontier.has(r.resource) || frontier.has(r.subject)) {
        edges.set(`${r.resource}#${r.relation}@${r.subject}#${r.subjectRelation}`, r);
        for (const n of [r.resource, r.subject]) if (!nodes.has(n)) { nodes.add(n); next.add(n); }
      }
    }
    frontier = next;
  }
  const elements = [...nodes].map((n) => ({ data: { id: n, label: n }, classes: n === object ? 'focus' : '' }));
  for (const [id, r] of edges) {
    elements.push({ data: { id, source: r.resource, target: r.subject, label: r.relation + (r.subjectRelation ? ' → #' + r.subjectRelation : '') } });
  }
  return draw(container, elements, { name: 'breadthfirst', roots: [object], directed: false, spacingFactor: 1.1 });
}
