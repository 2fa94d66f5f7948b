//! What PostgREST reads from the catalog: the functions of an exposed schema
//! (from `pg_proc`) with its rule for choosing the one a request calls, and
//! the settings of the roles it impersonates.
//!
//! PostgREST keeps a schema cache and reloads it on a notification; the
//! stand-in keeps each schema's list for a few seconds and reloads it once
//! when a lookup misses, so functions added by a migration are seen at once.
//! The role settings are kept for as long and re-read with that reload.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

/// How long a schema's function list is trusted before it is read again.
const TTL: Duration = Duration::from_secs(5);

/// One input argument (IN, INOUT or VARIADIC) of a function.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Param {
    /// Empty for an unnamed argument.
    pub name: String,
    /// The declared type as `format_type` prints it (e.g. `integer`, `text[]`).
    #[serde(rename = "type")]
    pub type_sql: String,
    /// Whether the argument has a default and may be left out.
    pub has_default: bool,
}

/// What a function gives back, which decides the shape of the JSON answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// One value (scalar or array): answered as that JSON value.
    Scalar,
    /// One row of a composite type (or of OUT parameters): a JSON object.
    Composite,
    /// `SETOF`/`TABLE`: a JSON array.
    Set,
    /// `void`: answered 204 No Content, without a body (PostgREST v12).
    Void,
}

/// A function's volatility (`pg_proc.provolatile`), which decides whether
/// a POST may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volatility {
    Immutable,
    Stable,
    Volatile,
}

/// One function of an exposed schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub schema: String,
    pub name: String,
    pub params: Vec<Param>,
    pub returns: Returns,
    pub volatility: Volatility,
}

impl Function {
    /// A single unnamed `json`/`jsonb` argument: it receives the whole body.
    pub fn takes_whole_body(&self) -> bool {
        matches!(self.params.as_slice(),
            [only] if only.name.is_empty() && (only.type_sql == "json" || only.type_sql == "jsonb"))
    }

    /// Whether the argument names fit: every key names an argument, and every
    /// argument without a default is among the keys.
    fn accepts_keys(&self, keys: &BTreeSet<String>) -> bool {
        let names_cover_keys = keys
            .iter()
            .all(|key| self.params.iter().any(|param| &param.name == key));
        let required_present = self
            .params
            .iter()
            .filter(|param| !param.has_default)
            .all(|param| !param.name.is_empty() && keys.contains(&param.name));
        names_cover_keys && required_present
    }

    /// `schema.fn(a => integer, b => text)`, as PostgREST lists candidates.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|param| format!("{} => {}", param.name, param.type_sql))
            .collect();
        format!("{}.{}({})", self.schema, self.name, params.join(", "))
    }
}

/// The outcome of looking a function up by name and argument names.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution<'a> {
    /// Call with the named arguments.
    Named(&'a Function),
    /// Call with the whole body as its single json/jsonb argument.
    WholeBody(&'a Function),
    NotFound,
    Ambiguous(Vec<&'a Function>),
}

/// PostgREST's choice among the overloads named `name`: those whose argument
/// names fit `keys` win; only when none does, a function with a single
/// unnamed json/jsonb argument is taken (if `whole_body_allowed`, i.e. a POST
/// with a JSON body). More than one fitting function is ambiguous.
pub fn resolve<'a>(
    functions: &'a [Function],
    name: &str,
    keys: &BTreeSet<String>,
    whole_body_allowed: bool,
) -> Resolution<'a> {
    let overloads = functions.iter().filter(|function| function.name == name);
    let named: Vec<&Function> = overloads
        .clone()
        .filter(|function| function.accepts_keys(keys))
        .collect();
    match named.as_slice() {
        [one] => return Resolution::Named(one),
        [] => {}
        _ => return Resolution::Ambiguous(named),
    }
    if !whole_body_allowed {
        return Resolution::NotFound;
    }
    let whole: Vec<&Function> = overloads
        .filter(|function| function.takes_whole_body())
        .collect();
    match whole.as_slice() {
        [] => Resolution::NotFound,
        [one] => Resolution::WholeBody(one),
        _ => Resolution::Ambiguous(whole),
    }
}

