// The inspector page. Captured traffic comes from strangers: everything from the API goes into
// the page as text (textContent, input values), images only as <img> of bytes from the
// inspector's own checked-type endpoint. No innerHTML anywhere.
//
// The per-run secret comes in the URL's fragment (#token=…, never sent to a server), is kept in
// sessionStorage (this origin, this tab) and sent as `Authorization: Bearer` on every call. No
// cookie: cookies are shared by every port of 127.0.0.1, so the developer's own app would get it.
'use strict';

const $ = (sel) => document.querySelector(sel);
const rows = new Map();
let selected = null;
const TOKEN_KEY = 'tunn-inspector-token';

function takeToken() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    // The secret leaves the address bar (and so the history and any screenshot of it).
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}
const token = takeToken();

class Unauthorized extends Error {}

function problem(message) {
  const p = $('#problem');
  p.textContent = message;
  p.hidden = !message;
}

function authorized(init) {
  return { cache: 'no-store', ...init, credentials: 'omit', headers: { ...(init && init.headers), authorization: `Bearer ${token}` } };
}

async function call(path, init) {
  const res = await fetch(path, authorized(init));
  if (res.status === 401) {
    const body = await res.json().catch(() => null);
    const message = body?.error?.message || 'the inspector refused its secret';
    problem(`${message}. The secret changes each time tunn starts: open the Inspect URL it printed last.`);
    throw new Unauthorized(message);
  }
  return res;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

async function api(path, init) {
  const res = await call(path, init);
  const body = res.headers.get('content-type')?.startsWith('application/json') ? await res.json() : null;
  if (!res.ok) throw new Error(body?.error?.message || `HTTP ${res.status}`);
  return body;
}

function filters() {
  const f = new FormData($('#filters'));
  return { status: f.get('status'), method: f.get('method'), path: f.get('path'), visitor: f.get('visitor') };
}

function matches(s, f) {
  if (f.status && !(s.status !== null && String(s.status)[0] === f.status[0])) return false;
  if (f.method && s.method !== f.method) return false;
  if (f.path && !s.path.toLowerCase().includes(f.path.toLowerCase())) return false;
  if (f.visitor && !s.visitor.toLowerCase().includes(f.visitor.toLowerCase())) return false;
  return true;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function row(s) {
  const status = s.status === null ? (s.state === 'aborted' ? 'aborted' : '…') : String(s.status);
  const tr = el('tr', { 'data-id': String(s.id), onclick: () => show(s.id) },
    el('td', {}, new Date(s.time).toLocaleTimeString()),
    el('td', { class: 'visitor' }, s.visitor),
    el('td', {}, s.clientIp),
    el('td', { class: 'method' }, s.method),
    el('td', { class: 'path', title: s.path }, s.path, s.replayOf !== null ? el('span', { class: 'tag' }, `replay of #${s.replayOf}`) : null, s.websocket ? el('span', { class: 'tag' }, 'WebSocket') : null),
    el('td', { class: `status s${status[0]}` }, status),
    el('td', {}, s.durationMs === null ? '' : `${s.durationMs.toFixed(1)} ms`),
    el('td', {}, `${bytes(s.requestBytes)} / ${bytes(s.responseBytes)}`));
  if (s.id === selected) tr.classList.add('selected');
  return tr;
}

function upsert(s, prepend) {
  const old = rows.get(s.id);
  const visible = matches(s, filters());
  if (!visible) {
    old?.remove();
    rows.delete(s.id);
  } else {
    const tr = row(s);
    if (old) old.replaceWith(tr);
    else if (prepend) $('#requests tbody').prepend(tr);
    else $('#requests tbody').append(tr);
    rows.set(s.id, tr);
  }
  $('#empty').hidden = rows.size > 0;
}

async function reload() {
  const list = await api('/api/requests');
  $('#requests tbody').replaceChildren();
  rows.clear();
  for (const s of list.requests) upsert(s, false);
  $('#empty').hidden = rows.size > 0;
}

function headersTable(headers) {
  return el('table', { class: 'headers' }, el('tbody', {}, ...headers.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, v)))));
}

function headersBlock(headers) {
  return el('details', { class: 'heads' }, el('summary', {}, `${headers.length} headers`), headersTable(headers));
}

function bodyView(d, which) {
  const b = d[`${which}Body`];
  const out = el('div', { class: `body ${which}` });
  const url = `/api/requests/${d.id}/body/${which}`;
  const v = b.view;
  if (v.kind === 'empty') out.append(el('p', { class: 'empty' }, 'no body'));
  else if (v.kind === 'json') out.append(el('pre', { class: 'json' }, v.text));
  else if (v.kind === 'form') out.append(headersTable(v.fields));
  else if (v.kind === 'text') out.append(el('pre', { class: 'text' }, v.text));
  else if (v.kind === 'image') {
    const img = el('img', { class: 'body', alt: `${which} image (${v.type})` });
    void blobUrl(`${url}?as=image`).then((u) => { img.src = u; }, (err) => img.replaceWith(el('p', { class: 'error' }, err.message)));
    out.append(img);
  }
  else out.append(el('pre', { class: 'hex' }, v.hex));
  if (b.truncated) out.append(el('p', { class: 'note' }, `truncated: ${bytes(b.kept)} of ${bytes(b.size)} kept`));
  if (b.encoding) out.append(el('p', { class: 'note' }, `shown as received (${b.encoding} not decoded)`));
  if (v.kind !== 'empty') out.append(el('button', { type: 'button', class: 'download', onclick: () => void download(url, `request-${d.id}-${which}.bin`) }, 'Download'));
  return out;
}

