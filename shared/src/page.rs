//! The usage page (`web/`): what the Worker itself answers for it.
//!
//! The page's script and stylesheet are static assets (wrangler `[assets]`,
//! built into `web/dist` by `cargo xtask build-worker`), served before the
//! Worker runs. Two paths are the Worker's own, outside the API's route
//! table (they are not API endpoints and have no place in the OpenAPI
//! document): `GET /`, the HTML, answered here so its Content-Security-Policy
//! can name the deployment's Supabase URL, and `GET /config.json`, what the
//! page needs to know about the deployment to sign in.

use crate::config::Config;

/// The page's HTML: it holds no data, only the skeleton the script fills
/// in. Not compiled into the Worker: `cargo xtask build-worker` writes it
/// into the static assets at [`INDEX_ASSET`], where the Worker reads it.
pub const INDEX_HTML: &str = include_str!("../../web/index.html");

/// Where the HTML sits in the static assets (`web/dist`). `wrangler.toml`
/// runs the Worker first on this path, as on `/`, so the file is never
/// served without the Worker's headers.
pub const INDEX_ASSET: &str = "/index.html";

/// A path the Worker answers for the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRoute {
    Index,
    Config,
}

/// The page route `method` and `path` reach, if any; every other request
/// goes on to the API's router.
pub fn route(method: &str, path: &str) -> Option<PageRoute> {
    if !matches!(method, "GET" | "HEAD") {
        return None;
    }
    match path {
        "/" | "/index.html" => Some(PageRoute::Index),
        "/config.json" => Some(PageRoute::Config),
        _ => None,
    }
}

/// The page's Content-Security-Policy: scripts, styles and images from its
/// own origin only, and calls only to its own origin (the API) and the
/// Supabase project (Supabase Auth, through supabase-js).
pub fn content_security_policy(supabase_url: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {supabase_url}; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// Headers of every page answer besides its content type.
pub fn security_headers(supabase_url: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "content-security-policy",
            content_security_policy(supabase_url),
        ),
        ("x-content-type-options", "nosniff".into()),
        ("referrer-policy", "no-referrer".into()),
        // The HTML is tiny and names assets by fixed paths: always revalidate,
        // so a deployment's new script is never paired with an old page.
        ("cache-control", "no-cache".into()),
    ]
}

/// `GET /config.json`: the Supabase project the page signs in with. The
/// key is the project's public one (legacy `anon` or publishable), meant
/// for browsers; the secret keys never leave the Worker.
pub fn client_config(config: &Config) -> serde_json::Value {
    serde_json::json!({
        "supabase_url": config.supabase_url,
        "supabase_key": config.anon_key.value(),
        "local_sign_in": config.local_sign_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_of_the_page_paths_are_page_routes() {
        let cases = [
            ("GET", "/", Some(PageRoute::Index)),
            ("HEAD", "/", Some(PageRoute::Index)),
            ("GET", "/index.html", Some(PageRoute::Index)),
            ("GET", "/config.json", Some(PageRoute::Config)),
            ("POST", "/", None),
            ("DELETE", "/config.json", None),
            ("GET", "/health", None),
            ("GET", "/v1/me", None),
            ("GET", "/v1/openapi.json", None),
            ("GET", "/auth/hooks/db-user-insert", None),
            ("GET", "/config.json/x", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn no_page_path_is_an_api_route() {
        for (_, pattern, _) in crate::routes::ROUTES {
            assert_eq!(route("GET", pattern), None, "{pattern}");
        }
    }

    #[test]
    fn the_policy_allows_only_the_own_origin_and_the_supabase_project() {
        let csp = content_security_policy("https://abc.supabase.co");
        let directive = |name: &str| {
            csp.split(';')
                .map(str::trim)
                .find(|d| d.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing from {csp}"))
                .to_string()
        };
        assert_eq!(directive("default-src"), "default-src 'none'");
        assert_eq!(directive("script-src"), "script-src 'self'");
        assert_eq!(directive("style-src"), "style-src 'self'");
        assert_eq!(
            directive("connect-src"),
            "connect-src 'self' https://abc.supabase.co"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
    }

    #[test]
    fn the_page_config_carries_the_public_key_and_never_the_secret_one() {
        use crate::supabase_keys::test_keys::{PUBLISHABLE, SECRET};
        let config = Config::from_lookup(|name| {
            match name {
                "SUPABASE_URL" => Some("https://abc.supabase.co"),
                "SUPABASE_ANON_KEY" => Some(PUBLISHABLE),
                "SUPABASE_SERVICE_ROLE_KEY" => Some(SECRET),
                "ALLOWED_ORIGINS" => Some("https://app.example.com"),
                _ => None,
            }
            .map(str::to_string)
        })
        .unwrap();
        let page = client_config(&config);
        assert_eq!(
            page,
            serde_json::json!({
                "supabase_url": "https://abc.supabase.co",
                "supabase_key": PUBLISHABLE,
                "local_sign_in": false,
            })
        );
        assert!(!page.to_string().contains(SECRET));
    }

    #[test]
    fn the_html_loads_only_its_own_assets() {
        assert!(INDEX_HTML.contains(r#"src="/assets/app.js""#));
        assert!(INDEX_HTML.contains(r#"href="/assets/app.css""#));
        // An inline script or style would be refused by the policy.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains("style=\""));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
    }
}
