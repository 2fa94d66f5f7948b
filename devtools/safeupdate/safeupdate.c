/*
 * safeupdate: a local stand-in for pg-safeupdate, which Supabase preloads
 * for PostgREST's `authenticator` role (session_preload_libraries) on hosted
 * projects and under `supabase start`.
 *
 * The rule it enforces: an UPDATE or DELETE without a WHERE clause is
 * refused with SQLSTATE 21000, "UPDATE requires a WHERE clause" / "DELETE
 * requires a WHERE clause". It checks every statement PostgreSQL parses in
 * the session, so statements inside PL/pgSQL and SQL function bodies and
 * inside data-modifying CTEs are refused too. `WHERE true` satisfies it.
 *
 * Debian packages no pg-safeupdate, so the local stack builds this file with
 * PGXS (`postgresql-server-dev-15`). It is written for this project from the
 * documented behaviour; it is dev tooling and is never deployed.
 */
#include "postgres.h"

#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);

static bool safeupdate_enabled = true;
static post_parse_analyze_hook_type previous_post_parse_analyze_hook = NULL;

static void refuse_unqualified(Query *query);

static void
refuse_unqualified(Query *query)
{
	ListCell   *cell;

	if (query == NULL)
		return;

	if ((query->commandType == CMD_DELETE || query->commandType == CMD_UPDATE) &&
		(query->jointree == NULL || query->jointree->quals == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("%s requires a WHERE clause",
						query->commandType == CMD_DELETE ? "DELETE" : "UPDATE")));

	/* `with gone as (delete from t returning *) select ...` */
	foreach(cell, query->cteList)
	{
		CommonTableExpr *cte = lfirst_node(CommonTableExpr, cell);

		if (IsA(cte->ctequery, Query))
			refuse_unqualified((Query *) cte->ctequery);
	}
}

static void
safeupdate_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (previous_post_parse_analyze_hook)
		previous_post_parse_analyze_hook(pstate, query, jstate);

	if (safeupdate_enabled)
		refuse_unqualified(query);
}

void
_PG_init(void)
{
	/*
	 * Superuser-only, so an API role (or a function it calls) cannot switch
	 * the rule off for itself: at least as strict as the real module.
	 */
	DefineCustomBoolVariable("safeupdate.enabled",
							 "Refuse UPDATE and DELETE without a WHERE clause.",
							 NULL,
							 &safeupdate_enabled,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("safeupdate");

	previous_post_parse_analyze_hook = post_parse_analyze_hook;
	post_parse_analyze_hook = safeupdate_post_parse_analyze;
}
