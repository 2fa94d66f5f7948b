//! Building one function call and running it the way PostgREST does: in one
//! transaction that first sets the role and the request settings.
//!
//! Arguments travel as ONE json parameter and PostgreSQL converts each value
//! to the argument's declared type (`json_to_record`), so a bad value fails
//! with PostgreSQL's own error (e.g. `22P02`), as it does behind PostgREST.

use tokio_postgres::types::ToSql;

use crate::catalog::{Function, Returns};

/// Double-quotes an identifier for SQL, doubling any quote inside it.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How the request's arguments reach the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arguments<'a> {
    /// By name: these argument names (a subset of the function's), taken
    /// from the json object passed as `$1`.
    Named(Vec<&'a str>),
    /// The whole json body is the single unnamed json/jsonb argument.
    WholeBody,
}

/// The SQL for one call. It has exactly one parameter, `$1`: the body as
/// json text. It returns one row with one `text` column holding the JSON
/// answer (for `void`, an empty string that the caller does not send).
pub fn call_sql(function: &Function, arguments: &Arguments<'_>) -> String {
    let target = format!(
        "{}.{}",
        quote_ident(&function.schema),
        quote_ident(&function.name)
    );
    // The call expression, and the FROM item that provides `_` (the record
    // of typed arguments) when arguments are passed by name.
    let (call, from_args) = match arguments {
        Arguments::WholeBody => {
            let json_type = function
                .params
                .first()
                .map(|param| param.type_sql.as_str())
                .unwrap_or("json");
            (format!("{target}($1::text::{json_type})"), None)
        }
        Arguments::Named(names) if names.is_empty() => (format!("{target}()"), None),
        Arguments::Named(names) => {
            let columns: Vec<String> = names
                .iter()
                .map(|name| {
                    let type_sql = function
                        .params
                        .iter()
                        .find(|param| param.name == *name)
                        .map(|param| param.type_sql.as_str())
                        // Unreachable after resolution; `text` keeps the SQL
                        // well formed and lets PostgreSQL report any mismatch.
                        .unwrap_or("text");
                    format!("{} {}", quote_ident(name), type_sql)
                })
                .collect();
            let passed: Vec<String> = names
                .iter()
                .map(|name| format!("{0} := _.{0}", quote_ident(name)))
                .collect();
            (
                format!("{target}({})", passed.join(", ")),
                Some(format!(
                    "json_to_record($1::text::json) as _({})",
                    columns.join(", ")
                )),
            )
        }
    };
    // Without named arguments `$1` is otherwise unused (or only used in the
    // call); mentioning it keeps its type known as text in every statement.
    let args_from = from_args.unwrap_or_else(|| "(select $1::text) as _unused".to_owned());
    match function.returns {
        // PostgREST answers a single composite (not SETOF) with a JSON object
        // since v8 (2021), not a one-element array: `to_json` of the row.
        Returns::Scalar | Returns::Composite => {
            format!("select to_json({call})::text from {args_from}")
        }
        Returns::Set => format!(
            "select coalesce(json_agg(_r), '[]')::text from {args_from}, lateral {call} as _r"
        ),
        // Selecting the call is what makes it run (a filter like `or true`
        // would be folded away by the planner); `void` prints as an empty
        // string, and the caller answers 204 whatever it is.
        Returns::Void => format!("select {call}::text from {args_from}"),
    }
}

/// The settings of one request that PostgREST puts in the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSettings {
    pub role: String,
    /// The role's own settings (e.g. `statement_timeout`), from
    /// [`crate::catalog::RoleSettings`].
    pub role_settings: Vec<(String, String)>,
    /// `search_path`: the target schema, then Supabase's extra search path.
    pub search_path: String,
    pub jwt_claims: String,
    pub headers: String,
    pub method: String,
    pub path: String,
    /// READ ONLY for GET and for functions that are not VOLATILE, as
    /// PostgREST does.
    pub read_only: bool,
}

/// The `search_path` for a call into `schema`: the schema itself, then
/// `public, extensions` (Supabase's `db-extra-search-path`).
pub fn search_path_for(schema: &str) -> String {
    let mut path = vec![quote_ident(schema)];
    for extra in ["public", "extensions"] {
        if extra != schema {
            path.push(quote_ident(extra));
        }
    }
    path.join(", ")
}

