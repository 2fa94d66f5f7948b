// The usage page in a real browser: Debian's Chromium, headless, driven by
// playwright-core. Signs in through the local sign-in link, reads what the
// page shows, creates and revokes an API key, checks the narrow layout, and
// saves screenshots; prints what it saw as one JSON line for
// tests/tests/usage_page.rs to judge.
//
// Environment: CDS_WORKER_URL, USER_TOKEN, ADMIN_TOKEN, GRANTEE_EMAIL (the
// user's, as the admin types it), DEFAULT_MODEL (one to choose), KEY_NAME,
// SCREENSHOT_DIR, and optionally CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';

const need = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const worker = need('CDS_WORKER_URL');
const keyName = need('KEY_NAME');
const shots = need('SCREENSHOT_DIR');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // The machine's network is closed: without these Chromium keeps trying
  // Google's services. Playwright gives each launch an empty profile.
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
// Waits until the page has shown everything; when it never does, says what
// it shows instead.
async function ready(page) {
  try {
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  } catch (e) {
    await page.screenshot({ path: `${shots}/usage-not-ready.png`, fullPage: true }).catch(() => {});
    const shown = await page
      .evaluate(() => [...document.querySelectorAll('#status, .error:not([hidden])')].map((el) => el.textContent))
      .catch((err) => [String(err)]);
    throw new Error(`the page never got ready: ${JSON.stringify({ shown, ...seen })}: ${e}`);
  }
}

