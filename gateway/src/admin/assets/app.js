// Switchboard admin UI: one page, a tab per view, each filled from the JSON API under /api.
// Everything from the API is inserted as text (never as HTML).
'use strict';

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function table(headers, rows) {
  return el('table', {}, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c))))));
}

function fillBody(tableEl, rows) {
  const body = tableEl.querySelector('tbody');
  body.replaceChildren(...rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c)))));
}

function duration(secs) {
  if (secs < 60) return secs + 's';
  if (secs < 3600) return Math.floor(secs / 60) + 'm ' + (secs % 60) + 's';
  return Math.floor(secs / 3600) + 'h ' + Math.floor((secs % 3600) / 60) + 'm';
}

function health(h) { return el('span', { class: 'health-' + h }, h); }

async function api(path, init) {
  const r = await fetch(path, Object.assign({ credentials: 'same-origin' }, init || {}));
  if (r.status === 401) { location.href = '/ui'; throw new Error('signed out'); }
  const body = await r.json();
  if (!r.ok) throw new Error((body.error && body.error.message) || ('HTTP ' + r.status));
  return body;
}

function showError(e) {
  const p = $('#error');
  p.textContent = e ? String(e.message || e) : '';
  p.hidden = !e;
}

const pages = {
  async overview() {
    const d = await api('/api/overview');
    $('#replica').textContent = 'replica ' + d.replica + (d.ready ? ' · ready' : ' · not ready');
    $('#overview-summary').textContent = 'Config version ' + d.version + ', loaded ' + d.loaded_at + '.';
    $('#overview-listeners').replaceChildren(...d.listeners.map((l) => el('div', { class: 'card listener' },
      el('h3', {}, 'Listener ', el('b', {}, l.name), ' ', el('span', { class: 'muted' },
        (l.address || l.bind) + (l.tls ? ' (TLS)' : ''))),
      table(['Route', 'Kind', 'Path', 'Policies'], l.routes.map((r) => [
        r.name, r.kind, r.path, r.policies.length ? r.policies.join(', ') : '—'])))));
  },

  async mcp() {
    const d = await api('/api/mcp');
    $('#mcp-routes').replaceChildren(...d.routes.map((r) => el('div', { class: 'card mcp-route' },
      el('h3', {}, 'Route ', el('b', {}, r.route), ' ', el('span', { class: 'muted' },
        'listener ' + r.listener + ', ' + r.path + ', ' + r.sessions + ' open session(s)')),
      r.tools_error ? el('p', { class: 'problem' }, 'tools/list: ' + r.tools_error) : null,
      table(['Target', 'Kind', 'Endpoint', 'Health', 'Tools', 'Tool calls'], r.targets.map((t) => [
        el('b', { class: 'target-name' }, t.name), t.kind,
        (t.endpoint || '') + (t.pid ? ' (pid ' + t.pid + ')' : ''),
        health(t.health),
        el('span', {}, t.tools.map((n) => el('span', { class: 'tag tool-name' }, n))),
        Object.keys(t.calls).length
          ? Object.entries(t.calls).map(([k, v]) => k + ': ' + v).join(', ') : '0',
      ])))));
  },

  async sessions() {
    const d = await api('/api/sessions');
    $('#sessions-note').textContent = 'Scope: ' + d.scope + ' (' + d.replica + '). ' + d.note;
    $('#sessions-count').textContent = String(d.mcp.count);
    fillBody($('#sessions-table'), d.mcp.sessions.map((s) => [
      el('span', { class: 'tag' }, s.id_prefix + '…'), s.principal || '—', duration(s.age),
      duration(s.idle), String(s.active), s.owner]));
    $('#a2a-count').textContent = String(d.a2a_tasks.length);
    fillBody($('#a2a-tasks'), d.a2a_tasks.map((t) => [
      el('span', { class: 'tag' }, t.id_prefix + '…'), t.route, t.state || '—', duration(t.age),
      duration(t.idle), t.replica]));
    $('#a2a-routes').replaceChildren(...d.a2a.map((a) => el('div', { class: 'card a2a-route' },
      el('h4', {}, 'Route ', el('b', {}, a.route), ' ', el('span', { class: 'muted' }, a.path)),
      el('p', {}, 'Calls: ', Object.entries(a.requests).map(([k, v]) => k + ' ' + v).join(', ') || 'none',
        ' · Task states: ', Object.entries(a.task_states).map(([k, v]) => k + ' ' + v).join(', ') || 'none'))));
  },

  async llm() {
    const d = await api('/api/llm');
    $('#llm-models').replaceChildren(...d.routes.map((r) => el('div', { class: 'card llm-route' },
      el('h3', {}, 'Route ', el('b', {}, r.route), ' ', el('span', { class: 'muted' },
        'listener ' + r.listener + ', ' + r.path)),
      table(['Model', 'Provider', 'Kind', 'Provider model', 'Health', 'Latency EWMA'],
        r.models.flatMap((m) => m.providers.map((p, i) => [
          i === 0 ? el('b', { class: 'model-name' }, m.name) : '', p.name, p.kind, p.model,
          health(p.health), p.latency_ms ? p.latency_ms.toFixed(1) + ' ms' : '—']))))));
    fillBody($('#llm-usage'), d.usage.map((u) => [u.provider, u.model,
      String(u.tokens.requests || 0), String(u.tokens.input || 0), String(u.tokens.output || 0)]));
    fillBody($('#llm-cost'), d.cost.map((c) => [c.provider, c.model, c.usd.toFixed(6)]));
  },

  async config() {
    const d = await api('/api/config');
    $('#config-summary').textContent = 'Version ' + d.version + ', loaded ' + d.loaded_at +
      (d.source ? ' from ' + d.source : '') + '.';
    $('#config-reload-error').textContent = d.last_reload_error
      ? JSON.stringify(d.last_reload_error, null, 2) : 'none';
    $('#config-json').textContent = JSON.stringify(d.config, null, 2);
  },

  async playground() {
    const [m, l] = await Promise.all([api('/api/mcp'), api('/api/llm')]);
    const mcpSel = $('#pg-mcp-route');
    mcpSel.replaceChildren(...m.routes.map((r) => el('option',
      { value: JSON.stringify({ listener: r.listener, route: r.route }) },
      r.listener + ' / ' + r.route + ' (' + r.path + ')')));
    const llmSel = $('#pg-llm-model');
    llmSel.replaceChildren(...l.routes.flatMap((r) => r.models.map((mo) => el('option',
      { value: JSON.stringify({ listener: r.listener, route: r.route, model: mo.name }) },
      mo.name + ' via ' + r.listener + ' / ' + r.route))));
  },
};

