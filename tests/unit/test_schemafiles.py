"""schema.sql and the upgrade steps as text: statements split as psql would, the rules the files
follow refused with one line, and the shipped files keeping them."""

from __future__ import annotations

import pytest

from daemons import db, schemafiles
from daemons.schemafiles import SchemaError, parse, statements

HEAD = "-- lastmile schema version 3\n-- lastmile schema hash " + "0" * 64 + "\n"
STEPS = {"002.sql": "-- lastmile schema upgrade 1 -> 2\nSELECT 2;\n", "003.sql": "-- lastmile schema upgrade 2 -> 3\n"}


def test_statements_end_at_semicolons_outside_quotes_and_comments() -> None:
    sql = """
        -- a comment; not a statement
        CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT 'a;b' $$;
        SELECT 'it''s; fine', "odd;name", E'back\\'slash;', $tag$ $$ ; $tag$;
        /* block; /* nested; */ still comment; */ SELECT $1::int;
        SELECT a$b FROM t; -- trailing
        SELECT 'no semicolon at the end'
    """
    found = statements(sql)
    assert [s.code.split()[0] for s in found] == ["CREATE", "SELECT", "SELECT", "SELECT", "SELECT"]
    assert found[0].sql.startswith("-- a comment; not a statement\n")
    assert found[0].code == "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT 'a;b' $$"
    assert found[1].code == "SELECT 'it''s; fine', \"odd;name\", E'back\\'slash;', $tag$ $$ ; $tag$"
    assert found[2].code == "SELECT $1::int"
    assert found[3].code == "SELECT a$b FROM t"
    assert found[4].summary == "SELECT 'no semicolon at the end'"


@pytest.mark.parametrize("sql", ["SELECT 'open", "SELECT $$ open", "/* open", 'SELECT "open'])
def test_an_unterminated_literal_or_comment_is_refused(sql: str) -> None:
    with pytest.raises(SchemaError, match=r"^unterminated .* at line 1$"):
        statements(sql)


def test_a_summary_is_one_line_without_comments_and_bounded() -> None:
    (stmt,) = statements("ALTER TABLE traffic_usage -- why\n    ADD COLUMN billing text\n    " + "x " * 80 + ";")
    assert stmt.summary.startswith("ALTER TABLE traffic_usage ADD COLUMN billing text x x")
    assert len(stmt.summary) == 90 and stmt.summary.endswith("…")
    assert {"traffic_usage", "billing"} <= stmt.words()


def test_routines_are_the_create_or_replace_functions_and_procedures() -> None:
    sql = HEAD + (
        "CREATE TABLE t (a int);\n-- says why\nCREATE OR REPLACE FUNCTION public.f(x int) RETURNS int LANGUAGE sql "
        "AS $$ SELECT x; $$;\ncreate or replace procedure p() language sql as $$ select 1 $$;\n"
        "CREATE OR REPLACE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();\n"
    )
    schema = parse(sql, STEPS)
    assert [(r.name, r.sql.split("\n")[-1][:25]) for r in schema.routines()] == [
        ("f", "CREATE OR REPLACE FUNCTIO"), ("p", "create or replace procedu")]


def test_steps_are_ordered_from_the_oldest_version_they_upgrade() -> None:
    schema = parse(HEAD, dict(reversed(STEPS.items())))
    assert [s.name for s in schema.steps] == ["upgrade 1 -> 2", "upgrade 2 -> 3"]
    assert schema.oldest == 1 and schema.step_to(3).source == "003.sql"
    assert [s.code for s in schema.step_to(2).statements()] == ["SELECT 2"]
    assert parse(HEAD, {}).oldest == 3


@pytest.mark.parametrize(
    ("sql", "steps", "message"),
    [
        ("-- lastmile schema version 3\n", {}, "has no '-- lastmile schema hash H' line"),
        ("SELECT 1;\n", {}, "has no '-- lastmile schema version N' line"),
        (HEAD + "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;", {},
         "write CREATE OR REPLACE FUNCTION f"),
        (HEAD, {"3.sql": "-- lastmile schema upgrade 2 -> 3\n"}, "3.sql: an upgrade step is named NNN.sql"),
        (HEAD, {"003.sql": "-- lastmile schema upgrade 1 -> 3\n"},
         "003.sql: its first line must be '-- lastmile schema upgrade 2 -> 3'"),
        (HEAD, {"001.sql": "-- lastmile schema upgrade 0 -> 1\n", "003.sql": STEPS["003.sql"]},
         "no upgrade step makes version 2: add 002.sql"),
        (HEAD, {"002.sql": STEPS["002.sql"]},
         "schema.sql is version 3, the last upgrade step makes 2: add the step 2 -> 3 as 003.sql"),
        (HEAD, {**STEPS, "004.sql": "-- lastmile schema upgrade 3 -> 4\n"},
         "schema.sql is version 3, but an upgrade step makes 4: bump schema.sql"),
    ],
)
def test_files_that_break_the_rules_are_refused_in_one_line(sql: str, steps: dict[str, str], message: str) -> None:
    with pytest.raises(SchemaError) as refused:
        parse(sql, steps)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_shipped_schema_and_steps_keep_the_rules() -> None:
    schema = db.load_schema()
    assert schema.version == db.schema_version() and len(schema.hash) == 64
    assert schema.steps and schema.steps[-1].version == schema.version
    assert all(s.source.startswith(str(db.UPGRADES_DIR)) for s in schema.steps)
    assert {"lastmile_partitioned", "lastmile_maintain_partitions", "lastmile_watch"} <= {
        r.name for r in schema.routines()}
    # Statements of a fresh apply are what psql would run: none swallowed by a quote or comment.
    assert sum(s.code.startswith("CREATE TABLE") for s in statements(schema.sql)) == schema.sql.count(
        "\nCREATE TABLE ")
    assert schemafiles.header(schema.sql) == (schema.version, schema.hash)