/// Reads every function of `schema` from `pg_proc`. Procedures and aggregates
/// are left out, as PostgREST cannot call them. Only input arguments count:
/// modes `i` (IN), `b` (INOUT) and `v` (VARIADIC); a NULL `proargmodes` means
/// all are IN. The last `pronargdefaults` inputs have defaults.
const FUNCTIONS_SQL: &str = r#"
select p.proname::text as name,
       p.provolatile::text as volatility,
       p.proretset as returns_set,
       p.prorettype = 'pg_catalog.void'::regtype as returns_void,
       (t.typtype = 'c' or p.prorettype = 'pg_catalog.record'::regtype) as returns_row,
       coalesce((
         select json_agg(json_build_object(
                  'name', coalesce(a.name, ''),
                  'type', format_type(a.type, null),
                  'has_default', a.input_no > a.input_count - p.pronargdefaults)
                order by a.input_no)::text
         from (
           select arg.name, arg.type,
                  row_number() over (order by arg.ord) as input_no,
                  count(*) over () as input_count
           from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]),
                       p.proargmodes, p.proargnames)
                  with ordinality as arg(type, mode, name, ord)
           where arg.type is not null and coalesce(arg.mode, 'i') in ('i', 'b', 'v')
         ) as a
       ), '[]') as params
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
join pg_catalog.pg_type t on t.oid = p.prorettype
where n.nspname = $1 and p.prokind = 'f'
order by p.oid
"#;