function credential() {
  const v = $('#pg-auth').value.trim();
  return v ? { authorization: v } : {};
}

async function mcpCall(method, params) {
  const target = JSON.parse($('#pg-mcp-route').value);
  return api('/api/playground/mcp', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(Object.assign({}, target, credential(), { method, params })),
  });
}

async function listTools() {
  const out = await mcpCall('tools/list', {});
  const tools = (out.reply && out.reply.result && out.reply.result.tools) || [];
  $('#pg-mcp-tool').replaceChildren(...tools.map((t) => el('option', { value: t.name }, t.name)));
  $('#pg-mcp-result').textContent = tools.length
    ? tools.length + ' tools listed' : JSON.stringify(out.reply, null, 2);
}

async function callTool() {
  let args;
  try { args = JSON.parse($('#pg-mcp-args').value || '{}'); } catch (e) {
    throw new Error('arguments are not JSON: ' + e.message);
  }
  $('#pg-mcp-result').textContent = 'calling…';
  const out = await mcpCall('tools/call', { name: $('#pg-mcp-tool').value, arguments: args });
  $('#pg-mcp-result').textContent = 'HTTP ' + out.status + '\n' + JSON.stringify(out.reply, null, 2);
}

// Reads the OpenAI SSE stream and appends each content delta as it arrives.
async function sendChat() {
  const target = JSON.parse($('#pg-llm-model').value);
  const out = $('#pg-llm-output');
  const status = $('#pg-llm-status');
  out.textContent = '';
  status.textContent = 'streaming…';
  status.dataset.state = 'streaming';
  const r = await fetch('/api/playground/chat', {
    method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(Object.assign({}, target, credential(),
      { messages: [{ role: 'user', content: $('#pg-llm-prompt').value }] })),
  });
  if (!r.ok || !r.body) {
    status.textContent = 'HTTP ' + r.status;
    status.dataset.state = 'error';
    out.textContent = await r.text();
    return;
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let usage = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') continue;
      let ev;
      try { ev = JSON.parse(data); } catch (e) { continue; }
      if (ev.error) { out.append(document.createTextNode('\n[error] ' + (ev.error.message || ''))); }
      const delta = ev.choices && ev.choices[0] && ev.choices[0].delta;
      if (delta && delta.content) out.append(document.createTextNode(delta.content));
      if (ev.usage) usage = ev.usage;
    }
  }
  status.textContent = 'done' + (usage ? ' · ' + usage.prompt_tokens + ' in / ' +
    usage.completion_tokens + ' out tokens' : '');
  status.dataset.state = 'done';
}

function guarded(f) {
  return () => f().then(() => showError(null), showError);
}

let current = null;
async function show(tab) {
  if (!pages[tab]) tab = 'overview';
  current = tab;
  for (const s of document.querySelectorAll('[data-page]')) s.hidden = s.dataset.page !== tab;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === tab);
  const section = $('#page-' + tab);
  section.dataset.loaded = 'false';
  try {
    await pages[tab]();
    showError(null);
  } catch (e) {
    showError(e);
  }
  section.dataset.loaded = 'true';
}

document.addEventListener('DOMContentLoaded', () => {
  window.addEventListener('hashchange', () => show(location.hash.slice(1)));
  for (const b of document.querySelectorAll('.refresh')) b.addEventListener('click', () => show(current));
  $('#pg-mcp-list').addEventListener('click', guarded(listTools));
  $('#pg-mcp-call').addEventListener('click', guarded(callTool));
  $('#pg-llm-send').addEventListener('click', guarded(sendChat));
  show(location.hash.slice(1) || 'overview');
});
