"""Contracts are read strictly: what a contract declares is enforced, with literals typed to their
column, and anything the pipeline does not enforce is refused at load, naming the file, the entry
and the key. Every DOUBLE column rejects NaN and +/-Infinity unless its contract opts out."""

from __future__ import annotations

import math
import re
import textwrap

import duckdb
import pytest

from pipelines.contracts import COLUMNS_RULE, TYPES_RULE, Contract, load_contracts, parse_contract
from pipelines.errors import DeclarationError

HEADER = """\
apiVersion: v3.1.0
kind: DataContract
id: readings
version: 1.0.0
status: active
"""


def write(tmp_path, properties: str, quality: str = "", top: str = "", table: str = "") -> str:
    """A contract for table `readings` (key `site_id`) with `properties` added to its columns;
    returns its path."""
    text = (
        HEADER
        + textwrap.dedent(top)
        + "schema:\n  - name: readings\n    physicalType: table\n"
        + "    description: Test readings.\n"
        + textwrap.indent(textwrap.dedent(table), "    ")
        + "    properties:\n"
        + "      - {name: site_id, physicalType: VARCHAR, primaryKey: true, primaryKeyPosition: 1,"
        + " required: true, description: Site.}\n"
        + textwrap.indent(textwrap.dedent(properties), "      ")
    )
    if quality:
        text += "    quality:\n" + textwrap.indent(textwrap.dedent(quality), "      ")
    path = tmp_path / "readings.odcs.yaml"
    path.write_text(text)
    return path


def refused(path) -> str:
    with pytest.raises(DeclarationError) as error:
        parse_contract(path)
    message = str(error.value)
    assert str(path) in message
    return message


def rule(contract: Contract, name: str):
    return contract.rule(name)


# -- the shipped contracts -------------------------------------------------------------------


def test_shipped_contracts_load_and_every_double_is_finite():
    contracts = load_contracts()
    assert len(contracts) == 23
    for contract in contracts.values():
        names = {r.name for r in contract.rules}
        for column in contract.columns:
            finite = f"{column.name}_finite" in names
            assert finite == (column.type == "DOUBLE"), (contract.table, column.name)
    # a bound written 1.0e+15 is a number (1.0e15 was a string, compared as text)
    difficulty = contracts["btc_network_daily"].rule("difficulty_range")
    assert difficulty.condition == (
        '"difficulty" IS NULL OR ("difficulty" >= 1000000000000.0 '
        'AND "difficulty" <= 1000000000000000.0)'
    )


# -- logicalTypeOptions: valid ODCS, typed literals --------------------------------------------


def test_logical_type_options_need_their_logical_type(tmp_path):
    path = write(tmp_path, "- {name: x, physicalType: DOUBLE, description: X., "
                           "logicalTypeOptions: {minimum: 0}}\n")  # fmt: skip
    message = refused(path)
    assert "column 'x'" in message and "logicalTypeOptions needs logicalType: number" in message


def test_logical_type_must_be_that_of_the_physical_type(tmp_path):
    path = write(tmp_path, "- {name: x, physicalType: DOUBLE, logicalType: integer, "
                           "description: X.}\n")  # fmt: skip
    assert re.search(r"column 'x'.*logicalType 'integer' is not that of DOUBLE", refused(path))


