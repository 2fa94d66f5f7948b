// The usage page: balance, tokens per day and model, recent events, API
// keys, the default model and (for admins) grants, all through the edge's
// API on this origin, signed in with Supabase Auth's client.
import type { GoTrueClient } from '@supabase/auth-js';
import {
  answer,
  ApiFailure,
  edgeClient,
  failure,
  type Overview,
  type ApiKey,
  type CreatedApiKey,
  type EdgeClient,
  type Model,
} from './api';
import { connect, forgetLocalSession, type PageConfig } from './auth';
import { formatCost, formatMoment, formatTokens } from './format';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el as T;
};


function show(id: string, visible: boolean): void {
  $(id).hidden = !visible;
}

/// Shows `error`'s message in the element `id`, or hides it when null.
function report(id: string, error: unknown): void {
  const el = $(id);
  if (error === null) {
    el.hidden = true;
    el.textContent = '';
    return;
  }
  el.textContent = error instanceof ApiFailure ? error.message : `Something went wrong: ${String(error)}`;
  el.hidden = false;
}

function cell(row: HTMLTableRowElement, text: string): HTMLTableCellElement {
  const td = row.insertCell();
  td.textContent = text;
  return td;
}

function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

let api: EdgeClient;
let auth: GoTrueClient;
// Chart.js is two thirds of the script. As a file of its own (index.html
// preloads it beside this one) it is fetched and compiled while the page
// waits for its configuration and the overview, instead of before them.
const chart = import('./chart');

let eventsBefore: string | null = null;
let accessToken: string | null = null;
// The default model as the overview last said, and whether the model list
// has arrived: the two load in parallel, and the select shows the current
// one once both are in.
let defaultModel: string | null = null;
let modelsLoaded = false;

/// A user id is a UUID; anything else in the grant form is taken for an email.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function main(): Promise<void> {
  let config: PageConfig;
  try {
    const response = await fetch('/config.json');
    if (!response.ok) throw failure(response.status, await response.json().catch(() => null));
    config = (await response.json()) as PageConfig;
  } catch (e) {
    report('sign-in-error', e);
    $('status').textContent = 'The page could not load its configuration.';
    return;
  }
  auth = connect(config);
  // The token every call sends, kept from the session and from each change
  // the client announces (a refresh included): asking the client for it per
  // call takes its session lock once per call, in turn, which held the
  // page's first four calls back behind one another.
  api = edgeClient(location.origin, async () => accessToken);
  wireForms(config);
  const { data } = await auth.getSession();
  accessToken = data.session?.access_token ?? null;
  if (data.session) {
    await signedIn(data.session.user.email ?? data.session.user.id);
  } else {
    signedOut(config);
  }
  auth.onAuthStateChange((event, session) => {
    accessToken = session?.access_token ?? null;
    if (event === 'SIGNED_OUT') signedOut(config);
    else if (event === 'SIGNED_IN' && session && $('app').hidden) {
      void signedIn(session.user.email ?? session.user.id);
    }
  });
}

function signedOut(config: PageConfig): void {
  $('status').textContent = 'Signed out.';
  show('app', false);
  show('who', false);
  show('sign-in', true);
  show('sign-in-local', config.local_sign_in);
}

async function signedIn(who: string): Promise<void> {
  show('sign-in', false);
  $('who-email').textContent = who;
  show('who', true);
  show('app', true);
  $('status').textContent = 'Loading your usage…';
  $('app').setAttribute('aria-busy', 'true');
  const to = new Date();
  const from = new Date(to.getTime() - 13 * 86_400_000);
  $<HTMLInputElement>('range-from').value = isoDay(from);
  $<HTMLInputElement>('range-to').value = isoDay(to);
  // The overview first, alone: the balance and the chart (the first render)
  // wait for it, and on a busy machine four calls at once made each answer
  // later. The other three start as soon as it is in, while the chart draws.
  let rest: Promise<unknown> = Promise.resolve();
  await loadOverview(() => {
    rest = Promise.all([loadEvents(false), loadKeys(), loadModels()]);
  });
  performance.mark('cds-first-render');
  await rest;
  $('app').removeAttribute('aria-busy');
  $('status').textContent = `Signed in as ${who}.`;
  performance.mark('cds-ready');
  document.body.dataset.ready = 'true';
}