/// The one statement that sets a request's settings, in PostgREST v12's
/// order: `search_path`, the role's own settings, the role, then the claims,
/// method, path and headers; all transaction-local (`set_config(.., true)`).
/// Its parameters are [`settings_params`].
///
/// The role's settings come before the role switch, as in PostgREST: they
/// are set as the connecting role, which is what a `GRANT SET ON PARAMETER`
/// to `authenticator` allows. They take effect from the next statement, the
/// call itself.
fn settings_sql(role_settings: usize) -> String {
    let mut calls = vec!["set_config('search_path', $1, true)".to_owned()];
    let mut next = 2;
    for _ in 0..role_settings {
        calls.push(format!("set_config(${next}, ${}, true)", next + 1));
        next += 2;
    }
    for name in [
        "role",
        "request.jwt.claims",
        "request.method",
        "request.path",
        "request.headers",
    ] {
        calls.push(format!("set_config('{name}', ${next}, true)"));
        next += 1;
    }
    format!("select {}", calls.join(", "))
}

/// The parameters of [`settings_sql`], in its order.
fn settings_params(settings: &RequestSettings) -> Vec<&(dyn ToSql + Sync)> {
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&settings.search_path];
    for (name, value) in &settings.role_settings {
        params.push(name);
        params.push(value);
    }
    params.extend([
        &settings.role as &(dyn ToSql + Sync),
        &settings.jwt_claims,
        &settings.method,
        &settings.path,
        &settings.headers,
    ]);
    params
}

/// Runs `sql` (from [`call_sql`]) with `body` as `$1` in one transaction
/// that first sets the request settings and switches role, then commits.
/// On any error the transaction is rolled back (dropping it does that).
/// Returns the JSON text of the answer, `None` for SQL NULL.
pub async fn run(
    client: &mut tokio_postgres::Client,
    settings: &RequestSettings,
    sql: &str,
    body: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    let transaction = client
        .build_transaction()
        .read_only(settings.read_only)
        .start()
        .await?;
    // `set_config('role', ..)` is `SET LOCAL ROLE` with the name as a bind
    // parameter, so no quoting is needed.
    transaction
        .execute(
            &settings_sql(settings.role_settings.len()),
            &settings_params(settings),
        )
        .await?;
    let row = transaction.query_one(sql, &[&body]).await?;
    let answer: Option<String> = row.try_get(0)?;
    transaction.commit().await?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Param;

    fn function(returns: Returns, params: &[(&str, &str)]) -> Function {
        Function {
            schema: "api".into(),
            name: "f".into(),
            params: params
                .iter()
                .map(|(name, type_sql)| Param {
                    name: (*name).into(),
                    type_sql: (*type_sql).into(),
                    has_default: false,
                })
                .collect(),
            returns,
            volatility: crate::catalog::Volatility::Volatile,
        }
    }

    #[test]
    fn named_arguments_are_typed_by_json_to_record() {
        let f = function(Returns::Scalar, &[("a", "integer"), ("b", "text")]);
        assert_eq!(
            call_sql(&f, &Arguments::Named(vec!["a", "b"])),
            "select to_json(\"api\".\"f\"(\"a\" := _.\"a\", \"b\" := _.\"b\"))::text \
             from json_to_record($1::text::json) as _(\"a\" integer, \"b\" text)"
        );
    }

    #[test]
    fn sets_are_aggregated_into_an_array() {
        let f = function(Returns::Set, &[]);
        assert_eq!(
            call_sql(&f, &Arguments::Named(vec![])),
            "select coalesce(json_agg(_r), '[]')::text from (select $1::text) as _unused, \
             lateral \"api\".\"f\"() as _r"
        );
    }

    #[test]
    fn whole_body_is_cast_to_the_parameter_type() {
        let f = function(Returns::Scalar, &[("", "jsonb")]);
        assert_eq!(
            call_sql(&f, &Arguments::WholeBody),
            "select to_json(\"api\".\"f\"($1::text::jsonb))::text from (select $1::text) as _unused"
        );
    }

    #[test]
    fn settings_follow_postgrest_order_with_role_settings_before_the_role() {
        assert_eq!(
            settings_sql(0),
            "select set_config('search_path', $1, true), set_config('role', $2, true), \
             set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true), \
             set_config('request.path', $5, true), set_config('request.headers', $6, true)"
        );
        assert_eq!(
            settings_sql(2),
            "select set_config('search_path', $1, true), set_config($2, $3, true), \
             set_config($4, $5, true), set_config('role', $6, true), \
             set_config('request.jwt.claims', $7, true), set_config('request.method', $8, true), \
             set_config('request.path', $9, true), set_config('request.headers', $10, true)"
        );
        let settings = RequestSettings {
            role: "r".into(),
            role_settings: vec![("statement_timeout".into(), "1s".into())],
            search_path: "p".into(),
            jwt_claims: "{}".into(),
            headers: "{}".into(),
            method: "POST".into(),
            path: "/rpc/f".into(),
            read_only: false,
        };
        assert_eq!(settings_params(&settings).len(), 8);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(
            search_path_for("conformance"),
            r#""conformance", "public", "extensions""#
        );
        assert_eq!(search_path_for("public"), r#""public", "extensions""#);
    }
}