def test_bounds_become_typed_sql_literals(tmp_path):
    path = write(
        tmp_path,
        """\
        - name: day
          physicalType: DATE
          description: Day.
          logicalType: date
          logicalTypeOptions: {minimum: 2009-01-03, exclusiveMaximum: "2140-01-01"}
        - name: ts
          physicalType: TIMESTAMPTZ
          description: Time.
          logicalType: timestamp
          logicalTypeOptions: {minimum: 2009-01-03T19:15:05+01:00, maximum: "2140-01-01T00:00:00Z"}
        - name: blocks
          physicalType: BIGINT
          description: Blocks.
          logicalType: integer
          logicalTypeOptions: {minimum: 1, maximum: 400}
        - name: difficulty
          physicalType: DOUBLE
          description: Difficulty.
          logicalType: number
          logicalTypeOptions: {minimum: 1.0e+12, exclusiveMaximum: 1.0e+15}
        - name: status
          physicalType: VARCHAR
          description: Status.
          quality: [{metric: invalidValues, arguments: {validValues: [ok, "it's"]}, mustBe: 0}]
        """,
    )
    contract = parse_contract(path)
    assert rule(contract, "day_range").condition == (
        """"day" IS NULL OR ("day" >= DATE '2009-01-03' AND "day" < DATE '2140-01-01')"""
    )
    assert rule(contract, "ts_range").condition == (
        """"ts" IS NULL OR ("ts" >= TIMESTAMPTZ '2009-01-03T18:15:05+00:00' """
        """AND "ts" <= TIMESTAMPTZ '2140-01-01T00:00:00+00:00')"""
    )
    assert rule(contract, "blocks_range").condition == (
        """"blocks" IS NULL OR ("blocks" >= 1 AND "blocks" <= 400)"""
    )
    assert rule(contract, "difficulty_range").condition == (
        """"difficulty" IS NULL OR ("difficulty" >= 1000000000000.0 """
        """AND "difficulty" < 1000000000000000.0)"""
    )
    assert rule(contract, "status_valid_values").condition == (
        """"status" IS NULL OR "status" IN ('ok', 'it''s')"""
    )
    # and DuckDB judges them as typed values
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    con.execute(
        "CREATE TABLE readings AS SELECT * FROM (VALUES "
        "(DATE '2009-01-03', TIMESTAMPTZ '2009-01-03 18:15:05+00', 1, 1e12, 'ok'), "
        "(DATE '2009-01-02', TIMESTAMPTZ '2009-01-03 18:15:04+00', 0, 1e15, 'it''s'), "
        "(DATE '2140-01-01', NULL, 401, 1e11, 'bad')"
        ") AS t(day, ts, blocks, difficulty, status)"
    )
    names = ["day_range", "ts_range", "blocks_range", "difficulty_range", "status_valid_values"]
    flags = ", ".join(f"({rule(contract, n).condition}) IS FALSE" for n in names)
    rows = con.execute(f"SELECT {flags} FROM readings").fetchall()
    assert rows == [
        (False, False, False, False, False),
        (True, True, True, True, False),
        (True, False, True, True, True),
    ]


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        pytest.param(
            "{name: x, physicalType: DOUBLE, description: X., logicalType: number, "
            "logicalTypeOptions: {maximum: 1.0e15}}",
            r"column 'x': logicalTypeOptions: maximum '1.0e15' is not a number \(YAML reads a "
            r"number like 1.0e15 as a string: write 1.0e\+15\)",
            id="exponent-without-sign",
        ),
        pytest.param(
            "{name: x, physicalType: DOUBLE, description: X., logicalType: number, "
            "logicalTypeOptions: {maximum: .nan}}",
            r"column 'x': logicalTypeOptions: maximum nan is not a finite number",
            id="nan-bound",
        ),
        pytest.param(
            "{name: x, physicalType: BIGINT, description: X., logicalType: integer, "
            "logicalTypeOptions: {minimum: 0.5}}",
            r"column 'x': logicalTypeOptions: minimum 0.5 is not an integer",
            id="fraction-on-integer",
        ),
        pytest.param(
            "{name: d, physicalType: DATE, description: D., logicalType: date, "
            "logicalTypeOptions: {minimum: '2009-02-30'}}",
            r"column 'd': logicalTypeOptions: minimum '2009-02-30' is not a date",
            id="impossible-date",
        ),
        pytest.param(
            "{name: d, physicalType: DATE, description: D., logicalType: date, "
            "logicalTypeOptions: {minimum: yesterday}}",
            r"column 'd': logicalTypeOptions: minimum 'yesterday' is not a date",
            id="word-for-date",
        ),
        pytest.param(
            "{name: t, physicalType: TIMESTAMPTZ, description: T., logicalType: timestamp, "
            "logicalTypeOptions: {maximum: '2024-01-01T00:00:00'}}",
            r"column 't': logicalTypeOptions: maximum '2024-01-01T00:00:00' is not a "
            r"timestamp with its UTC offset",
            id="timestamp-without-offset",
        ),
        pytest.param(
            "{name: x, physicalType: DOUBLE, description: X., logicalType: number, "
            "logicalTypeOptions: {minimum: 5, maximum: 1}}",
            r"column 'x': logicalTypeOptions: the lower bound 5 is above the upper 1",
            id="bounds-crossed",
        ),
        pytest.param(
            "{name: s, physicalType: VARCHAR, description: S., quality: [{metric: "
            "invalidValues, arguments: {validValues: [SE, NO]}, mustBe: 0}]}",
            r"column 's': quality entry 1: valid value False is not a string \(a VARCHAR "
            r"column; quote it in YAML\)",
            id="norway-problem",
        ),
    ],
)
def test_an_unparsable_literal_is_refused(tmp_path, prop, expected):
    assert re.search(expected, refused(write(tmp_path, f"- {prop}\n")))


