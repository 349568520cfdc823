// What an agent reads on a card: an order's customer, lines and total, a
// job's outcome, how long ago something happened. Payloads have no fixed
// shape (the order system decides), so the usual field names are tried,
// in English and Italian, and a payload of unknown shape is left to the
// raw JSON behind the card's toggle.

const pick = (obj, names) => {
  if (!obj || typeof obj !== 'object') return undefined;
  for (const n of names) if (obj[n] !== undefined && obj[n] !== null && obj[n] !== '') return obj[n];
  return undefined;
};

const num = (v) => (typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : undefined);

/** A customer field as text: a name, or an object with one. */
function customerOf(p) {
  const c = pick(p, ['customer', 'customerName', 'client', 'cliente', 'ragioneSociale', 'company']);
  if (c === undefined) return undefined;
  if (typeof c === 'object') return pick(c, ['name', 'nome', 'ragioneSociale', 'company', 'code', 'id']) ?? undefined;
  return String(c);
}

/** { customer, lines: [{name, quantity, price, amount}], total, currency, note }
 * or null when the payload has none of the usual fields. */
export function orderSummary(payload) {
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) return null;
  const customer = customerOf(payload);
  const rawLines = pick(payload, ['lines', 'items', 'righe', 'products', 'articoli', 'rows']);
  const lines = Array.isArray(rawLines)
    ? rawLines.filter((l) => l && typeof l === 'object').map((l) => {
      const quantity = num(pick(l, ['quantity', 'qty', 'quantita', 'qta', 'count']));
      const price = num(pick(l, ['price', 'unitPrice', 'prezzo', 'unit_price']));
      const given = num(pick(l, ['amount', 'total', 'importo', 'lineTotal']));
      const amount = given ?? (quantity !== undefined && price !== undefined ? quantity * price : undefined);
      const name = pick(l, ['name', 'description', 'product', 'descrizione', 'sku', 'code', 'codice']);
      return { name: name === undefined ? 'item' : String(typeof name === 'object' ? JSON.stringify(name) : name), quantity, price, amount };
    })
    : [];
  const givenTotal = num(pick(payload, ['total', 'totale', 'amount', 'importo', 'grandTotal']));
  const sum = lines.every((l) => l.amount !== undefined) && lines.length ? lines.reduce((a, l) => a + l.amount, 0) : undefined;
  const total = givenTotal ?? sum;
  const currency = pick(payload, ['currency', 'valuta']);
  const note = pick(payload, ['note', 'notes', 'comment', 'title', 'reference', 'riferimento']);
  if (customer === undefined && !lines.length && total === undefined && note === undefined) return null;
  return { customer, lines, total, currency: typeof currency === 'string' ? currency : undefined, note: note === undefined ? undefined : String(note) };
}

/** 1234.5 as "1,234.50" (and the currency when known). */
export function money(value, currency) {
  if (value === undefined) return '';
  try {
    if (currency && /^[A-Z]{3}$/.test(currency)) return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(value);
  } catch { /* an unknown code: plain number below */ }
  return new Intl.NumberFormat(undefined, { minimumFractionDigits: Number.isInteger(value) ? 0 : 2, maximumFractionDigits: 2 }).format(value);
}

/** A finished job's outcome in words: lines of text, or null when its
 * result has no shape we know (the raw JSON is behind the toggle). */
export function jobOutcome(job) {
  const r = job.result;
  if (job.status === 'cancelled') return [job.error ? `Cancelled: ${job.error}` : 'Cancelled.'];
  if (job.status === 'failed' && !r) return [`Failed: ${job.error || 'no reason given'}`];
  if (!r || typeof r !== 'object') return job.status === 'completed' ? ['Done.'] : null;
  const out = [];
  if (Array.isArray(r.mapping) || Array.isArray(r.failed)) {
    const sent = Array.isArray(r.mapping) ? r.mapping : [];
    const failed = Array.isArray(r.failed) ? r.failed : [];
    out.push(`${sent.length} ${sent.length === 1 ? 'order' : 'orders'} sent${failed.length ? `, ${failed.length} failed` : ''}.`);
    if (sent.length) out.push(`Numbers: ${sent.slice(0, 8).map((m) => m.orderNumber).join(', ')}${sent.length > 8 ? ` and ${sent.length - 8} more` : ''}`);
    for (const f of failed.slice(0, 5)) out.push(`✗ ${f.pendingOrderId}: ${f.error}`);
    if (failed.length > 5) out.push(`… and ${failed.length - 5} more failures`);
    return out;
  }
  // Any other result: its plain fields, a few of them.
  const plain = Object.entries(r).filter(([, v]) => ['string', 'number', 'boolean'].includes(typeof v));
  if (!plain.length) return job.status === 'completed' ? ['Done.'] : null;
  const words = (k) => k.replace(/([a-z])([A-Z])/g, '$1 $2').replace(/_/g, ' ').toLowerCase();
  return plain.slice(0, 6).map(([k, v]) => `${words(k)}: ${v}`);
}

/** "just now", "3 min ago", "2 h ago", or a date. */
export function ago(iso, now = Date.now()) {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

/** 93784 seconds as "1 d 2 h", 3725 as "1 h 2 min", 75 as "1 min 15 s". */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400); const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60); const r = s % 60;
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${r} s`;
  return `${r} s`;
}

/** Bytes as "12.3 MiB". */
export function bytes(n) {
  if (n === undefined || n === null) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n; let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}
