// The API reference at /api/docs, rendered from /api/openapi.json: every
// operation by tag, with its parameters, body and answers. No asset from the
// network; the page obeys the same Content-Security-Policy as the dashboard.

import { el } from './ui.js';

const root = document.getElementById('api-docs');

function ref(schema) {
  if (!schema) return '';
  if (schema.$ref) return schema.$ref.split('/').pop();
  if (schema.type === 'array') return `[${ref(schema.items)}]`;
  if (Array.isArray(schema.type)) return schema.type.join(' | ');
  return schema.type || 'any JSON';
}

function schemaOf(content) {
  const json = content && (content['application/json'] || Object.values(content)[0]);
  return json ? ref(json.schema) : '';
}

function operation(method, path, op) {
  const params = (op.parameters || []).map((p) =>
    el('li', {}, el('code', {}, p.name), ` (${p.in}${p.required ? ', required' : ''}) `, p.description || ''));
  const body = op.requestBody ? el('p', {}, 'Body: ', el('code', {}, schemaOf(op.requestBody.content) || 'JSON'),
    op.requestBody.description ? ` — ${op.requestBody.description}` : '') : null;
  const answers = Object.entries(op.responses || {}).map(([status, r]) =>
    el('li', { class: status.startsWith('2') ? 'answer-ok' : 'answer-error' }, el('code', {}, status), ' ',
      schemaOf(r.content) ? el('code', {}, schemaOf(r.content)) : '', ' ', r.description || ''));
  return el('section', { class: 'operation', id: op.operationId, dataset: { method, path } },
    el('h3', {}, el('span', { class: `method ${method}` }, method.toUpperCase()), ' ', el('code', {}, path)),
    op.description ? el('p', {}, op.description) : null,
    params.length ? el('ul', { class: 'params' }, params) : null,
    body,
    el('ul', { class: 'answers' }, answers));
}

async function render() {
  const doc = await (await fetch('/api/openapi.json')).json();
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(method, path, op));
    }
  }
  const tags = new Map((doc.tags || []).map((t) => [t.name, t.description]));
  root.replaceChildren(
    el('h1', {}, `${doc.info.title} API ${doc.info.version}`),
    el('p', {}, doc.info.description || '', ' ', el('a', { href: '/api/openapi.json' }, 'OpenAPI 3.1 document'),
      '. Calls take ', el('code', {}, 'Authorization: Bearer <jwt>'), '; errors are ',
      el('code', {}, '{"error":{"code","message"}}'), '.'),
    ...[...byTag.entries()].map(([tag, ops]) =>
      el('div', { class: 'tag', id: `tag-${tag}` }, el('h2', {}, tag), el('p', {}, tags.get(tag) || ''), ops)),
  );
}

render().catch((e) => { root.append(el('p', { class: 'error' }, `Could not load the document: ${e.message}`)); });