# -- nothing skipped in silence ----------------------------------------------------------------


COLUMN = "- name: x\n  physicalType: DOUBLE\n  description: X.\n"


@pytest.mark.parametrize(
    ("properties", "quality", "top", "expected"),
    [
        pytest.param(
            COLUMN + "  quality: [{metric: missingValues, arguments: {missingValues: [0]}, "
            "mustBe: 0}]\n",
            "",
            "",
            r"column 'x': quality entry 1: metric 'missingValues' is not enforced on a column",
            id="column-missing-values",
        ),
        pytest.param(
            COLUMN + "  quality: [{metric: nullValues, mustBe: 5}]\n",
            "",
            "",
            r"column 'x': quality entry 1: nullValues must say mustBe: 0",
            id="null-values-not-zero",
        ),
        pytest.param(
            COLUMN + "  quality: [{metric: nullValues, mustBeLessThan: 5}]\n",
            "",
            "",
            r"column 'x': quality entry 1: 'mustBeLessThan' is not enforced by the pipeline",
            id="null-values-operator",
        ),
        pytest.param(
            COLUMN + "  quality: [{metric: nullValues, mustBe: 0, unit: percent}]\n",
            "",
            "",
            r"column 'x': quality entry 1: unit 'percent': only counts of rows are enforced",
            id="null-values-percent",
        ),
        pytest.param(
            COLUMN + "  quality: [{type: text, description: Looks right.}]\n",
            "",
            "",
            r"column 'x': quality entry 1: type 'text' is not enforced by the pipeline",
            id="column-text",
        ),
        pytest.param(
            COLUMN + "  quality: [{name: x_ok, type: custom, engine: soda, implementation: "
            "'x > 0'}]\n",
            "",
            "",
            r"column 'x': quality entry 1 \('x_ok'\): engine 'soda': only custom rules of "
            r"engine duckdb",
            id="column-custom-other-engine",
        ),
        pytest.param(
            COLUMN + "  quality: [{type: sql, query: 'SELECT * FROM {object} WHERE x < 0', "
            "mustBe: 0}]\n",
            "",
            "",
            r"column 'x': quality entry 1: this quality rule needs a name",
            id="column-sql-without-name",
        ),
        pytest.param(
            COLUMN + "  quality: [{name: x_pos, type: sql, query: 'SELECT count(*) FROM "
            "{object} WHERE x < 0', mustBeLessThan: 1}]\n",
            "",
            "",
            r"column 'x': quality entry 1: 'mustBeLessThan' is not enforced by the pipeline",
            id="column-sql-operator",
        ),
        pytest.param(
            COLUMN + "  quality: [{metric: invalidValues, arguments: {pattern: '^a'}, "
            "mustBe: 0}]\n",
            "",
            "",
            r"column 'x': quality entry 1: arguments: 'pattern' is not enforced",
            id="invalid-values-pattern",
        ),
        pytest.param(
            COLUMN + "  quality: [{metric: rowCount, mustBe: 1}]\n",
            "",
            "",
            r"column 'x': quality entry 1: metric 'rowCount' is not enforced on a column",
            id="column-row-count",
        ),
        pytest.param(
            COLUMN + "  quality: [{metric: nullValues, mustBe: 0, schedule: '0 20 * * *'}]\n",
            "",
            "",
            r"column 'x': quality entry 1: 'schedule' is not enforced by the pipeline",
            id="quality-schedule",
        ),
        pytest.param(
            COLUMN + "  logicalType: number\n  logicalTypeOptions: {multipleOf: 5}\n",
            "",
            "",
            r"column 'x': logicalTypeOptions: 'multipleOf' is not enforced by the pipeline",
            id="multiple-of",
        ),
        pytest.param(
            "- name: s\n  physicalType: VARCHAR\n  description: S.\n  logicalType: string\n"
            "  logicalTypeOptions: {pattern: '^[A-Z]+$'}\n",
            "",
            "",
            r"column 's': logicalTypeOptions: 'pattern' is not enforced by the pipeline",
            id="string-pattern",
        ),
        pytest.param(
            COLUMN + "  partitioned: true\n",
            "",
            "",
            r"column 'x': 'partitioned' is not enforced by the pipeline \(the partition column "
            r"is declared in assets/sources.yaml\)",
            id="partitioned",
        ),
        pytest.param(
            COLUMN + "  relationships: [{to: sites.site_id}]\n",
            "",
            "",
            r"column 'x': 'relationships' is not enforced by the pipeline",
            id="relationships",
        ),
        pytest.param(
            COLUMN + "  requried: true\n",
            "",
            "",
            r"column 'x': unknown key 'requried'",
            id="typo",
        ),
        pytest.param(
            COLUMN + "  required: true\n  required: false\n",
            "",
            "",
            r"not valid YAML: .*key 'required' appears twice",
            id="duplicate-yaml-key",
        ),
        pytest.param(
            COLUMN + "  required: 'yes'\n",
            "",
            "",
            r"column 'x': required must be true or false, not 'yes'",
            id="required-string",
        ),
        pytest.param(
            COLUMN + "  customProperties: [{property: pii, value: true}]\n",
            "",
            "",
            r"column 'x': customProperties entry 1: custom property 'pii' is not enforced",
            id="column-custom-property",
        ),
        pytest.param(
            COLUMN,
            "- {metric: nullValues, mustBe: 0}\n",
            "",
            r"schema: quality entry 1: metric 'nullValues' is not enforced by the pipeline",
            id="table-null-values",
        ),
        pytest.param(
            COLUMN,
            "- {name: few, metric: rowCount, mustBeLessThan: 5}\n",
            "",
            r"schema: quality entry 1: 'mustBeLessThan' is not enforced by the pipeline",
            id="table-row-count-operator",
        ),
        pytest.param(
            COLUMN,
            "- {name: two, metric: rowCount, mustBeBetween: [1, 1]}\n",
            "",
            r"schema: quality entry 1 \('two'\): rowCount takes mustBe: n or mustBeBetween",
            id="row-count-between-equal",
        ),
        pytest.param(
            COLUMN,
            "- {name: ok, type: custom, engine: duckdb, implementation: 'x > 0', mustBe: 0}\n",
            "",
            r"schema: quality entry 1: unknown key 'mustBe'",
            id="custom-with-operator",
        ),
        pytest.param(
            COLUMN,
            "- {name: x_finite, type: custom, engine: duckdb, implementation: 'true'}\n",
            "",
            r"rule name 'x_finite' is used twice",
            id="rule-name-clash",
        ),
        pytest.param(
            COLUMN,
            "- {name: key_unique, type: custom, engine: duckdb, implementation: 'true'}\n",
            "",
            r"rule name 'key_unique' is used twice \(or is one the pipeline adds",
            id="reserved-rule-name",
        ),
        pytest.param(
            COLUMN,
            "",
            "servers: [{server: prod, type: duckdb}]\n",
            r"'servers' is not enforced by the pipeline",
            id="servers",
        ),
        pytest.param(
            COLUMN,
            "",
            "slaProperties: [{property: retention, value: 3, unit: y}]\n",
            r"slaProperties entry 1: slaProperty 'retention' is not enforced",
            id="sla-retention",
        ),
        pytest.param(
            COLUMN,
            "",
            "apiVersion: v2.2.2\n",
            r"not valid YAML: .*key 'apiVersion' appears twice",
            id="api-version-twice",
        ),
    ],
)
def test_what_is_not_enforced_is_refused(tmp_path, properties, quality, top, expected):
    assert re.search(expected, refused(write(tmp_path, properties, quality, top)))


