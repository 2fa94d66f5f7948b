//! `rest-standin`: runs the local stand-in for PostgREST (see the library
//! documentation). Dev tooling only; production uses Supabase's PostgREST.

use std::net::SocketAddr;
use std::process::ExitCode;

use rest_standin::gateway::ApiKeys;
use rest_standin::{serve, Settings};

const USAGE: &str = "\
usage: rest-standin --listen 127.0.0.1:54321 \\
         --db-url postgres://authenticator:PASS@127.0.0.1:54322/postgres \\
         --schemas public,platform,analytics --jwt-secret SECRET \\
         [--anon-role anon] [--pool-size 8] [--jwks-file PATH] \\
         [--anon-key JWT] [--service-role-key JWT] \\
         [--publishable-key sb_publishable_...] [--secret-key sb_secret_...]

--jwt-secret      the legacy HS256 secret: verifies tokens, signs the ones
                  the gateway makes for sb_ keys
--jwks-file       the JSON Web Key Set served at /auth/v1/.well-known/jwks.json;
                  its ES256/RS256 keys verify user tokens (read on every use)
--anon-key, --service-role-key, --publishable-key, --secret-key
                  the project's API keys. With none given, any non-empty
                  apikey passes the gateway; with any given, the apikey must
                  be one of them (else 401 \"Invalid API key\"). Without an
                  Authorization header, a legacy key is sent as the bearer
                  token, a publishable key runs as the anon role and a secret
                  key as service_role.

Each flag may come from the environment instead: REST_STANDIN_LISTEN,
REST_STANDIN_DB_URL, REST_STANDIN_SCHEMAS, REST_STANDIN_JWT_SECRET,
REST_STANDIN_ANON_ROLE, REST_STANDIN_POOL_SIZE, REST_STANDIN_JWKS_FILE,
REST_STANDIN_ANON_KEY, REST_STANDIN_SERVICE_ROLE_KEY,
REST_STANDIN_PUBLISHABLE_KEY, REST_STANDIN_SECRET_KEY. A flag wins over the
environment.";

fn main() -> ExitCode {
    let settings = match parse(std::env::args().skip(1), |name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("rest-standin: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rest-standin: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", settings.listen))?;
        let address = listener.local_addr()?;
        println!("rest-standin (a stand-in for PostgREST) listening on http://{address}/rest/v1");
        serve(settings, listener).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rest-standin: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Flags first, then the environment, then defaults for the optional ones.
fn parse(
    args: impl Iterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, String> {
    let mut listen = None;
    let mut db_url = None;
    let mut schemas = None;
    let mut jwt_secret = None;
    let mut anon_role = None;
    let mut pool_size = None;
    let mut jwks_file = None;
    let mut anon_key = None;
    let mut service_role_key = None;
    let mut publishable_key = None;
    let mut secret_key = None;
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        // Both `--flag value` and `--flag=value`.
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (flag.clone(), None),
        };
        if name == "--help" || name == "-h" {
            return Err("help requested".to_owned());
        }
        let slot = match name.as_str() {
            "--listen" => &mut listen,
            "--db-url" => &mut db_url,
            "--schemas" => &mut schemas,
            "--jwt-secret" => &mut jwt_secret,
            "--anon-role" => &mut anon_role,
            "--pool-size" => &mut pool_size,
            "--jwks-file" => &mut jwks_file,
            "--anon-key" => &mut anon_key,
            "--service-role-key" => &mut service_role_key,
            "--publishable-key" => &mut publishable_key,
            "--secret-key" => &mut secret_key,
            other => return Err(format!("unknown argument {other:?}")),
        };
        let value = match inline {
            Some(value) => value,
            None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        *slot = Some(value);
    }
    let required = |value: Option<String>, flag: &str, var: &str| {
        value
            .or_else(|| env(var))
            .ok_or_else(|| format!("missing {flag} (or {var})"))
    };
    let listen = required(listen, "--listen", "REST_STANDIN_LISTEN")?;
    let listen: SocketAddr = listen
        .parse()
        .map_err(|_| format!("--listen {listen:?} is not an address like 127.0.0.1:54321"))?;
    let db_url = required(db_url, "--db-url", "REST_STANDIN_DB_URL")?;
    let schemas: Vec<String> = required(schemas, "--schemas", "REST_STANDIN_SCHEMAS")?
        .split(',')
        .map(|schema| schema.trim().to_owned())
        .filter(|schema| !schema.is_empty())
        .collect();
    if schemas.is_empty() {
        return Err("--schemas names no schema".to_owned());
    }
    let jwt_secret = required(jwt_secret, "--jwt-secret", "REST_STANDIN_JWT_SECRET")?;
    let anon_role = anon_role
        .or_else(|| env("REST_STANDIN_ANON_ROLE"))
        .unwrap_or_else(|| "anon".to_owned());
    let pool_size = match pool_size.or_else(|| env("REST_STANDIN_POOL_SIZE")) {
        None => 8,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|size| *size > 0)
            .ok_or_else(|| format!("--pool-size {text:?} is not a positive number"))?,
    };
    let jwks_file = jwks_file
        .or_else(|| env("REST_STANDIN_JWKS_FILE"))
        .map(std::path::PathBuf::from);
    // Each key is checked for its kind, so a key given to the wrong flag
    // (which would make the gateway run it as the wrong role) is refused.
    let jwt_key = |value: Option<String>, flag: &str, var: &str| {
        value
            .or_else(|| env(var))
            .map(|key| {
                if key.split('.').count() == 3 {
                    Ok(key)
                } else {
                    Err(format!("{flag} is not a JWT (the legacy API keys are)"))
                }
            })
            .transpose()
    };
    let opaque_key = |value: Option<String>, flag: &str, var: &str, prefix: &str| {
        value
            .or_else(|| env(var))
            .map(|key| {
                if key.len() > prefix.len() && key.starts_with(prefix) {
                    Ok(key)
                } else {
                    Err(format!("{flag} does not start with {prefix}"))
                }
            })
            .transpose()
    };
    let api_keys = ApiKeys {
        anon: jwt_key(anon_key, "--anon-key", "REST_STANDIN_ANON_KEY")?,
        service_role: jwt_key(
            service_role_key,
            "--service-role-key",
            "REST_STANDIN_SERVICE_ROLE_KEY",
        )?,
        publishable: opaque_key(
            publishable_key,
            "--publishable-key",
            "REST_STANDIN_PUBLISHABLE_KEY",
            "sb_publishable_",
        )?,
        secret: opaque_key(
            secret_key,
            "--secret-key",
            "REST_STANDIN_SECRET_KEY",
            "sb_secret_",
        )?,
    };
    Ok(Settings {
        listen,
        db_url,
        schemas,
        jwt_secret,
        anon_role,
        pool_size,
        api_keys,
        jwks_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every required setting, as flags.
    const REQUIRED: [&str; 8] = [
        "--listen",
        "127.0.0.1:1",
        "--db-url",
        "x",
        "--schemas",
        "a",
        "--jwt-secret",
        "s",
    ];

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|arg| arg.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn flags_win_over_environment_and_defaults_fill_the_rest() {
        let env = |name: &str| match name {
            "REST_STANDIN_LISTEN" => Some("127.0.0.1:1".to_owned()),
            "REST_STANDIN_DB_URL" => Some("postgres://env".to_owned()),
            "REST_STANDIN_SCHEMAS" => Some("public, platform".to_owned()),
            "REST_STANDIN_JWT_SECRET" => Some("env-secret".to_owned()),
            _ => None,
        };
        let settings = parse(args(&["--listen", "127.0.0.1:54321", "--pool-size=3"]), env)
            .expect("valid settings");
        assert_eq!(settings.listen, "127.0.0.1:54321".parse().unwrap());
        assert_eq!(settings.db_url, "postgres://env");
        assert_eq!(settings.schemas, vec!["public", "platform"]);
        assert_eq!(settings.jwt_secret, "env-secret");
        assert_eq!(settings.anon_role, "anon");
        assert_eq!(settings.pool_size, 3);
        assert_eq!(settings.api_keys, ApiKeys::default());
    }

    #[test]
    fn api_keys_come_from_flags_or_environment_and_are_checked() {
        let base = REQUIRED;
        let env = |name: &str| match name {
            "REST_STANDIN_SERVICE_ROLE_KEY" => Some("h.service.s".to_owned()),
            "REST_STANDIN_SECRET_KEY" => Some("sb_secret_fromenv".to_owned()),
            _ => None,
        };
        let mut list = base.to_vec();
        list.extend([
            "--anon-key",
            "h.anon.s",
            "--publishable-key=sb_publishable_p",
        ]);
        let keys = parse(args(&list), env).expect("valid settings").api_keys;
        assert_eq!(
            keys,
            ApiKeys {
                anon: Some("h.anon.s".into()),
                service_role: Some("h.service.s".into()),
                publishable: Some("sb_publishable_p".into()),
                secret: Some("sb_secret_fromenv".into()),
            }
        );
        let none = |_: &str| None;
        let cases: &[(&[&str], &str)] = &[
            (
                &["--anon-key", "sb_publishable_p"],
                "--anon-key is not a JWT",
            ),
            (
                &["--service-role-key", ""],
                "--service-role-key is not a JWT",
            ),
            (
                &["--publishable-key", "sb_secret_s"],
                "does not start with sb_publishable_",
            ),
            (
                &["--secret-key", "sb_secret_"],
                "does not start with sb_secret_",
            ),
            (
                &["--secret-key", "h.jwt.s"],
                "does not start with sb_secret_",
            ),
        ];
        for (extra, expected) in cases {
            let mut list = base.to_vec();
            list.extend_from_slice(extra);
            let error = parse(args(&list), none).err().expect("an error");
            assert!(error.contains(expected), "{extra:?}: {error}");
        }
    }

    #[test]
    fn missing_or_bad_values_are_reported() {
        let none = |_: &str| None;
        let zero_pool = [&REQUIRED[..], &["--pool-size", "0"]].concat();
        let cases: &[(&[&str], &str)] = &[
            (&[], "missing --listen"),
            (&["--listen", "nope"], "is not an address"),
            (&["--listen"], "--listen needs a value"),
            (&["--bogus", "1"], "unknown argument"),
            (&zero_pool, "is not a positive number"),
        ];
        for (list, expected) in cases {
            let error = parse(args(list), none).err().expect("an error");
            assert!(error.contains(expected), "{list:?}: {error}");
        }
    }
}
