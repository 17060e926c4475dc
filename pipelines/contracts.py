"""Data contracts (ODCS v3) read from `data_contracts/`: the one source of each table's shape.

From a contract come the DuckDB DDL and column comments, the validation rules, and the column
schema shown in the Dagster UI. A contract is valid ODCS (`scripts/lint_contracts.sh` checks it
against the standard's JSON Schema) and is read strictly: whatever it declares is enforced, and
anything the pipeline does not enforce (or that is not ODCS) is a DeclarationError naming the
file, the entry and the key. Nothing is skipped in silence. What is enforced:

- the contract: ``apiVersion`` v3.0.x or v3.1.0, ``kind: DataContract``, ``id``, ``version``,
  ``status``; ``slaProperties`` ``latency`` (the freshness policy). Table and column names match
  ``^[a-z][a-z0-9_]*$`` and are not reserved words of DuckDB (they are written into SQL).
- ``schema[0]``: one table (``physicalType: table``), ``customProperties`` ``quarantine``.
- its ``properties``: ``name``, ``physicalType`` (a DuckDB type), ``logicalType`` (the one of the
  physical type, required with ``logicalTypeOptions``), ``description``, ``required``,
  ``unique``, ``primaryKey``/``primaryKeyPosition`` (key columns are required; without positions
  the key is in the order of the properties), ``logicalTypeOptions`` ``minimum``/``maximum``/
  ``exclusiveMinimum``/``exclusiveMaximum`` (numbers for numbers, ISO dates, and timestamps with a
  UTC offset for DATE and TIMESTAMPTZ: compiled to typed SQL literals),
  ``customProperties`` ``unit`` and ``allowNonFinite`` (a DOUBLE column rejects NaN and
  +/-Infinity, in rule ``<column>_finite``, unless it says ``allowNonFinite: true``).
- column ``quality``: metrics ``invalidValues`` (``arguments.validValues``), ``nullValues``,
  ``duplicateValues``, each with ``mustBe: 0``; ``type: custom`` (``engine: duckdb``, a row
  condition) and ``type: sql`` (``{column}`` is the column), as at table level.
- table ``quality``: ``type: custom`` with ``engine: duckdb`` and an ``implementation``, a row
  condition every row must meet (the row is ``new`` in correlated subqueries); ``type: sql`` with
  a ``query`` selecting the offending rows or groups of ``{object}`` and ``mustBe: 0``;
  ``metric: rowCount`` with ``mustBe`` or ``mustBeBetween`` (rows per partition day, or per table
  when unpartitioned).
Each rule may carry ``severity`` (``error`` blocks the write, ``warning`` is reported). Names,
descriptions, tags, examples and the like are documentation and are accepted as such.

The standard's own Python model (the open-data-contract-standard package) is not used: it would be
a new dependency, it models ODCS 3.2 while the contracts are v3.1.0, and below the top level it
ignores unknown keys, so the strictness would still have to be written here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import duckdb
import yaml

from pipelines.errors import DeclarationError
from pipelines.settings import CONTRACTS_DIR
from pipelines.sqltext import literal, quote

# Every contract has these two rules besides its declared ones.
COLUMNS_RULE = "columns_match_contract"
TYPES_RULE = "types_match_contract"
KEY_RULE = "key_unique"
# rule names the writer adds itself (pipelines/validation.py)
RESERVED_RULES = {COLUMNS_RULE, TYPES_RULE, KEY_RULE, "within_partition"}
# the DuckDB types a column may have, and the ODCS logicalType of each
LOGICAL_TYPES = {
    "VARCHAR": "string", "DOUBLE": "number", "BIGINT": "integer", "INTEGER": "integer",
    "DATE": "date", "TIMESTAMPTZ": "timestamp", "BOOLEAN": "boolean",
}  # fmt: skip
DUCKDB_TYPES = set(LOGICAL_TYPES)
API_VERSIONS = {"v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0"}
# table, column and rule names: they are written into SQL, and name Dagster checks
SAFE_NAME = re.compile(r"[a-z][a-z0-9_]*")

# The keys of each ODCS entry: those the pipeline enforces, those it keeps as documentation, and
# those it refuses (ODCS, but not enforced); any other key is not ODCS (a typo, or a YAML flow
# mapping split at a comma).
DOCUMENTATION = {"description", "businessName", "tags", "authoritativeDefinitions", "id"}
CONTRACT_KEYS = {
    "apiVersion", "kind", "id", "version", "status", "schema", "slaProperties", "name",
    "description", "domain", "dataProduct", "tenant", "tags", "team", "support", "roles", "price",
    "authoritativeDefinitions", "contractCreatedTs",
}  # fmt: skip
CONTRACT_REFUSED = {
    "servers": "the pipeline writes its own DuckDB warehouse (servers are not used)",
    "slaDefaultElement": "only slaProperties latency is enforced, on the table",
    "customProperties": "no contract-level custom property is enforced",
}
TABLE_KEYS = DOCUMENTATION | {
    "name", "physicalType", "logicalType", "properties", "quality", "customProperties",
    "dataGranularityDescription",
}  # fmt: skip
TABLE_REFUSED = {
    "physicalName": "the table is named by `name`",
    "relationships": "relationships (foreign keys) are not enforced",
}
PROPERTY_KEYS = DOCUMENTATION | {
    "name", "physicalType", "logicalType", "logicalTypeOptions", "required", "unique",
    "primaryKey", "primaryKeyPosition", "customProperties", "quality", "examples",
    "classification", "criticalDataElement", "transformDescription", "transformSourceObjects",
}  # fmt: skip
PROPERTY_REFUSED = {
    "partitioned": "the partition column is declared in assets/sources.yaml",
    "partitionKeyPosition": "the partition column is declared in assets/sources.yaml",
    "physicalName": "the column is named by `name`",
    "relationships": "relationships (foreign keys) are not enforced",
    "encryptedName": "encryption is not enforced",
    "transformLogic": "a transform is not run from the contract (derived tables are assets/sql)",
}
QUALITY_KEYS = DOCUMENTATION | {"name", "severity", "type", "dimension", "businessImpact", "method"}
QUALITY_REFUSED = {
    "schedule": "rules run on every write, not on a schedule",
    "scheduler": "rules run on every write, not on a schedule",
    "customProperties": "no custom property of a quality rule is enforced",
    "mustNotBe": "only mustBe is enforced",
    "mustBeGreaterThan": "only mustBe is enforced",
    "mustBeGreaterOrEqualTo": "only mustBe is enforced",
    "mustBeLessThan": "only mustBe is enforced",
    "mustBeLessOrEqualTo": "only mustBe is enforced",
    "mustNotBeBetween": "only mustBe is enforced",
}
# logicalTypeOptions enforced, by logical type (the others, such as format, pattern, multipleOf,
# are refused)
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
OPTIONS = {"number": BOUNDS, "integer": BOUNDS, "date": BOUNDS, "timestamp": BOUNDS}
# customProperties enforced, where
TABLE_CUSTOM = {"quarantine"}
PROPERTY_CUSTOM = {"unit", "allowNonFinite"}
CUSTOM_PROPERTY_KEYS = {"property", "value", "description", "id"}
SLA_KEYS = {"property", "value", "unit", "description", "id", "driver"}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    required: bool
    unit: str | None = None
    # bounds, typed to the column (int or float, date, aware datetime); exclusive_* are strict
    minimum: float | date | datetime | None = None
    maximum: float | date | datetime | None = None
    valid_values: tuple | None = None
    key_position: int | None = None
    exclusive_minimum: float | date | datetime | None = None
    exclusive_maximum: float | date | datetime | None = None
    # a DOUBLE column rejects NaN and +/-Infinity unless its contract allows them
    allow_non_finite: bool = False

    @property
    def described_type(self) -> str:
        """The type as DuckDB's DESCRIBE and information_schema spell it."""
        return {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}.get(self.type, self.type)