def test_a_table_custom_property_other_than_quarantine_is_refused(tmp_path):
    path = write(tmp_path, COLUMN, table="customProperties: [{property: owner, value: ops}]\n")
    assert re.search(
        r"schema: customProperties entry 1: custom property 'owner' is not enforced",
        refused(path),
    )


def test_column_quality_entries_are_enforced(tmp_path):
    path = write(
        tmp_path,
        """\
        - name: x
          physicalType: DOUBLE
          description: X.
          quality:
            - {metric: nullValues, mustBe: 0, severity: warning}
            - {metric: duplicateValues, mustBe: 0}
            - {name: x_positive, type: custom, engine: duckdb, implementation: "x > 0"}
            - name: x_not_constant
              type: sql
              description: Some variation per site.
              query: "SELECT site_id FROM {object} GROUP BY site_id HAVING count(DISTINCT {column}) = 1 AND count(*) > 1"
              mustBe: 0
        """,  # noqa: E501
    )
    contract = parse_contract(path)
    nulls = rule(contract, "x_null_values")
    assert (nulls.severity, nulls.condition) == ("warning", '"x" IS NOT NULL')
    unique = rule(contract, "x_unique")
    assert unique.query == (
        'SELECT "x", count(*) AS copies FROM {object} WHERE "x" IS NOT NULL GROUP BY ALL '
        "HAVING count(*) > 1"
    )
    positive = rule(contract, "x_positive")
    assert (positive.column, positive.condition) == ("x", "coalesce((x > 0), true)")
    assert positive.row_level
    varies = rule(contract, "x_not_constant")
    assert 'count(DISTINCT "x")' in varies.query and not varies.row_level
    assert varies.description == "Some variation per site."