// Bytes the API serves with the secret, as an object URL the page can show or save.
async function blobUrl(path) {
  const res = await call(path);
  if (!res.ok) throw new Error((await res.json().catch(() => null))?.error?.message || `HTTP ${res.status}`);
  return URL.createObjectURL(await res.blob());
}

async function download(path, name) {
  try {
    const u = await blobUrl(path);
    const a = el('a', { href: u, download: name, hidden: '' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(u), 60_000);
  } catch (err) {
    problem(err.message);
  }
}

function editForm(d) {
  const form = el('form', { class: 'edit', hidden: '' },
    el('label', {}, 'Method ', el('input', { name: 'method', value: d.method })),
    el('label', {}, 'Path ', el('input', { name: 'path', value: d.path })),
    el('label', {}, 'Headers (one "Name: value" a line)'),
    el('textarea', { name: 'headers' }),
    el('label', {}, 'Body (leave unchanged to send the original bytes)'),
    el('textarea', { name: 'body' }),
    el('button', { type: 'submit' }, 'Send edited replay'));
  form.elements.headers.value = d.requestHeaders.map(([k, v]) => `${k}: ${v}`).join('\n');
  const original = d.requestBody.view.kind === 'json' || d.requestBody.view.kind === 'text' ? d.requestBody.view.text : d.requestBody.view.kind === 'form' ? new URLSearchParams(d.requestBody.view.fields).toString() : '';
  form.elements.body.value = original;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = form.elements;
    const headers = f.headers.value.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).trim(), l.slice(i + 1).trim()];
    });
    const edit = { method: f.method.value, path: f.path.value, headers };
    if (f.body.value !== original) edit.body = f.body.value;
    void doReplay(d.id, edit);
  });
  return form;
}

async function doReplay(id, edit) {
  const msg = $('#replay-result');
  try {
    const s = await api(`/api/requests/${id}/replay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(edit || {}) });
    msg.textContent = `Replayed as #${s.id}: ${s.status ?? s.state}`;
    msg.className = '';
  } catch (err) {
    msg.textContent = err.message;
    msg.className = 'error';
  }
}

async function show(id) {
  selected = id;
  for (const [rid, tr] of rows) tr.classList.toggle('selected', rid === id);
  const pane = $('#detail');
  pane.hidden = false;
  let d;
  try {
    d = await api(`/api/requests/${id}`);
  } catch (err) {
    pane.replaceChildren(el('p', { class: 'error' }, err.message));
    return;
  }
  const form = editForm(d);
  pane.replaceChildren(...[
    el('h2', {}, `${d.method} ${d.path}`),
    el('p', {}, `${d.status ?? d.state} ${d.reason} · ${d.visitor} from ${d.clientIp} · ${d.tunnel}`, d.replayOf !== null ? el('span', { class: 'tag' }, `replay of #${d.replayOf}`) : null),
    el('div', { class: 'actions' },
      el('button', { type: 'button', id: 'replay', onclick: () => void doReplay(d.id) }, 'Replay'),
      el('button', { type: 'button', id: 'edit-replay', onclick: () => { form.hidden = !form.hidden; } }, 'Edit and replay')),
    el('p', { id: 'replay-result', role: 'status' }),
    form,
    el('h3', {}, 'Request'), headersBlock(d.requestHeaders), bodyView(d, 'request'),
    el('h3', {}, `Response ${d.status ?? ''}`), headersBlock(d.responseHeaders), bodyView(d, 'response'),
    d.websocket ? el('h3', {}, 'WebSocket messages') : null,
    d.websocket ? el('table', { class: 'headers ws' }, el('tbody', {}, ...d.websocketMessages.map((m) => el('tr', {}, el('td', {}, m.direction === 'to-target' ? '→' : '←'), el('td', {}, m.opcode), el('td', {}, m.data))))) : null,
  ].filter(Boolean));
}

function onEvent(type, data) {
  if (type === 'add' || type === 'update') upsert(JSON.parse(data), true);
  else if (type === 'clear') {
    $('#requests tbody').replaceChildren();
    rows.clear();
    $('#empty').hidden = false;
  }
}

// Live events: server-sent events read from a streaming fetch (EventSource cannot send the
// Authorization header).
async function stream() {
  const res = await call('/api/events', { headers: { accept: 'text/event-stream' } });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
  $('#live').textContent = 'live';
  void reload().catch((err) => problem(err.message));
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let type = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) type = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      onEvent(type, data);
    }
  }
}

function connect() {
  stream().then(
    () => retry(),
    (err) => {
      if (err instanceof Unauthorized) $('#live').textContent = 'not connected';
      else retry();
    },
  );
}

function retry() {
  $('#live').textContent = 'reconnecting…';
  setTimeout(connect, 2000);
}

$('#filters').addEventListener('input', () => void reload().catch((err) => problem(err.message)));
$('#filters').addEventListener('submit', (ev) => ev.preventDefault());
$('#clear').addEventListener('click', () => void api('/api/requests', { method: 'DELETE' }).catch((err) => problem(err.message)));
if (token) connect();
else {
  $('#live').textContent = 'not connected';
  problem('This page needs the inspector\'s secret: open the Inspect URL tunn printed (it ends in #token=…).');
}