def utc_day(column: str) -> str:
    """SQL for the UTC day of a DATE or TIMESTAMPTZ value, by arithmetic on the epoch: right in
    any session time zone, and 25x faster than a CAST, which converts time zones row by row (1.4 s
    for a day of telemetry, 14.4 M rows)."""
    return f"(DATE '1970-01-01' + CAST(epoch_us({column}) // 86400000000 AS INTEGER))"


@dataclass(frozen=True)
class Rule:
    """A check every row (``condition``) or the table as a whole must pass."""

    name: str
    description: str
    severity: str  # "error" blocks the write; "warning" is reported
    column: str | None = None
    condition: str | None = None  # SQL a good row satisfies (row-level rules)
    row_count_between: tuple[int, int] | None = None  # table-level rule
    unique_key: tuple[str, ...] | None = None  # table-level rule
    query: str | None = None  # table-level rule: SQL over {object} returning offending rows
    valid_values: tuple | None = None  # of an invalidValues rule, shown with the column

    @property
    def blocking(self) -> bool:
        return self.severity == "error"

    @property
    def row_level(self) -> bool:
        """Judged row by row (so its failing rows can be quarantined)."""
        return self.condition is not None or self.name == TYPES_RULE


@dataclass(frozen=True)
class Contract:
    table: str
    description: str
    columns: tuple[Column, ...]
    rules: tuple[Rule, ...] = field(default=())
    path: Path | None = None
    # rows breaking row-level rules go to the quarantine table and the rest are written
    quarantine: bool = False
    # how stale the table may get before it is late (ODCS slaProperties: latency)
    max_staleness: timedelta | None = None

    def rule(self, name: str) -> Rule:
        return next(r for r in self.rules if r.name == name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def key(self) -> list[str]:
        keyed = sorted((c for c in self.columns if c.key_position), key=lambda c: c.key_position)
        return [c.name for c in keyed]

    def create_table_sql(self) -> str:
        cols = ",\n  ".join(
            f"{quote(c.name)} {c.type}{' NOT NULL' if c.required else ''}" for c in self.columns
        )
        return f"CREATE TABLE IF NOT EXISTS {quote(self.table)} (\n  {cols}\n)"

    def comment_sql(self) -> list[str]:
        statements = [f"COMMENT ON TABLE {quote(self.table)} IS {literal(self.description)}"]
        for c in self.columns:
            text = c.description + (f" [{c.unit}]" if c.unit else "")
            column = f"{quote(self.table)}.{quote(c.name)}"
            statements.append(f"COMMENT ON COLUMN {column} IS {literal(text)}")
        return statements


class _Loader(yaml.CSafeLoader):  # the C loader: 10x faster
    """YAML whose mappings may not repeat a key (PyYAML would keep the last, in silence)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is not None and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in a mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_keys(where: str, entry, allowed: set[str], refused: dict[str, str]) -> None:
    """Refuse an entry that is not a mapping, or has a key that is refused or not ODCS."""
    if not isinstance(entry, dict):
        raise DeclarationError(f"{where}: must be a mapping, not {entry!r}")
    for key in entry:
        if key in refused:
            raise DeclarationError(
                f"{where}: {key!r} is not enforced by the pipeline ({refused[key]})"
            )
        if key not in allowed:
            raise DeclarationError(
                f"{where}: unknown key {key!r} (not ODCS here, or a typo; the keys read are "
                f"{sorted(allowed)})"
            )


@cache
def _reserved_words() -> frozenset[str]:
    """DuckDB's reserved keywords (`both`, `order`, ...): not a table's or column's name, which
    SQL assets and rule conditions write unquoted."""
    con = duckdb.connect()
    try:
        return frozenset(
            word
            for (word,) in con.execute(
                "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
            ).fetchall()
        )
    finally:
        con.close()


def _safe_name(where: str, what: str, name, *, sql: bool = True) -> str:
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
        raise DeclarationError(
            f"{where}: {what} {name!r} is not a plain lower-case name (^[a-z][a-z0-9_]*$)"
        )
    if sql and name in _reserved_words():
        raise DeclarationError(f"{where}: {what} {name!r} is a reserved word of DuckDB's SQL")
    return name


def _flag(where: str, key: str, value) -> bool:
    if not isinstance(value, bool):
        raise DeclarationError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def _list(where: str, key: str, value) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DeclarationError(f"{where}: {key} must be a list, not {value!r}")
    return value


def _custom(where: str, items, enforced: set[str]) -> dict:
    """customProperties as {property: value}; a property the pipeline does not enforce is
    refused."""
    custom = {}
    for i, item in enumerate(_list(where, "customProperties", items), 1):
        at = f"{where}: customProperties entry {i}"
        _check_keys(at, item, CUSTOM_PROPERTY_KEYS, {})
        if "property" not in item or "value" not in item:
            raise DeclarationError(f"{at}: needs a property and a value")
        name = item["property"]
        if name not in enforced:
            raise DeclarationError(
                f"{at}: custom property {name!r} is not enforced by the pipeline (those read "
                f"here: {sorted(enforced)})"
            )
        if name in custom:
            raise DeclarationError(f"{at}: custom property {name!r} is given twice")
        custom[name] = item["value"]
    return custom


def _number_text(value) -> bool:
    """A string that reads as a number (as YAML 1.1 leaves 1.0e15)."""
    return isinstance(value, str) and bool(
        re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?", value, flags=re.IGNORECASE)
    )


def _literal(where: str, what: str, value, type_: str) -> tuple[str, object]:
    """The SQL literal of a contract value for a column of `type_`, and the value as Python.

    Numbers are numbers (not strings, not NaN or infinite), integers for integer columns;
    DATE values are ISO dates, TIMESTAMPTZ values ISO timestamps with a UTC offset (quoted or
    not: YAML reads an unquoted one as a date or datetime, ODCS tools as the string); VARCHAR
    values are strings (YAML reads NO, on or 1.0 as other things: quote them); BOOLEAN
    values true or false.
    """
    if type_ in ("DOUBLE", "BIGINT", "INTEGER"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            hint = (" (YAML reads a number like 1.0e15 as a string: write 1.0e+15)"
                    if _number_text(value) else "")  # fmt: skip
            raise DeclarationError(f"{where}: {what} {value!r} is not a number{hint}")
        if not math.isfinite(value):
            raise DeclarationError(f"{where}: {what} {value!r} is not a finite number")
        if type_ != "DOUBLE":
            if isinstance(value, float) and not value.is_integer():
                raise DeclarationError(f"{where}: {what} {value!r} is not an integer ({type_})")
            value = int(value)
        return repr(value), value
    if type_ == "DATE":
        parsed = value if type(value) is date else None
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            try:
                parsed = date.fromisoformat(value)
            except ValueError:
                pass
        if parsed is None:
            raise DeclarationError(
                f"{where}: {what} {value!r} is not a date YYYY-MM-DD (a DATE column), e.g. "
                "2009-01-03"
            )
        return f"DATE '{parsed.isoformat()}'", parsed
    if type_ == "TIMESTAMPTZ":
        parsed = value if isinstance(value, datetime) else None
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ].+", value):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                pass
        if parsed is None or parsed.tzinfo is None:
            raise DeclarationError(
                f"{where}: {what} {value!r} is not a timestamp with its UTC offset (a "
                "TIMESTAMPTZ column), e.g. 2009-01-03T18:15:05Z"
            )
        parsed = parsed.astimezone(UTC)
        return f"TIMESTAMPTZ '{parsed.isoformat()}'", parsed
    if type_ == "VARCHAR":
        if not isinstance(value, str):
            raise DeclarationError(
                f"{where}: {what} {value!r} is not a string (a VARCHAR column; quote it in YAML)"
            )
        return "'" + value.replace("'", "''") + "'", value
    if not isinstance(value, bool):  # BOOLEAN
        raise DeclarationError(f"{where}: {what} {value!r} is not true or false (a BOOLEAN column)")
    return ("true" if value else "false"), value


def _column(path: Path, prop, position: int) -> tuple[Column, list[Rule]]:
    """A column of the contract and the rules its property declares."""
    where = f"{path}: property {position}"
    if isinstance(prop, dict) and "name" in prop:
        where = f"{path}: column {prop['name']!r}"
    _check_keys(where, prop, PROPERTY_KEYS, PROPERTY_REFUSED)
    name = _safe_name(where, "column name", prop.get("name"))
    physical = str(prop.get("physicalType", "")).upper()
    if physical not in DUCKDB_TYPES:
        raise DeclarationError(
            f"{where}: physicalType {prop.get('physicalType')!r} is not one of "
            f"{sorted(DUCKDB_TYPES)}"
        )
    description = prop.get("description")
    if not isinstance(description, str) or not description.strip():
        raise DeclarationError(f"{where}: a description is required")
    logical = LOGICAL_TYPES[physical]
    if "logicalType" in prop and prop["logicalType"] != logical:
        raise DeclarationError(
            f"{where}: logicalType {prop['logicalType']!r} is not that of {physical} ({logical})"
        )
    required = _flag(where, "required", prop.get("required", False))
    custom = _custom(where, prop.get("customProperties"), PROPERTY_CUSTOM)
    unit = custom.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise DeclarationError(f"{where}: customProperties unit must be a string, not {unit!r}")
    allow_non_finite = _flag(
        f"{where}: customProperties", "allowNonFinite", custom.get("allowNonFinite", False)
    )
    if allow_non_finite and physical != "DOUBLE":
        raise DeclarationError(
            f"{where}: customProperties allowNonFinite is for DOUBLE columns ({name} is "
            f"{physical}, which holds no NaN or Infinity)"
        )
    bounds = _bounds(where, prop, physical, logical)
    if allow_non_finite and bounds:
        raise DeclarationError(
            f"{where}: a column that allows NaN and Infinity (allowNonFinite) cannot have "
            f"bounds: DuckDB orders NaN above every number, so a bound would pass or fail NaN by "
            f"accident"
        )
    column = Column(
        name=name,
        type=physical,
        description=description.strip(),
        required=required,
        unit=unit,
        minimum=bounds.get("minimum", (None, None))[1],
        maximum=bounds.get("maximum", (None, None))[1],
        valid_values=None,
        key_position=None,  # set by the contract, which sees every key column
        exclusive_minimum=bounds.get("exclusiveMinimum", (None, None))[1],
        exclusive_maximum=bounds.get("exclusiveMaximum", (None, None))[1],
        allow_non_finite=allow_non_finite,
    )
    rules = []
    quoted = quote(name)
    if required:
        rules.append(
            Rule(f"{name}_not_null", f"{name} is required", "error", name,
                 f"{quoted} IS NOT NULL")
        )  # fmt: skip
    if physical == "DOUBLE" and not allow_non_finite:
        # DuckDB orders NaN above every number (NaN >= 0 holds), so a range alone lets NaN and
        # Infinity past a lower bound, -Infinity past an upper one
        rules.append(
            Rule(f"{name}_finite", f"{name} is a finite number (not NaN or +/-Infinity)",
                 "error", name, f"{quoted} IS NULL OR isfinite({quoted})")
        )  # fmt: skip
    if bounds:
        rules.append(_range_rule(name, bounds))
    if _flag(where, "unique", prop.get("unique", False)):
        rules.append(_unique_rule(name, f"{name}_unique", "error", ""))
    for i, q in enumerate(_list(where, "quality", prop.get("quality")), 1):
        rule = _column_rule(f"{where}: quality entry {i}", name, physical, q)
        if rule.valid_values is not None:
            column = replace(column, valid_values=rule.valid_values)
        rules.append(rule)
    return column, rules


def _bounds(where: str, prop: dict, physical: str, logical: str) -> dict[str, tuple[str, object]]:
    """logicalTypeOptions bounds as {option: (SQL literal, value)}; any other option is refused."""
    options = prop.get("logicalTypeOptions")
    if options is None:
        return {}
    if "logicalType" not in prop:
        raise DeclarationError(
            f"{where}: logicalTypeOptions needs logicalType: {logical} (the logical type of "
            f"{physical}; ODCS defines the options of each logical type)"
        )
    at = f"{where}: logicalTypeOptions"
    if not isinstance(options, dict):
        raise DeclarationError(f"{at}: must be a mapping, not {options!r}")
    enforced = OPTIONS.get(logical, ())
    for key in options:
        if key not in enforced:
            raise DeclarationError(
                f"{at}: {key!r} is not enforced by the pipeline (for logicalType {logical} "
                f"only {list(enforced) or 'none'})"
            )
    bounds = {key: _literal(at, key, value, physical) for key, value in options.items()}
    lows = [bounds[k][1] for k in ("minimum", "exclusiveMinimum") if k in bounds]
    highs = [bounds[k][1] for k in ("maximum", "exclusiveMaximum") if k in bounds]
    if len(lows) > 1 or len(highs) > 1:
        raise DeclarationError(f"{at}: give minimum or exclusiveMinimum, maximum or "
                               "exclusiveMaximum, not both")  # fmt: skip
    if lows and highs and lows[0] > highs[0]:
        raise DeclarationError(f"{at}: the lower bound {lows[0]} is above the upper {highs[0]}")
    return bounds


def _range_rule(name: str, bounds: dict[str, tuple[str, object]]) -> Rule:
    quoted = quote(name)
    ops = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    parts = [(ops[k], bounds[k][0]) for k in ops if k in bounds]
    condition = " AND ".join(f"{quoted} {op} {sql}" for op, sql in parts)
    described = " and ".join(f"{name} {op} {sql}" for op, sql in parts)
    return Rule(f"{name}_range", described, "error", name, f"{quoted} IS NULL OR ({condition})")


def _unique_rule(column: str, name: str, severity: str, description: str) -> Rule:
    quoted = quote(column)
    query = (f"SELECT {quoted}, count(*) AS copies FROM {{object}} WHERE {quoted} IS NOT NULL "
             "GROUP BY ALL HAVING count(*) > 1")  # fmt: skip
    return Rule(name, description or f"{column} is unique", severity, column, query=query)


def _severity(where: str, q: dict) -> str:
    severity = q.get("severity", "error")
    if severity not in ("error", "warning"):
        raise DeclarationError(f"{where}: severity must be error or warning, not {severity!r}")
    return severity


def _rule_name(where: str, q: dict, default: str | None = None) -> str:
    name = q.get("name", default)
    if name is None:
        raise DeclarationError(f"{where}: this quality rule needs a name")
    return _safe_name(where, "rule name", name, sql=False)


def _must_be_zero(where: str, q: dict, what: str) -> None:
    if q.get("mustBe") != 0 or isinstance(q.get("mustBe"), bool):
        raise DeclarationError(f"{where}: {what} must say mustBe: 0 (every row passes; no other "
                               "count or operator is enforced)")  # fmt: skip
    if q.get("unit", "rows") != "rows":
        raise DeclarationError(f"{where}: unit {q['unit']!r}: only counts of rows are enforced")


def _column_rule(where: str, column: str, physical: str, q) -> Rule:
    """One column-level quality entry as a rule."""
    kind = q.get("type", "library") if isinstance(q, dict) else None
    metric = q.get("metric") if isinstance(q, dict) else None
    if kind in ("custom", "sql"):
        rule = _table_rule(where, q)
        if rule.query is not None:
            query = rule.query.replace("{column}", quote(column))
            return Rule(rule.name, rule.description, rule.severity, column, query=query)
        return Rule(rule.name, rule.description, rule.severity, column, rule.condition)
    if kind == "library" and metric in ("invalidValues", "nullValues", "duplicateValues"):
        keys = {"metric", "mustBe", "unit"} | (
            {"arguments"} if metric == "invalidValues" else set()
        )
        _check_keys(where, q, QUALITY_KEYS | keys, QUALITY_REFUSED)
        _must_be_zero(where, q, metric)
        severity = _severity(where, q)
        description = (q.get("description") or "").strip()
        quoted = quote(column)
        if metric == "nullValues":
            name = _rule_name(where, q, f"{column}_null_values")
            return Rule(name, description or f"{column} is never null", severity, column,
                        f"{quoted} IS NOT NULL")  # fmt: skip
        if metric == "duplicateValues":
            return _unique_rule(column, _rule_name(where, q, f"{column}_unique"), severity,
                                description)  # fmt: skip
        arguments = q.get("arguments")
        _check_keys(f"{where}: arguments", arguments, {"validValues"},
                    {"invalidValues": "list the valid values (validValues)",
                     "pattern": "a pattern is not enforced"})  # fmt: skip
        values = arguments.get("validValues")
        if not isinstance(values, list) or not values:
            raise DeclarationError(f"{where}: arguments.validValues must be a non-empty list")
        literals = [_literal(where, "valid value", v, physical) for v in values]
        listed = ", ".join(sql for sql, _ in literals)
        valid = tuple(value for _, value in literals)
        name = _rule_name(where, q, f"{column}_valid_values")
        condition = f"{quoted} IS NULL OR {quoted} IN ({listed})"
        return Rule(name, description or f"{column} in ({listed})", severity, column, condition,
                    valid_values=valid)  # fmt: skip
    if isinstance(q, dict) and kind == "library" and metric is not None:
        raise DeclarationError(
            f"{where}: metric {metric!r} is not enforced on a column (enforced: invalidValues, "
            "nullValues, duplicateValues; rowCount is for the table)"
        )
    return _table_rule(where, q)  # refuses it, naming what is wrong


def _table_rule(where: str, q) -> Rule:
    """One table-level quality entry (or a column's custom or sql one) as a rule."""
    if not isinstance(q, dict):
        raise DeclarationError(f"{where}: must be a mapping, not {q!r}")
    kind = q.get("type", "library")
    if kind == "custom":
        _check_keys(where, q, QUALITY_KEYS | {"engine", "implementation"}, QUALITY_REFUSED)
        name, severity = _rule_name(where, q), _severity(where, q)
        where = f"{where} ({name!r})"
        if q.get("engine") != "duckdb":
            raise DeclarationError(
                f"{where}: engine {q.get('engine')!r}: only custom rules of engine duckdb "
                "(a row condition) are enforced"
            )
        condition = q.get("implementation")
        if not isinstance(condition, str) or not condition.strip():
            raise DeclarationError(f"{where}: implementation must be a DuckDB row condition")
        condition = condition.strip()
        description = (q.get("description") or "").strip() or condition
        return Rule(name, description, severity, None, f"coalesce(({condition}), true)")
    if kind == "sql":
        _check_keys(where, q, QUALITY_KEYS | {"query", "mustBe", "unit"}, QUALITY_REFUSED)
        name, severity = _rule_name(where, q), _severity(where, q)
        where = f"{where} ({name!r})"
        query = q.get("query")
        if not isinstance(query, str) or "{object}" not in query:
            raise DeclarationError(
                f"{where}: a sql rule's query selects the offending rows of {{object}} and mustBe 0"
            )
        _must_be_zero(where, q, "a sql rule")
        return Rule(name, (q.get("description") or "").strip() or name, severity,
                    query=query.strip())  # fmt: skip
    metric = q.get("metric")
    if kind == "library" and metric == "rowCount":
        _check_keys(where, q, QUALITY_KEYS | {"metric", "mustBe", "mustBeBetween", "unit"},
                    QUALITY_REFUSED)  # fmt: skip
        name, severity = _rule_name(where, q), _severity(where, q)
        where = f"{where} ({name!r})"
        between = q.get("mustBeBetween", [q.get("mustBe")] * 2 if "mustBe" in q else None)
        if ("mustBe" in q) == ("mustBeBetween" in q) or not (
            isinstance(between, list) and len(between) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in between)
            and (between[0] < between[1] or "mustBe" in q and between[0] == between[1])
        ):  # fmt: skip
            raise DeclarationError(
                f"{where}: rowCount takes mustBe: n or mustBeBetween: [low, high] (whole numbers, "
                "low < high; for low = high write mustBe)"
            )
        low, high = between
        description = (q.get("description") or "").strip()
        return Rule(name, description or f"row count between {low} and {high}", severity,
                    row_count_between=(low, high))  # fmt: skip
    what = f"metric {metric!r}" if metric is not None else f"type {kind!r}"
    raise DeclarationError(
        f"{where}: {what} is not enforced by the pipeline (enforced: type custom with engine "
        "duckdb, type sql, metric rowCount; on a column also invalidValues, nullValues, "
        "duplicateValues)"
    )


def _key(path: Path, props: list[dict], columns: list[Column]) -> list[Column]:
    """The columns with their key positions: primaryKeyPosition, or without any position the
    order of the properties."""
    keyed = []
    for prop, column in zip(props, columns, strict=True):
        where = f"{path}: column {column.name!r}"
        primary = _flag(where, "primaryKey", prop.get("primaryKey", False))
        position = prop.get("primaryKeyPosition")
        if position is not None and not primary:
            raise DeclarationError(f"{where}: primaryKeyPosition without primaryKey: true")
        if primary and not column.required:
            raise DeclarationError(f"{where}: a primaryKey column must be required: true")
        if primary:
            keyed.append((column, position, where))
    positions = [p for _, p, _ in keyed if p is not None]
    if positions and len(positions) < len(keyed):
        without = next(w for _, p, w in keyed if p is None)
        raise DeclarationError(
            f"{without}: primaryKey without primaryKeyPosition, while other key columns have one "
            "(give every key column its position, or none: the key then follows the properties' "
            "order)"
        )
    if positions and sorted(positions) != list(range(1, len(keyed) + 1)):
        raise DeclarationError(
            f"{path}: primaryKeyPosition must number the key columns 1 to {len(keyed)}, not "
            f"{positions}"
        )
    at = {c.name: p if positions else i for i, (c, p, _) in enumerate(keyed, 1)}
    return [replace(c, key_position=at[c.name]) if c.name in at else c for c in columns]


def _load(path: Path) -> dict:
    try:
        doc = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as error:
        raise DeclarationError(f"{path}: not valid YAML: {error}") from None
    _check_keys(str(path), doc, CONTRACT_KEYS, CONTRACT_REFUSED)
    for key in ("apiVersion", "kind", "id", "version", "status"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise DeclarationError(f"{path}: {key} is required (a string)")
    if doc["apiVersion"] not in API_VERSIONS:
        raise DeclarationError(
            f"{path}: apiVersion {doc['apiVersion']!r} is not one of {sorted(API_VERSIONS)}"
        )
    if doc["kind"] != "DataContract":
        raise DeclarationError(f"{path}: kind must be DataContract, not {doc['kind']!r}")
    return doc


def parse_contract(path: Path) -> Contract:
    doc = _load(path)
    try:
        (obj,) = doc["schema"]
    except (KeyError, TypeError, ValueError):
        raise DeclarationError(f"{path}: `schema` must hold exactly one table") from None
    where = f"{path}: schema"
    _check_keys(where, obj, TABLE_KEYS, TABLE_REFUSED)
    table = _safe_name(where, "table name", obj.get("name"))
    if obj.get("physicalType", "table") != "table":
        raise DeclarationError(f"{where}: physicalType must be table, not {obj['physicalType']!r}")
    if obj.get("logicalType", "object") != "object":
        raise DeclarationError(f"{where}: logicalType must be object, not {obj['logicalType']!r}")
    props = _list(where, "properties", obj.get("properties"))
    if not props:
        raise DeclarationError(f"{where}: a table needs properties (its columns)")
    columns, column_rules = [], []
    for position, prop in enumerate(props, 1):
        column, rules = _column(path, prop, position)
        if column.name in (c.name for c in columns):
            raise DeclarationError(f"{path}: column {column.name!r} is declared twice")
        columns.append(column)
        column_rules.extend(rules)
    columns = _key(path, props, columns)
    description = obj.get("description") or ""
    if not isinstance(description, str):
        raise DeclarationError(f"{where}: description must be a string")
    description = description.strip()
    table_rules = [
        _table_rule(f"{where}: quality entry {i}", q)
        for i, q in enumerate(_list(where, "quality", obj.get("quality")), 1)
    ]
    names = [r.name for r in column_rules + table_rules]
    for name in names:
        if name in RESERVED_RULES or names.count(name) > 1:
            raise DeclarationError(
                f"{path}: rule name {name!r} is used twice (or is one the pipeline adds: "
                f"{sorted(RESERVED_RULES)}); name the rules apart"
            )
    key = tuple(Contract(table, description, tuple(columns)).key)
    key_rules = [Rule(KEY_RULE, f"one row per ({', '.join(key)})", "error", unique_key=key)]
    rules = [
        Rule(COLUMNS_RULE, "the batch has exactly the contract's columns", "error"),
        Rule(TYPES_RULE, "every value casts to its column's type", "error"),
        *column_rules,
        *(key_rules if key else []),
        *table_rules,
    ]
    custom = _custom(where, obj.get("customProperties"), TABLE_CUSTOM)
    quarantine = _flag(f"{where}: customProperties", "quarantine", custom.get("quarantine", False))
    sla = _list(str(path), "slaProperties", doc.get("slaProperties"))
    return Contract(table, description, tuple(columns), tuple(rules), path, quarantine,
                    _latency(path, sla))  # fmt: skip


LATENCY_UNITS = {"h": "hours", "hours": "hours", "d": "days", "days": "days"}


def _latency(path: Path, sla: list) -> timedelta | None:
    latency = None
    for i, item in enumerate(sla, 1):
        where = f"{path}: slaProperties entry {i}"
        _check_keys(where, item, SLA_KEYS, {})
        if item.get("property") != "latency":
            raise DeclarationError(
                f"{where}: slaProperty {item.get('property')!r} is not enforced by the pipeline "
                "(only latency, the freshness policy)"
            )
        if latency is not None:
            raise DeclarationError(f"{where}: latency is given twice")
        unit = LATENCY_UNITS.get(str(item.get("unit", "d")).lower())
        if unit is None:
            raise DeclarationError(f"{path}: slaProperties latency unit must be h or d")
        value = item.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise DeclarationError(f"{where}: latency value must be a positive number")
        latency = timedelta(**{unit: float(value)})
    return latency


def load_contracts(directory: Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """All contracts in `directory`, by table name."""
    contracts = {}
    for path in sorted(directory.glob("*.odcs.yaml")):
        contract = parse_contract(path)
        if contract.table != path.name.removesuffix(".odcs.yaml"):
            raise DeclarationError(f"{path}: file name must be {contract.table}.odcs.yaml")
        contracts[contract.table] = contract
    return contracts
