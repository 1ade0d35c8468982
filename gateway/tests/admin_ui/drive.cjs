// Drives the admin UI in headless Chromium (playwright-core, the Debian `chromium` binary):
// signs in, opens every tab, checks it shows the running gateway's live data without console
// errors, uses the playground (a real tool call and a streamed chat), and saves a screenshot
// and the HTML of each page. Run by gateway/tests/admin_ui.rs, which starts the gateway.
//
// Environment: UI_ADMIN (admin base URL), UI_DATA (data listener base URL), UI_TOKEN
// (admin.token), UI_OUT (artifact directory), UI_CHROMIUM (the browser binary).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const admin = process.env.UI_ADMIN;
const data = process.env.UI_DATA;
const token = process.env.UI_TOKEN;
const out = process.env.UI_OUT;
const results = {};
let page = null;

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

// Opens an MCP session on the data listener, as any client would.
async function openMcpSession() {
  const r = await fetch(data + '/mcp', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
      protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'ui-test', version: '1' } } }),
  });
  check(r.ok, 'initialize answered ' + r.status);
  const sid = r.headers.get('mcp-session-id');
  check(sid, 'initialize gave a session id');
  await r.text();
  const n = await fetch(data + '/mcp', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream',
      'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  await n.text();
  return sid;
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-ui-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.UI_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] || await context.newPage();
  let consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));

  async function save(name) {
    await page.screenshot({ path: path.join(out, name + '.png'), fullPage: true });
    fs.writeFileSync(path.join(out, name + '.html'), await page.content());
  }

  // Sign in: without the cookie /ui is the login form (401); a wrong token is refused.
  const first = await page.goto(admin + '/ui');
  results.login_status = first.status();
  check(await page.locator('form#login').count() === 1, 'the login form is shown');
  await save('login');
  await page.fill('#token', 'not-the-token');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  check(await page.locator('#login-problem').count() === 1, 'a wrong token is refused');
  await page.fill('#token', token);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  check(await page.locator('#tabs').count() === 1, 'the UI is shown after signing in');
  const cookies = await context.cookies(admin);
  const c = cookies.find((k) => k.name === 'switchboard_admin');
  check(c && c.httpOnly && c.sameSite === 'Strict', 'the session cookie is HttpOnly and SameSite=Strict');
  check(!c.value.includes(token), 'the cookie does not hold the token');
  // The 401s of the sign-in are expected; from here on no console error is.
  consoleErrors = [];

  async function tab(name) {
    await page.click(`#tabs a[data-tab="${name}"]`);
    await page.waitForSelector(`#page-${name}[data-loaded="true"]`, { timeout: 15000 });
    const err = await page.locator('#error').isVisible();
    check(!err, name + ' page shows no error: ' + await page.locator('#error').textContent());
  }
  const texts = async (sel) => page.locator(sel).allTextContents();

  // Listeners and routes.
  await tab('overview');
  const overview = await page.locator('#overview-listeners').textContent();
  for (const w of ['public', 'tools', 'models', 'agent', '/mcp', '/v1']) check(overview.includes(w), 'overview shows ' + w);
  results.overview = true;
  await save('overview');

  // MCP targets: both targets up, their tools, call counts.
  await tab('mcp');
  const targets = await texts('.target-name');
  check(targets.includes('local') && targets.includes('remote'), 'MCP targets listed: ' + targets);
  const tools = await texts('.tool-name');
  check(tools.includes('local__echo') && tools.some((t) => t.startsWith('remote__')), 'tools listed: ' + tools);
  check(await page.locator('#mcp-routes .health-up').count() === 2, 'both targets are up');
  const localRow = await page.locator('#mcp-routes tr', { hasText: 'local__echo' }).textContent();
  check(localRow.includes('ok: 1'), 'the tool call made before is counted: ' + localRow);
  results.mcp_tools = tools.length;
  await save('mcp');

  // Playground: a real tool call and a streamed chat through the gateway's routes.
  await tab('playground');
  await page.click('#pg-mcp-list');
  await page.waitForFunction(() => document.querySelectorAll('#pg-mcp-tool option').length > 2);
  await page.selectOption('#pg-mcp-tool', 'local__echo');
  await page.fill('#pg-mcp-args', JSON.stringify({ text: 'hello from the UI test' }));
  await page.click('#pg-mcp-call');
  await page.waitForFunction(() => document.querySelector('#pg-mcp-result').textContent.includes('HTTP'));
  const toolResult = await page.locator('#pg-mcp-result').textContent();
  check(toolResult.includes('HTTP 200') && toolResult.includes('hello from the UI test'), 'tool result shown: ' + toolResult);
  results.tool_call = true;

  // Record every change of the chat output while the stream is open.
  await page.evaluate(() => {
    window.__updates = [];
    const outEl = document.querySelector('#pg-llm-output');
    new MutationObserver(() => {
      window.__updates.push({ len: outEl.textContent.length,
        state: document.querySelector('#pg-llm-status').dataset.state });
    }).observe(outEl, { childList: true, characterData: true, subtree: true });
  });
  await page.selectOption('#pg-llm-model', { label: 'smart via public / models' });
  await page.fill('#pg-llm-prompt', 'stream please');
  await page.click('#pg-llm-send');
  await page.waitForFunction(() => document.querySelector('#pg-llm-status').dataset.state === 'done', null, { timeout: 20000 });
  const updates = await page.evaluate(() => window.__updates);
  const streaming = updates.filter((u) => u.state === 'streaming' && u.len > 0);
  const lengths = new Set(streaming.map((u) => u.len));
  check(lengths.size >= 2, 'the chat text grew at least twice while streaming: ' + JSON.stringify(updates));
  const answer = await page.locator('#pg-llm-output').textContent();
  check(answer.includes('Mock reply'), 'the chat answer is shown: ' + answer);
  results.chat_updates = lengths.size;
  await save('playground');

  // LLM: model, providers, pool state, token usage (the chat above) and cost.
  await tab('llm');
  const models = await texts('.model-name');
  check(models.includes('smart') && models.includes('flaky'), 'models listed: ' + models);
  const llm = await page.locator('#page-llm').textContent();
  for (const w of ['primary', 'backup', 'gpt-4o', 'up']) check(llm.includes(w), 'llm page shows ' + w);
  const broken = await page.locator('#llm-models tr', { hasText: 'broken' }).textContent();
  check(broken.includes('ejected'), 'the failing provider shows as ejected: ' + broken);
  check(await page.locator('#llm-models .health-ejected').count() === 1, 'one provider ejected');
  check(await page.locator('#llm-usage tbody tr').count() >= 1, 'token usage shown');
  check(await page.locator('#llm-cost tbody tr').count() >= 1, 'cost shown');
  await save('llm');

  // Sessions: the count follows a client that opens a session.
  await tab('sessions');
  const before = Number(await page.locator('#sessions-count').textContent());
  await openMcpSession();
  await page.click('#page-sessions .refresh');
  await page.waitForFunction((b) => Number(document.querySelector('#sessions-count').textContent) === b + 1, before, { timeout: 10000 });
  check(await page.locator('#sessions-table tbody tr').count() === before + 1, 'session row shown');
  const sessions = await page.locator('#page-sessions').textContent();
  check(sessions.includes('this replica'), 'the sessions page says its scope');
  check((await page.locator('#a2a-routes').textContent()).includes('ok'), 'A2A calls shown');
  check(Number(await page.locator('#a2a-count').textContent()) >= 1, 'an A2A task is listed');
  const task = await page.locator('#a2a-tasks tbody').textContent();
  check(task.includes('completed') && task.includes('agent'), 'the A2A task, its route and state: ' + task);
  results.sessions = [before, before + 1];
  await save('sessions');

  // Config: redacted, and the last reload error.
  await tab('config');
  const cfg = await page.locator('#config-json').textContent();
  check(cfg.includes('<redacted>'), 'config shows redactions');
  const reloadError = await page.locator('#config-reload-error').textContent();
  check(reloadError.includes('bogus_key'), 'last reload error shown: ' + reloadError);
  await save('config');

  check(consoleErrors.length === 0, 'no console errors: ' + JSON.stringify(consoleErrors));
  // Sign out: the cookie is cleared and the UI asks for the token again.
  await Promise.all([page.waitForNavigation(), page.click('#logout button')]);
  check(await page.locator('form#login').count() === 1, 'signed out, the login form is back');
  const left = (await context.cookies(admin)).find((k) => k.name === 'switchboard_admin');
  check(!left, 'the session cookie is gone');
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
  console.log('UI-RESULT ' + JSON.stringify(results));
}

main().catch(async (e) => {
  console.error('UI-FAILED ' + (e && e.stack || e));
  if (page) {
    try {
      await page.screenshot({ path: path.join(out, 'failure.png'), fullPage: true });
      fs.writeFileSync(path.join(out, 'failure.html'), await page.content());
    } catch (_) { /* the page may be gone */ }
  }
  process.exit(1);
});