def test_unique_column_is_enforced(tmp_path):
    path = write(tmp_path, "- {name: serial, physicalType: VARCHAR, unique: true, "
                           "description: Serial.}\n")  # fmt: skip
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('a'), ('b'), ('a'), (NULL), (NULL)) "
                "AS v(serial)")  # fmt: skip
    query = parse_contract(path).rule("serial_unique").query.replace("{object}", "t")
    assert con.execute(query).fetchall() == [("a", 2)]


# -- keys ----------------------------------------------------------------------------------------


def test_a_key_without_positions_follows_the_order_of_the_properties(tmp_path):
    path = tmp_path / "readings.odcs.yaml"
    path.write_text(
        HEADER
        + textwrap.dedent("""\
        schema:
          - name: readings
            properties:
              - {name: value, physicalType: DOUBLE, description: Value.}
              - {name: ts, physicalType: TIMESTAMPTZ, primaryKey: true, required: true, description: Time.}
              - {name: site_id, physicalType: VARCHAR, primaryKey: true, required: true, description: Site.}
        """)  # noqa: E501
    )
    contract = parse_contract(path)
    assert contract.key == ["ts", "site_id"]
    assert contract.rule("key_unique").unique_key == ("ts", "site_id")


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        pytest.param(
            "- {name: ts, physicalType: TIMESTAMPTZ, primaryKey: true, required: true, "
            "description: T.}\n",
            r"column 'ts': primaryKey without primaryKeyPosition, while other key columns have "
            r"one",
            id="mixed-positions",
        ),
        pytest.param(
            "- {name: ts, physicalType: TIMESTAMPTZ, primaryKeyPosition: 2, required: true, "
            "description: T.}\n",
            r"column 'ts': primaryKeyPosition without primaryKey: true",
            id="position-without-key",
        ),
        pytest.param(
            "- {name: ts, physicalType: TIMESTAMPTZ, primaryKey: true, primaryKeyPosition: 3, "
            "required: true, description: T.}\n",
            r"primaryKeyPosition must number the key columns 1 to 2, not \[1, 3\]",
            id="gap-in-positions",
        ),
        pytest.param(
            "- {name: ts, physicalType: TIMESTAMPTZ, primaryKey: true, primaryKeyPosition: 2, "
            "description: T.}\n",
            r"column 'ts': a primaryKey column must be required: true",
            id="nullable-key",
        ),
    ],
)
def test_a_bad_key_is_refused(tmp_path, properties, expected):
    assert re.search(expected, refused(write(tmp_path, properties)))