/// The select shows the current default model once the list is in.
function showDefaultModel(): void {
  $('model-current').textContent = defaultModel
    ? `Your default model is ${defaultModel}.`
    : 'No default model is set.';
  const select = $<HTMLSelectElement>('model-select');
  if (modelsLoaded && defaultModel && [...select.options].some((o) => o.value === defaultModel)) {
    select.value = defaultModel;
  }
}

/// Shows the overview of the chosen range; `answered` runs once the answer
/// is in, before anything is drawn.
async function loadOverview(answered: () => void = () => {}): Promise<void> {
  const from = $<HTMLInputElement>('range-from').value;
  const to = $<HTMLInputElement>('range-to').value;
  try {
    let overview: Overview;
    try {
      overview = await answer(
        api.GET('/v1/usage/overview', { params: { query: { from, to } } }),
      );
    } finally {
      answered();
    }
    report('usage-error', null);
    report('balance-error', null);
    const b = overview.balance;
    $('balance-granted').textContent = formatTokens(b.granted);
    $('balance-used').textContent = formatTokens(b.used);
    $('balance-reserved').textContent = formatTokens(b.reserved);
    $('balance-available').textContent = formatTokens(b.available);
    show('grant', overview.role === 'admin');
    defaultModel = overview.default_model;
    showDefaultModel();
    const body = $<HTMLTableElement>('usage-models').tBodies[0];
    body.replaceChildren();
    for (const m of overview.by_model) {
      const row = body.insertRow();
      cell(row, m.model);
      cell(row, formatTokens(m.requests));
      cell(row, formatTokens(m.total_tokens));
      cell(row, formatCost(m.cost));
    }
    $('usage-total-requests').textContent = formatTokens(overview.totals.requests);
    $('usage-total-tokens').textContent = formatTokens(overview.totals.total_tokens);
    $('usage-total-cost').textContent = formatCost(overview.totals.cost);
    show('usage-empty', overview.by_model.length === 0);
    (await chart).drawUsage($<HTMLCanvasElement>('usage-chart'), overview);
  } catch (e) {
    report('usage-error', e);
    report('balance-error', e);
  }
}

// The caller's own events, newest first, a page at a time; a refusal shows
// in the section.
async function loadEvents(older: boolean): Promise<void> {
  const query = older && eventsBefore ? { limit: 20, before: eventsBefore } : { limit: 20 };
  try {
    const page = await answer(api.GET('/v1/usage/events', { params: { query } }));
    const rows = $<HTMLTableElement>('events').tBodies[0];
    if (!older) rows.replaceChildren();
    for (const e of page.events) {
      const row = rows.insertRow();
      cell(row, formatMoment(e.created_at));
      cell(row, e.model);
      cell(row, `${formatTokens(e.total_tokens)} (${formatTokens(e.prompt_tokens)} + ${formatTokens(e.completion_tokens)})`);
      cell(row, formatCost(e.cost));
    }
    eventsBefore = page.next_before;
    show('events-more', eventsBefore !== null);
    show('events-empty', rows.rows.length === 0);
    report('events-error', null);
  } catch (e) {
    report('events-error', e);
  }
}

async function loadKeys(): Promise<void> {
  try {
    const { api_keys: keys } = await answer<{ api_keys: ApiKey[] }>(api.GET('/v1/api-keys'));
    const body = $<HTMLTableElement>('keys').tBodies[0];
    body.replaceChildren();
    for (const key of keys) {
      const row = body.insertRow();
      row.dataset.keyId = key.id;
      cell(row, key.name);
      cell(row, key.prefix);
      cell(row, key.scopes.join(', '));
      cell(row, formatMoment(key.created_at));
      cell(row, key.last_used_at ? formatMoment(key.last_used_at) : 'never');
      const actions = row.insertCell();
      if (key.revoked_at) {
        actions.textContent = 'revoked';
      } else {
        const revoke = document.createElement('button');
        revoke.type = 'button';
        revoke.textContent = 'Revoke';
        revoke.setAttribute('aria-label', `Revoke key ${key.name}`);
        revoke.addEventListener('click', () => void revokeKey(key.id, revoke));
        actions.append(revoke);
      }
    }
    show('keys-empty', keys.length === 0);
    report('keys-error', null);
  } catch (e) {
    report('keys-error', e);
  }
}

