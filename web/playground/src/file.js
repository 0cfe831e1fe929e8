// The validation file (the YAML of `zed validate` and play.authzed.com),
// split into the playground's editors and put back together. compose()
// remembers where each part starts, so that the server's locations in the
// file map back to the editors.
import YAML from 'yaml';

function indent(text, n) {
  const pad = ' '.repeat(n);
  return text.split('\n').map((l) => (l === '' ? '' : pad + l)).join('\n');
}

// split reads a validation file into its parts (texts for the editors).
export function split(content) {
  const doc = YAML.parse(content) || {};
  const yamlOf = (v) => (v === undefined || v === null ? '' : YAML.stringify(v, { lineWidth: 0 }).trimEnd());
  return {
    schema: (doc.schema || '').trimEnd(),
    schemaFile: doc.schemaFile || '',
    relationships: (doc.relationships || '').trimEnd(),
    assertions: yamlOf(doc.assertions),
    validation: yamlOf(doc.validation),
  };
}

// compose writes the parts as one file: { content, sections }, sections
// being each part's first line in the file (1-based) and its indentation.
export function compose(parts) {
  const lines = [];
  const sections = {};
  const block = (key, text, literal) => {
    if (!text.trim()) return;
    lines.push(key + ':' + (literal ? ' |-' : ''));
    sections[key] = { first: lines.length + 1, indent: 2, count: text.split('\n').length };
    lines.push(...indent(text, 2).split('\n'));
  };
  block('schema', parts.schema, true);
  block('relationships', parts.relationships, true);
  block('assertions', parts.assertions, false);
  block('validation', parts.validation, false);
  return { content: lines.join('\n') + '\n', sections };
}

// locate maps a line of the composed file to an editor and its line.
export function locate(sections, line) {
  for (const [key, s] of Object.entries(sections)) {
    if (line >= s.first && line < s.first + s.count) return { editor: key, line: line - s.first + 1, indent: s.indent };
  }
  return null;
}
