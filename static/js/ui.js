// Small DOM helpers shared by the views.

/** Creates an element: el('div', {class: 'x', onclick: f}, child, 'text'). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    // Through the CSSOM: the Content-Security-Policy (no 'unsafe-inline')
    // blocks style attributes, not style properties set from a script.
    else if (key === 'style') {
      for (const decl of String(value).split(';')) {
        const at = decl.indexOf(':');
        if (at > 0) node.style.setProperty(decl.slice(0, at).trim(), decl.slice(at + 1).trim());
      }
    }
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Shows a short message in the corner. */
export function toast(message, { error = false, ms = 4000 } = {}) {
  const box = document.getElementById('toasts');
  const node = el('div', { class: error ? 'toast error' : 'toast', role: error ? 'alert' : 'status' }, message);
  box.append(node);
  setTimeout(() => node.remove(), ms);
}

/** Shows an error the user can act on; never swallows it. */
export function showError(err) {
  console.error(err);
  toast(err && err.message ? err.message : String(err), { error: true, ms: 7000 });
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** "2026-11-23T10:00:00.123Z" as a short local time. */
export function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', day: '2-digit', month: 'short' });
}

/** Sets the connection indicator: connected, reconnecting (with seconds), offline. */
export function setConnection(state, detail = '') {
  const node = document.getElementById('conn');
  node.dataset.state = state;
  node.textContent = detail ? `${state} ${detail}` : state;
}