const seen = { console_errors: [], failed_responses: [], requests_elsewhere: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const watch = (page) => {
    page.on('console', (m) => {
      // A refused call is logged by the browser without its URL; the
      // response listener below records it with the URL instead.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource: the server responded')) {
        seen.console_errors.push(m.text());
      }
    });
    page.on('response', (r) => {
      if (r.status() >= 400) seen.failed_responses.push(`${r.status()} ${new URL(r.url()).pathname}`);
    });
    page.on('pageerror', (e) => seen.console_errors.push(String(e)));
    page.on('request', (r) => {
      if (!r.url().startsWith(worker)) seen.requests_elsewhere.push(r.url());
    });
  };
  const page = await context.newPage();
  watch(page);

  await page.goto(`${worker}/#local_session=${need('USER_TOKEN')}`);
  await ready(page);
  // Navigation start to the balance and the chart shown, and to everything.
  const timings = () =>
    Object.fromEntries(
      ['cds-first-render', 'cds-ready'].map((m) => [m, performance.getEntriesByName(m)[0]?.startTime ?? null]),
    );
  const cold = await page.evaluate(timings);
  seen.first_render_ms = cold['cds-first-render'];
  seen.first_ready_ms = cold['cds-ready'];
  seen.admin_section_shown = await page.isVisible('#grant');
  seen.url_after_sign_in = page.url();
  seen.status = await page.textContent('#status');
  seen.balance = await page.evaluate(() =>
    Object.fromEntries(
      ['granted', 'used', 'reserved', 'available'].map((k) => [
        k,
        document.getElementById(`balance-${k}`).textContent,
      ]),
    ),
  );
  seen.series = JSON.parse(await page.getAttribute('#usage-chart', 'data-series'));
  seen.models_table = await page.$$eval('#usage-models tbody tr', (rows) =>
    rows.map((r) => [...r.cells].map((c) => c.textContent)),
  );
  seen.total_tokens = await page.textContent('#usage-total-tokens');
  // Every cost on the page, wherever it is shown.
  seen.costs = await page.evaluate(() => [
    ...[...document.querySelectorAll('#usage-models tbody tr, #events tbody tr')].map((r) => r.cells[3].textContent),
    document.getElementById('usage-total-cost').textContent,
  ]);
  seen.default_model_before = await page.textContent('#model-current');
  // EVENTS (GET /v1/usage/events, helper E): what the section shows.
  seen.events = {
    rows: await page.$$eval('#events tbody tr', (rows) => rows.length),
    error: (await page.isVisible('#events-error')) ? await page.textContent('#events-error') : null,
  };
  seen.unlabelled = await page.evaluate(() => [
    ...[...document.querySelectorAll('input, select')]
      .filter((el) => el.labels.length === 0)
      .map((el) => el.id || el.name),
    ...[...document.querySelectorAll('button')]
      .filter((b) => !(b.getAttribute('aria-label') || b.textContent.trim()))
      .map((b) => b.id || b.outerHTML),
  ]);

  // Keyboard: the key form is reached and submitted without a mouse.
  await page.focus('#key-name');
  await page.keyboard.type(keyName);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#key-secret:not([hidden])');
  seen.secret_shown = await page.textContent('#key-secret-value');
  const row = page.locator('#keys tbody tr', { hasText: keyName });
  await row.waitFor();
  seen.key_row = await row.evaluate((r) => ({
    id: r.dataset.keyId,
    cells: [...r.cells].map((c) => c.textContent),
  }));
  // The default model, chosen from the keyboard.
  await page.focus('#model-select');
  await page.selectOption('#model-select', need('DEFAULT_MODEL'));
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.locator('#model-saved', { hasText: 'Default model set to' }).waitFor();
  seen.default_model_after = await page.textContent('#model-current');
  // Pixels of the key's last cell (its Revoke button, or "revoked") past
  // the right edge of the table's box: a row the reader would have to
  // scroll sideways to act on.
  const revokeHidden = (p) =>
    p.evaluate((name) => {
      const row = [...document.querySelectorAll('#keys tbody tr')].find((r) => r.cells[0].textContent === name);
      if (!row) return null;
      const box = row.closest('.scroll').getBoundingClientRect();
      const last = row.cells[row.cells.length - 1].getBoundingClientRect();
      return Math.max(0, Math.round(last.right - box.right));
    }, keyName);
  seen.revoke_hidden_px = { desktop: await revokeHidden(page) };
  await page.screenshot({ path: `${shots}/usage-desktop.png`, fullPage: true });

  await page.getByRole('button', { name: `Revoke key ${keyName}` }).click();
  await page.locator('#keys tbody tr', { hasText: keyName }).getByText('revoked').waitFor();
  seen.key_revoked_shown = true;

  // The session persists: a new tab at 375 px opens signed in.
  const narrow = await context.newPage();
  watch(narrow);
  await narrow.setViewportSize({ width: 375, height: 812 });
  await narrow.goto(`${worker}/`);
  await ready(narrow);
  const warm = await narrow.evaluate(timings);
  seen.warm_render_ms = warm['cds-first-render'];
  seen.warm_ready_ms = warm['cds-ready'];
  seen.default_model_reopened = await narrow.textContent('#model-current');
  seen.revoke_hidden_px.narrow = await revokeHidden(narrow);
  seen.narrow_overflow_px = await narrow.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  await narrow.screenshot({ path: `${shots}/usage-narrow.png`, fullPage: true });

  // Signing out forgets the session.
  await narrow.click('#sign-out');
  await narrow.waitForSelector('#sign-in:not([hidden])');
  seen.signed_out_shows_sign_in = true;

  // An admin sees the grant form and grants by email; a refusal shows the
  // API's message.
  const admin = await context.newPage();
  watch(admin);
  await admin.goto(`${worker}/#local_session=${need('ADMIN_TOKEN')}`);
  await ready(admin);
  seen.admin_sees_grant = await admin.isVisible('#grant');
  const grant = async (who, amount) => {
    await admin.fill('#grant-user', who);
    await admin.fill('#grant-amount', String(amount));
    await admin.fill('#grant-reason', 'browser test');
    await admin.click('#grant-form button[type="submit"]');
  };
  await grant(`nobody-${Date.now()}@example.test`, 1);
  await admin.waitForSelector('#grant-error:not([hidden])');
  seen.grant_refusal_shown = await admin.textContent('#grant-error');
  await grant(need('GRANTEE_EMAIL'), 7);
  await admin.locator('#grant-done', { hasText: 'Granted' }).waitFor();
  seen.grant_done = await admin.textContent('#grant-done');
  seen.grant_error_hidden = !(await admin.isVisible('#grant-error'));
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