async function revokeKey(id: string, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  try {
    await answer(api.DELETE('/v1/api-keys/{id}', { params: { path: { id } } }));
    report('keys-error', null);
    await loadKeys();
  } catch (e) {
    button.disabled = false;
    report('keys-error', e);
  }
}

async function loadModels(): Promise<void> {
  try {
    const { models } = await answer<{ models: Model[] }>(api.GET('/v1/models'));
    const select = $<HTMLSelectElement>('model-select');
    select.replaceChildren(
      ...models.map((m) => new Option(`${m.name} (${m.provider})`, m.name)),
    );
    modelsLoaded = true;
    showDefaultModel();
    report('model-error', null);
  } catch (e) {
    report('model-error', e);
  }
}

function wireForms(config: PageConfig): void {
  $('sign-in-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target as HTMLFormElement);
    void (async () => {
      const { error } = await auth.signInWithPassword({
        email: String(form.get('email')),
        password: String(form.get('password')),
      });
      report('sign-in-error', error ? new ApiFailure(error.message, error.status ?? null, null) : null);
    })();
  });
  $('sign-out').addEventListener('click', () => {
    if (config.local_sign_in) forgetLocalSession();
    else void auth.signOut();
  });
  $('range-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void loadOverview();
  });
  $('events-more').addEventListener('click', () => void loadEvents(true));
  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const formEl = ev.target as HTMLFormElement;
    const form = new FormData(formEl);
    const scopes = form.getAll('scope').map(String) as ('usage:write' | 'usage:read')[];
    void (async () => {
      try {
        const created = await answer<CreatedApiKey>(
          api.POST('/v1/api-keys', { body: { name: String(form.get('name')), scopes } }),
        );
        $('key-secret-value').textContent = created.key;
        $('key-copied').textContent = '';
        show('key-secret', true);
        formEl.reset();
        report('keys-error', null);
        await loadKeys();
      } catch (e) {
        report('keys-error', e);
      }
    })();
  });
  $('key-copy').addEventListener('click', () => {
    const secret = $('key-secret-value').textContent ?? '';
    navigator.clipboard.writeText(secret).then(
      () => ($('key-copied').textContent = 'Copied.'),
      () => ($('key-copied').textContent = 'Copying was refused: select the key and copy it by hand.'),
    );
  });
  $('model-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const model = $<HTMLSelectElement>('model-select').value;
    void (async () => {
      try {
        await answer(api.PUT('/v1/me/default-model', { body: { model } }));
        defaultModel = model;
        showDefaultModel();
        $('model-saved').textContent = `Default model set to ${model}.`;
        report('model-error', null);
      } catch (e) {
        $('model-saved').textContent = '';
        report('model-error', e);
      }
    })();
  });
  $('grant-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const formEl = ev.target as HTMLFormElement;
    const form = new FormData(formEl);
    const grantee = String(form.get('grantee')).trim();
    const body = {
      ...(UUID.test(grantee) ? { user_id: grantee } : { email: grantee }),
      amount: Number(form.get('amount')),
      reason: String(form.get('reason')),
    };
    void (async () => {
      try {
        const granted = await answer(
          api.POST('/v1/admin/grants', {
            body,
            params: { header: { 'Idempotency-Key': crypto.randomUUID() } },
          }),
        );
        $('grant-done').textContent = `Granted ${formatTokens(body.amount)} tokens to ${grantee} (user ${granted.user_id}); their balance is now ${formatTokens(granted.balance)}.`;
        formEl.reset();
        report('grant-error', null);
      } catch (e) {
        $('grant-done').textContent = '';
        report('grant-error', e);
      }
    })();
  });
}

void main();
