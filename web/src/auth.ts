// Sign-in: Supabase's own auth client against the project's Supabase Auth.
// The Worker says which project (`GET /config.json`). `@supabase/auth-js`
// is the package `supabase-js` signs in with (`supabase.auth` is its
// client); taken alone it leaves out the Realtime, Storage and PostgREST
// clients the page has no use for, about 30 KiB of gzipped script.
//
// Locally there is no Supabase Auth. When the Worker allows it
// (`local_sign_in`, which it refuses unless its Supabase URL is on this
// machine), the link `cargo xtask dev` prints carries a locally signed access
// token in the fragment (`#local_session=<jwt>`, never sent to a server).
// The client's own `setSession` would check that token with Supabase Auth,
// so the page writes it, as a session, into the storage the client reads
// its session from; the client then serves it like any other, without
// refreshing it (it lives 24 hours).
import { GoTrueClient, type Session } from '@supabase/auth-js';

export interface PageConfig {
  supabase_url: string;
  supabase_key: string;
  local_sign_in: boolean;
}

const STORAGE_KEY = 'cds-auth';
const LOCAL_FRAGMENT = 'local_session';

export function connect(config: PageConfig): GoTrueClient {
  if (config.local_sign_in) adoptLocalSession();
  return new GoTrueClient({
    url: `${config.supabase_url}/auth/v1`,
    headers: { apikey: config.supabase_key },
    storageKey: STORAGE_KEY,
    persistSession: true,
    // Nothing can refresh a local token.
    autoRefreshToken: !config.local_sign_in,
    detectSessionInUrl: !config.local_sign_in,
  });
}

/// Moves a token from `#local_session=` into supabase-js's storage and takes
/// it out of the address bar (and so out of the history).
function adoptLocalSession(): void {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get(LOCAL_FRAGMENT);
  if (!token) return;
  history.replaceState(null, '', location.pathname + location.search);
  const session = sessionOf(token);
  if (session) localStorage.setItem(STORAGE_KEY, JSON.stringify(session));
}

function sessionOf(token: string): Session | null {
  let claims: Record<string, unknown>;
  try {
    const payload = token.split('.')[1] ?? '';
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    claims = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return null;
  }
  const exp = Number(claims.exp);
  const iat = Number(claims.iat);
  if (!Number.isFinite(exp) || typeof claims.sub !== 'string') return null;
  return {
    access_token: token,
    refresh_token: 'local',
    token_type: 'bearer',
    expires_at: exp,
    expires_in: Math.max(0, exp - Math.floor(Date.now() / 1000)),
    user: {
      id: claims.sub,
      aud: String(claims.aud ?? 'authenticated'),
      email: typeof claims.email === 'string' ? claims.email : undefined,
      role: String(claims.role ?? 'authenticated'),
      app_metadata: (claims.app_metadata as Session['user']['app_metadata']) ?? {},
      user_metadata: (claims.user_metadata as Session['user']['user_metadata']) ?? {},
      created_at: new Date((Number.isFinite(iat) ? iat : exp) * 1000).toISOString(),
    },
  };
}

/// Forgets a local session. There is no Supabase Auth to tell (the client's
/// `signOut` would call its logout endpoint), so the stored session is
/// removed and the page starts again, signed out.
export function forgetLocalSession(): void {
  localStorage.removeItem(STORAGE_KEY);
  location.reload();
}
