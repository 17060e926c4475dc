"""Great Expectations judges each batch against its contract's rule plan (pipelines/rule_plan.py),
through the writer's own DuckDB connection, inside the write's transaction (the batch is staged
there, uncommitted).

GX's SQL datasource on DuckDB loses its results (GX #11579: it fetches after the connection went
back to the pool, which rolled it back). Here SQLAlchemy gets the writer's connection wrapped so
that begin, commit, rollback and close do nothing: the pipeline alone ends its transaction, and
GX's fetch finds its result intact. GX runs each rule's query once, counting what it selects
(BOOLEAN_ONLY); for the rules that failed, the writer runs the same predicates to find the rows.
A rule whose SQL fails on the data is an error of the write, named with its rule, never a rule
that failed."""

from __future__ import annotations

import logging
import uuid
from functools import cache

import duckdb

from pipelines.errors import RuleError, cut
from pipelines.rule_plan import Check

# GX warns that it has no DuckDB type module; only type expectations reach it, not these rules.
logging.getLogger("great_expectations.expectations.type_comparison").setLevel(logging.ERROR)


@cache
def _gx():
    """Import GX once, on first use (the import costs seconds)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from duckdb_engine import ConnectionWrapper, CursorWrapper
    from great_expectations.data_context.types.base import ProgressBarsConfig

    class RecordingCursor(CursorWrapper):
        def execute(self, statement, parameters=None, context=None):
            try:
                return super().execute(statement, parameters, context)
            except Exception as e:  # the first is the cause: it aborts the transaction
                self.connection.errors.append((statement, str(e)))
                raise

    class BorrowedConnection(ConnectionWrapper):
        """The writer's connection as SQLAlchemy sees it; the transaction stays the writer's.
        It records the errors its statements meet (GX keeps only each rule's last)."""

        def __init__(self, con):
            super().__init__(con)
            self.errors: list[tuple[str, str]] = []

        def cursor(self):
            return RecordingCursor(self._ConnectionWrapper__c, self)

        def begin(self) -> None:
            pass

        def commit(self) -> None:
            pass

        def rollback(self) -> None:
            pass

        def close(self) -> None:
            pass

    class UnexpectedRowsCount(gxe.UnexpectedRowsExpectation):
        """UnexpectedRowsExpectation that only counts (the stock one also fetches the rows)."""

        metric_dependencies = ("unexpected_rows_query.row_count",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):
            rows = metrics["unexpected_rows_query.row_count"]
            return {"success": rows == 0, "result": {"observed_value": rows}}

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return gx, gxe, BorrowedConnection, UnexpectedRowsCount, context


def _expectation(check: Check):
    """The check as GX runs it: its query, counted (GX formats the query, filling in `{batch}`:
    the query's own braces are doubled)."""
    *_, UnexpectedRowsCount, _ = _gx()
    query = check.failing.replace("{", "{{").replace("}", "}}")
    query = query.replace("{{batch}}", "(SELECT * FROM {batch})")  # a relation, as GX fills it
    return UnexpectedRowsCount(unexpected_rows_query=query, meta={"rule": check.rule.name})


def failing_rules(con: duckdb.DuckDBPyConnection, relation: str, plan: list[Check]) -> set[str]:
    """Names of the rules of `plan` that `relation` (a query over the writer's connection)
    breaks."""
    if not plan:
        return set()
    gx, _, BorrowedConnection, _, context = _gx()
    from sqlalchemy.pool import StaticPool

    borrowed = BorrowedConnection(con)

    source = context.data_sources.add_sql(
        f"writer_{uuid.uuid4().hex}",
        connection_string="duckdb://",  # never opened: `creator` lends the writer's connection
        create_temp_table=False,
        kwargs={
            "creator": lambda: borrowed,
            "poolclass": StaticPool,
            "pool_reset_on_return": None,
        },
    )
    try:
        asset = source.add_query_asset("batch", query=relation)
        batch = asset.get_batch(asset.build_batch_request())
        suite = gx.ExpectationSuite(name="contract", expectations=[_expectation(c) for c in plan])
        result = batch.validate(suite, result_format="BOOLEAN_ONLY")
    finally:
        context.data_sources.delete(source.name)
    raised = [
        (o.expectation_config.meta["rule"], message)
        for o in result.results
        for message in _errors(o.exception_info)
    ]
    if raised:
        # The first error aborts the writer's transaction, and GX keeps for each rule its last
        # error: then every rule reports the aborted transaction. The cause is the first error
        # the connection met, whose SQL names the rule.
        causes = [(r, m) for r, m in raised if ABORTED not in m]
        causes += [(_rule_in(sql, plan), m) for sql, m in borrowed.errors if ABORTED not in m]
        rule, message = (causes or raised)[0]
        raise RuleError(f"rule {rule!r} could not be evaluated: {cut(message)}")
    return {o.expectation_config.meta["rule"] for o in result.results if not o.success}


ABORTED = "transaction is aborted"


def _rule_in(statement: str, plan: list[Check]) -> str:
    """The rule whose query the failed `statement` ran, or 'unknown'."""
    for check in plan:
        if all(part in statement for part in check.failing.split("{batch}")):
            return check.rule.name
    return "unknown"


def _errors(exception_info: dict | None) -> list[str]:
    """The messages of the errors GX met evaluating one expectation. GX 1.x puts them at the
    top level, or (1.24, for a metric that failed) nested under each metric's id."""
    if not exception_info:
        return []
    if "raised_exception" in exception_info:
        infos = [exception_info]
    else:
        infos = [i for i in exception_info.values() if isinstance(i, dict)]
    return [i.get("exception_message") or "" for i in infos if i.get("raised_exception")]
