// The browser frontend's path to the usage API, with the real supabase-js:
// a client signed in with the user's access token, whose Functions client is
// pointed at the Worker (the Worker serves the API under /v1 where Supabase
// Edge Functions would be under /functions/v1). Records one usage event and
// reads the overview, then prints what it saw as one JSON line.
//
// Run by tests/tests/frontend_client.rs with CDS_WORKER_URL,
// CDS_SUPABASE_URL, CDS_ANON_KEY, USER_TOKEN and IDEMPOTENCY_KEY set.
import { createClient, FunctionsHttpError } from '@supabase/supabase-js';

const need = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const userToken = need('USER_TOKEN');
const supabase = createClient(need('CDS_SUPABASE_URL'), need('CDS_ANON_KEY'), {
  // Third-party auth style: the client sends this token as the bearer.
  accessToken: async () => userToken,
});
// `supabase.functions` builds its FunctionsClient from `functionsUrl`.
supabase.functionsUrl = new URL('v1', `${need('CDS_WORKER_URL')}/`);

async function invoke(name, options) {
  const { data, error, response } = await supabase.functions.invoke(name, options);
  if (error instanceof FunctionsHttpError) {
    return { status: error.context.status, error: await error.context.json() };
  }
  if (error) return { status: null, error: String(error) };
  return {
    status: response.status,
    replayed: response.headers.get('idempotent-replayed'),
    data,
  };
}

const event = { model: 'gpt-4o-mini', prompt_tokens: 12, completion_tokens: 8 };
const recorded = await invoke('usage', {
  body: event,
  headers: { 'Idempotency-Key': need('IDEMPOTENCY_KEY') },
});
const overview = await invoke('usage/overview', { method: 'GET' });
console.log(JSON.stringify({ recorded, overview }));
