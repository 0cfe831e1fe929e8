// The SpiceDB schema language (.zed), highlighted with a stream parser.
import { StreamLanguage } from '@codemirror/language';

const keywords = new Set(['definition', 'caveat', 'relation', 'permission', 'with', 'use', 'nil', 'import', 'partial']);

export const zed = StreamLanguage.define({
  name: 'zed',
  startState: () => ({ inComment: false }),
  token(stream, state) {
    if (state.inComment) {
      if (stream.skipTo('*/')) { stream.next(); stream.next(); state.inComment = false; } else stream.skipToEnd();
      return 'comment';
    }
    if (stream.eatSpace()) return null;
    if (stream.match('//')) { stream.skipToEnd(); return 'comment'; }
    if (stream.match('/*')) { state.inComment = true; return 'comment'; }
    if (stream.match('->')) return 'operator';
    if (stream.match(/^[+&\-|=#:*]/)) return 'operator';
    if (stream.match(/^[{}()]/)) return 'bracket';
    if (stream.match(/^"([^"\\]|\\.)*"/)) return 'string';
    if (stream.match(/^[0-9]+/)) return 'number';
    if (stream.match(/^[a-zA-Z_][a-zA-Z0-9_/]*/)) {
      const w = stream.current();
      if (keywords.has(w)) return 'keyword';
      if (stream.string.slice(0, stream.start).match(/(definition|caveat)\s+$/)) return 'typeName';
      if (stream.string.slice(0, stream.start).match(/(relation|permission)\s+$/)) return 'propertyName';
      return 'variableName';
    }
    stream.next();
    return null;
  },
  languageData: { commentTokens: { line: '//', block: { open: '/*', close: '*/' } } },
});

// parseSchema reads definitions, their relations (with allowed types) and
// permissions (with the arrows they follow), for the diagram. It is a
// reader for drawing, not a compiler: SpiceDB's errors come from the server.
export function parseSchema(text) {
  const defs = [];
  const clean = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const re = /(definition|caveat)\s+([a-zA-Z0-9_/]+)\s*(\([^)]*\))?\s*\{/g;
  let m;
  while ((m = re.exec(clean))) {
    let depth = 1, i = re.lastIndex;
    while (i < clean.length && depth > 0) { if (clean[i] === '{') depth++; else if (clean[i] === '}') depth--; i++; }
    const body = clean.slice(re.lastIndex, i - 1);
    const def = { kind: m[1], name: m[2], relations: [], permissions: [] };
    if (m[1] === 'definition') {
      for (const r of body.matchAll(/relation\s+([a-zA-Z0-9_]+)\s*:\s*([^\n]+)/g)) {
        const types = r[2].split('|').map((t) => t.trim().split(/\s+with\s+/)[0]).filter(Boolean);
        def.relations.push({ name: r[1], types });
      }
      for (const p of body.matchAll(/permission\s+([a-zA-Z0-9_]+)\s*=\s*([^\n]+)/g)) {
        const arrows = [...p[2].matchAll(/([a-zA-Z0-9_]+)\s*->\s*([a-zA-Z0-9_]+)/g)].map((a) => ({ via: a[1], to: a[2] }));
        def.permissions.push({ name: p[1], expression: p[2].trim(), arrows });
      }
    }
    defs.push(def);
    re.lastIndex = i;
  }
  return defs;
}

// Relationships, one per line: resource:id#relation@subject:id[#relation],
// then an optional [caveat:{context}] or [expiration:...].
export const relationshipsLanguage = StreamLanguage.define({
  name: 'relationships',
  startState: () => ({ part: 'resource' }),
  token(stream, state) {
    if (stream.sol()) state.part = 'resource';
    if (stream.eatSpace()) return null;
    if (stream.match('//')) { stream.skipToEnd(); return 'comment'; }
    if (state.part === 'caveat') {
      if (stream.match(/^"([^"\\]|\\.)*"/)) return 'string';
      if (stream.match(/^[0-9][0-9T:.\-Z+]*/)) return 'number';
      if (stream.eat(']')) { state.part = 'done'; return 'bracket'; }
      stream.next();
      return 'meta';
    }
    if (stream.eat('#')) { state.part = state.part === 'resource' ? 'relation' : 'subjectRelation'; return 'operator'; }
    if (stream.eat('@')) { state.part = 'subject'; return 'operator'; }
    if (stream.eat(':')) return 'operator';
    if (stream.eat('[')) { state.part = 'caveat'; return 'bracket'; }
    if (stream.match(/^[^:#@\[\s]+/)) {
      const before = stream.string.slice(0, stream.start);
      const isType = !/:[^#@]*$/.test(before.split(/[@#]/).pop() || '') && stream.peek() === ':';
      if (state.part === 'relation' || state.part === 'subjectRelation') return 'propertyName';
      return isType ? 'typeName' : 'variableName';
    }
    stream.next();
    return null;
  },
});