# -- safe identifiers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "quality", "expected"),
    [
        pytest.param(
            """- {name: 'a" DOUBLE); COMMIT; DROP TABLE sites; --', physicalType: DOUBLE, """
            "description: X.}\n",
            "",
            r"""column 'a" DOUBLE\); COMMIT; DROP TABLE sites; --': column name 'a" DOUBLE\); """
            r"""COMMIT; DROP TABLE sites; --' is not a plain lower-case name""",
            id="injection",
        ),
        pytest.param(
            "- {name: Value, physicalType: DOUBLE, description: X.}\n",
            "",
            r"column 'Value': column name 'Value' is not a plain lower-case name",
            id="upper-case",
        ),
        pytest.param(
            "- {name: both, physicalType: DOUBLE, description: X.}\n",
            "",
            r"column 'both': column name 'both' is a reserved word of DuckDB's SQL",
            id="reserved-word",
        ),
        pytest.param(
            "- {name: 1st, physicalType: DOUBLE, description: X.}\n",
            "",
            r"column '1st': column name '1st' is not a plain lower-case name",
            id="leading-digit",
        ),
        pytest.param(
            "- {name: x, physicalType: DOUBLE, description: X.}\n",
            '- {name: "ok\' THEN 1 END; --", type: custom, engine: duckdb, implementation: '
            "'true'}\n",
            r"quality entry 1: rule name \"ok' THEN 1 END; --\" is not a plain lower-case name",
            id="rule-name",
        ),
    ],
)
def test_unsafe_names_are_refused(tmp_path, properties, quality, expected):
    assert re.search(expected, refused(write(tmp_path, properties, quality)))


def test_an_unsafe_table_name_is_refused(tmp_path):
    path = write(tmp_path, COLUMN)
    path.write_text(path.read_text().replace("- name: readings", '- name: "readings; DROP"'))
    assert re.search(r"schema: table name 'readings; DROP' is not a plain", refused(path))


# -- finite numbers ------------------------------------------------------------------------------