/// Loads one schema's functions with the given connection.
pub async fn load_schema(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<Vec<Function>, LoadError> {
    let rows = client.query(FUNCTIONS_SQL, &[&schema]).await?;
    let mut functions = Vec::with_capacity(rows.len());
    for row in rows {
        let params_json: String = row.try_get("params")?;
        let params: Vec<Param> = serde_json::from_str(&params_json)?;
        let returns = if row.try_get("returns_set")? {
            Returns::Set
        } else if row.try_get("returns_void")? {
            Returns::Void
        } else if row.try_get("returns_row")? {
            Returns::Composite
        } else {
            Returns::Scalar
        };
        let volatility = match row.try_get::<_, String>("volatility")?.as_str() {
            "i" => Volatility::Immutable,
            "s" => Volatility::Stable,
            // `v`, and anything PostgreSQL might add: the permissive reading
            // would let a call write that PostgREST runs read-only, so only
            // the documented letters count as read-only.
            _ => Volatility::Volatile,
        };
        functions.push(Function {
            schema: schema.to_owned(),
            name: row.try_get("name")?,
            params,
            returns,
            volatility,
        });
    }
    Ok(functions)
}

/// The settings PostgREST applies for each role it may impersonate: role
/// name → `(setting, value)` pairs, in name order.
pub type RoleSettings = HashMap<String, Vec<(String, String)>>;

/// PostgREST's role settings query (v12): the per-role settings
/// (`ALTER ROLE r SET name = value`) of every role the connecting role
/// (`authenticator`) is a direct member of. As in PostgREST:
///
/// * only settings without a database (`pg_roles.rolconfig`); `ALTER ROLE r
///   IN DATABASE d SET ...` is ignored;
/// * values are lowercased;
/// * only settings the connecting role may set: context `user`, or, from
///   PostgreSQL 15, those it was granted `SET` on (`GRANT SET ON PARAMETER`);
///   superuser-only ones such as `session_preload_libraries` are skipped;
/// * `default_transaction_isolation` is not applied as a setting (PostgREST
///   uses it as the transaction's isolation level, which the stand-in does
///   not implement).
///
/// `search_path` is also left out: the stand-in sets it for the target
/// schema on every call.
fn role_settings_sql(server_version_num: i32) -> String {
    let granted = if server_version_num >= 150_000 {
        "or has_parameter_privilege(current_user::regrole::oid, ps.name, 'set')"
    } else {
        ""
    };
    format!(
        r#"
with role_setting as (
  select r.rolname::text as role, unnest(r.rolconfig) as setting
  from pg_catalog.pg_auth_members m
  join pg_catalog.pg_roles r on r.oid = m.roleid
  where m.member = current_user::regrole::oid
),
kv as (
  select role,
         substr(setting, 1, strpos(setting, '=') - 1) as name,
         lower(substr(setting, strpos(setting, '=') + 1)) as value
  from role_setting
)
select kv.role, kv.name, kv.value
from kv
join pg_catalog.pg_settings ps on ps.name = kv.name
where (ps.context = 'user' {granted})
  and kv.name not in ('default_transaction_isolation', 'search_path')
order by kv.role, kv.name
"#
    )
}

/// Loads the settings of the roles the connection's role may impersonate.
pub async fn load_role_settings(
    client: &tokio_postgres::Client,
) -> Result<RoleSettings, LoadError> {
    let version: i32 = client
        .query_one("select current_setting('server_version_num')::int", &[])
        .await?
        .try_get(0)?;
    let mut settings = RoleSettings::new();
    for row in client.query(&role_settings_sql(version), &[]).await? {
        settings
            .entry(row.try_get("role")?)
            .or_default()
            .push((row.try_get("name")?, row.try_get("value")?));
    }
    Ok(settings)
}

/// Reading the catalog failed: a database error, or a row that did not
/// decode (which would be a bug in the queries above).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error("unexpected catalog row: {0}")]
    Decode(#[from] serde_json::Error),
}

/// One schema's functions and when they were read.
struct Cached {
    loaded_at: Instant,
    functions: Arc<Vec<Function>>,
}

/// The role settings and when they were read.
struct CachedRoles {
    loaded_at: Instant,
    settings: Arc<RoleSettings>,
}

/// Per-schema function lists and the role settings, with a short lifetime.
#[derive(Default)]
pub struct Catalog {
    schemas: Mutex<HashMap<String, Cached>>,
    roles: Mutex<Option<CachedRoles>>,
}

impl Catalog {
    /// The schema's functions, from the cache while fresh unless `reload`.
    /// A reload also makes the next [`Catalog::role_settings`] read them
    /// again, as PostgREST's schema cache reload does.
    pub async fn functions(
        &self,
        client: &tokio_postgres::Client,
        schema: &str,
        reload: bool,
    ) -> Result<Arc<Vec<Function>>, LoadError> {
        if reload {
            *self.roles.lock().await = None;
        } else {
            let schemas = self.schemas.lock().await;
            if let Some(cached) = schemas.get(schema) {
                if cached.loaded_at.elapsed() < TTL {
                    return Ok(Arc::clone(&cached.functions));
                }
            }
        }
        // Loaded without holding the lock, so a slow load blocks no one; two
        // concurrent loads of one schema are harmless.
        let functions = Arc::new(load_schema(client, schema).await?);
        self.schemas.lock().await.insert(
            schema.to_owned(),
            Cached {
                loaded_at: Instant::now(),
                functions: Arc::clone(&functions),
            },
        );
        Ok(functions)
    }

    /// The role settings, from the cache while fresh.
    pub async fn role_settings(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<Arc<RoleSettings>, LoadError> {
        if let Some(cached) = self.roles.lock().await.as_ref() {
            if cached.loaded_at.elapsed() < TTL {
                return Ok(Arc::clone(&cached.settings));
            }
        }
        let settings = Arc::new(load_role_settings(client).await?);
        *self.roles.lock().await = Some(CachedRoles {
            loaded_at: Instant::now(),
            settings: Arc::clone(&settings),
        });
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, type_sql: &str, has_default: bool) -> Param {
        Param {
            name: name.into(),
            type_sql: type_sql.into(),
            has_default,
        }
    }

    fn function(name: &str, params: Vec<Param>) -> Function {
        Function {
            schema: "s".into(),
            name: name.into(),
            params,
            returns: Returns::Scalar,
            volatility: Volatility::Volatile,
        }
    }

    fn keys(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn resolution_rules() {
        let functions = vec![
            function(
                "add",
                vec![param("a", "integer", false), param("b", "integer", false)],
            ),
            function(
                "greet",
                vec![
                    param("name", "text", false),
                    param("greeting", "text", true),
                ],
            ),
            function("over", vec![param("x", "integer", false)]),
            function("over", vec![param("x", "text", false)]),
            function("none", vec![]),
            function("body", vec![param("", "jsonb", false)]),
            function("mixed", vec![param("a", "integer", false)]),
            function("mixed", vec![param("", "json", false)]),
            function("unnamed_int", vec![param("", "integer", false)]),
        ];
        // (name, keys, whole body allowed, expected: index, "whole:index", "none", "ambiguous")
        let cases: &[(&str, &[&str], bool, &str)] = &[
            ("add", &["a", "b"], true, "0"),
            ("add", &["a"], true, "none"),
            ("add", &["a", "b", "c"], true, "none"),
            ("greet", &["name"], true, "1"),
            ("greet", &["name", "greeting"], true, "1"),
            ("greet", &["greeting"], true, "none"),
            ("over", &["x"], true, "ambiguous"),
            ("none", &[], false, "4"),
            ("none", &["a"], true, "none"),
            ("body", &["anything", "else"], true, "whole:5"),
            ("body", &[], true, "whole:5"),
            ("body", &["a"], false, "none"),
            ("mixed", &["a"], true, "6"),
            ("mixed", &["b"], true, "whole:7"),
            ("unnamed_int", &[], true, "none"),
            ("missing", &[], true, "none"),
        ];
        for &(name, names, whole_allowed, expected) in cases {
            let index_of = |found: &Function| {
                functions
                    .iter()
                    .position(|candidate| std::ptr::eq(candidate, found))
                    .unwrap()
            };
            let got = match resolve(&functions, name, &keys(names), whole_allowed) {
                Resolution::Named(found) => index_of(found).to_string(),
                Resolution::WholeBody(found) => format!("whole:{}", index_of(found)),
                Resolution::NotFound => "none".into(),
                Resolution::Ambiguous(_) => "ambiguous".into(),
            };
            assert_eq!(got, expected, "{name}({names:?})");
        }
    }

    #[test]
    fn signature_lists_names_and_types() {
        let f = function(
            "over",
            vec![param("x", "integer", false), param("y", "text", true)],
        );
        assert_eq!(f.signature(), "s.over(x => integer, y => text)");
    }
}