def test_a_double_column_rejects_non_finite_values_unless_it_opts_out(tmp_path):
    path = write(
        tmp_path,
        """\
        - {name: x, physicalType: DOUBLE, description: X.}
        - name: ratio
          physicalType: DOUBLE
          description: May be NaN.
          customProperties: [{property: allowNonFinite, value: true}]
        - {name: n, physicalType: BIGINT, description: N.}
        """,
    )
    contract = parse_contract(path)
    names = {r.name for r in contract.rules}
    assert "x_finite" in names and "ratio_finite" not in names and "n_finite" not in names
    finite = contract.rule("x_finite")
    assert finite.row_level and finite.blocking and finite.column == "x"
    assert contract.columns[2].allow_non_finite


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        pytest.param(
            "{name: n, physicalType: BIGINT, description: N., customProperties: "
            "[{property: allowNonFinite, value: true}]}",
            r"column 'n': customProperties allowNonFinite is for DOUBLE columns",
            id="not-double",
        ),
        pytest.param(
            "{name: x, physicalType: DOUBLE, description: X., logicalType: number, "
            "logicalTypeOptions: {minimum: 0}, customProperties: "
            "[{property: allowNonFinite, value: true}]}",
            r"column 'x': a column that allows NaN and Infinity \(allowNonFinite\) cannot have "
            r"bounds",
            id="with-bounds",
        ),
        pytest.param(
            "{name: x, physicalType: DOUBLE, description: X., customProperties: "
            "[{property: allowNonFinite, value: 'yes'}]}",
            r"column 'x': customProperties: allowNonFinite must be true or false, not 'yes'",
            id="not-a-flag",
        ),
    ],
)
def test_a_bad_opt_out_is_refused(tmp_path, prop, expected):
    assert re.search(expected, refused(write(tmp_path, f"- {prop}\n")))


FINITE_CONTRACT = """\
- {name: free, physicalType: DOUBLE, description: No bounds.}
- {name: low, physicalType: DOUBLE, description: Lower bound., logicalType: number, logicalTypeOptions: {minimum: 0}}
- {name: high, physicalType: DOUBLE, description: Upper bound., logicalType: number, logicalTypeOptions: {maximum: 10}}
- {name: bounded, physicalType: DOUBLE, description: Both bounds., logicalType: number, logicalTypeOptions: {minimum: 0, maximum: 10}}
"""  # noqa: E501


def _non_finite_rows(con) -> None:
    values = ["1.0", "'nan'", "'inf'", "'-inf'", "NULL", "1.7976931348623157e308"]
    rows = ", ".join(f"('s{i}', {v}::DOUBLE, {v}::DOUBLE, {v}::DOUBLE, {v}::DOUBLE)"
                     for i, v in enumerate(values))  # fmt: skip
    con.execute(f"CREATE TABLE batch AS SELECT * FROM (VALUES {rows}) "
                "AS t(site_id, free, low, high, bounded)")  # fmt: skip


def test_nan_and_infinity_fail_the_compiled_rules_in_duckdb(tmp_path):
    """The rules' SQL, run by DuckDB on NaN and +/-Infinity: the range alone lets some through
    (DuckDB orders NaN above every number), the finite rule catches them all."""
    contract = parse_contract(write(tmp_path, FINITE_CONTRACT))
    con = duckdb.connect()
    _non_finite_rows(con)
    assert con.execute("SELECT 'nan'::DOUBLE >= 0, 'inf'::DOUBLE >= 0").fetchone() == (True, True)
    row_rules = [r for r in contract.rules if r.condition]
    tags = ", ".join(f"CASE WHEN ({r.condition}) IS FALSE THEN '{r.name}' END" for r in row_rules)
    failed = f"list_filter([{tags}], x -> x IS NOT NULL)"
    by_row = dict(con.execute(f"SELECT site_id, {failed} FROM batch ORDER BY site_id").fetchall())
    assert by_row["s0"] == [] and by_row["s4"] == []
    assert by_row["s5"] == ["high_range", "bounded_range"]  # the largest double is finite
    for site, value in (("s1", math.nan), ("s2", math.inf), ("s3", -math.inf)):
        for column in ("free", "low", "high", "bounded"):
            assert f"{column}_finite" in by_row[site], (value, column)
    # the ranges alone: NaN and +Infinity pass a lower bound, -Infinity an upper one
    assert "low_range" not in by_row["s1"] and "low_range" not in by_row["s2"]
    assert "high_range" not in by_row["s3"]


def test_nan_and_infinity_are_caught_by_great_expectations_and_tagged(tmp_path):
    """The same batch through the writer's validation (GX decides, DuckDB tags the rows)."""
    from pipelines.validation import validate

    contract = parse_contract(write(tmp_path, FINITE_CONTRACT))
    con = duckdb.connect()
    _non_finite_rows(con)
    validation = validate(con, contract, "batch", "test", None, None)
    failures = {r.rule.name: r.rows for r in validation.failures}
    assert failures == {
        "free_finite": 3, "low_finite": 3, "high_finite": 3, "bounded_finite": 3,
        "high_range": 3, "bounded_range": 4, "low_range": 1,
    }  # fmt: skip
    kept = con.execute("SELECT site_id FROM new ORDER BY site_id").fetchall()
    assert kept == [("s0",), ("s4",)]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(("id: readings\n", ""), r"id is required", id="no-id"),
        pytest.param(("status: active\n", ""), r"status is required", id="no-status"),
        pytest.param(
            ("kind: DataContract", "kind: Contract"), r"kind must be DataContract", id="kind"
        ),
        pytest.param(
            ("apiVersion: v3.1.0", "apiVersion: v2.2.2"),
            r"apiVersion 'v2.2.2' is not one of",
            id="api-version",
        ),
        pytest.param(
            ("    physicalType: table\n", "    physicalType: view\n"),
            r"schema: physicalType must be table, not 'view'",
            id="not-a-table",
        ),
    ],
)
def test_the_contract_itself_is_checked(tmp_path, edit, expected):
    path = write(tmp_path, COLUMN)
    path.write_text(path.read_text().replace(*edit, 1))
    assert re.search(expected, refused(path))


@pytest.mark.parametrize(
    ("rule", "wrong", "reason"),
    [
        ("hashrate_th_s = 0 OR energy_mwh > 0", "hashrate_th_s = 0 OR energy_mvh > 0",
         'Referenced column "energy_mvh" not found'),
        ("site_id IN (SELECT site_id FROM sites)", "site_id IN (SELECT site_id FROM sitez)",
         "Table with name sitez does not exist"),
        ("date <= CAST(now() AS DATE)", "date <= 'last week' + 1", "Binder Error"),
    ],
)  # fmt: skip
def test_a_rule_that_does_not_bind_fails_when_the_definitions_load(project, rule, wrong, reason):
    """A typo in a rule is caught at load, naming the contract and the rule, not mid-run."""
    path = project.contracts_dir / "mining_output_daily.odcs.yaml"
    text = path.read_text()
    assert rule in text
    path.write_text(text.replace(rule, wrong))
    with pytest.raises(DeclarationError) as refused:
        project.definitions()
    message = str(refused.value)
    assert message.startswith(f"{path}: rule '")
    assert "does not run on the table the contract declares" in message
    assert reason in message, message


def test_every_rule_is_one_query_of_the_plan():
    """Each declared rule (but the two the writer checks before GX runs: columns and types) is
    one check of the plan, which GX counts and the writer reuses for rows and messages."""
    from datetime import date

    from pipelines.batch import Window
    from pipelines.rule_plan import PARTITION_RULE, rule_plan

    window = Window(date(2024, 4, 1), date(2024, 4, 2))
    for contract in load_contracts().values():
        plan = rule_plan(contract, window, contract.columns[0].name)
        names = [c.rule.name for c in plan]
        declared = {r.name for r in contract.rules} - {COLUMNS_RULE, TYPES_RULE}
        assert sorted(names) == sorted(declared | {PARTITION_RULE}), contract.table
        for check in plan:
            assert "{batch}" in check.failing and "{object}" not in check.failing
            if check.row_level:  # the predicate that tags the rows is the one GX counted
                assert f"WHERE ({check.rule.condition}) IS FALSE" in check.failing
