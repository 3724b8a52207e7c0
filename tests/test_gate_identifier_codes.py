"""The identifier rule's shortcut for plain codes never lets an identifier through.

On a large return nearly every contact and child id is distinct, so the identifier rule
(``pkpi.suites``) answers a plain code such as ``NCT-C2503-00001`` with one regular expression
(``SAFE_CODE``) instead of every check of ``pkpi.identifiers.identifier_kind``. A partner, and
the child, rely on that shortcut giving exactly identifier_kind's answer for every value.
"""

from __future__ import annotations

import random

import pytest

from pkpi.identifiers import ID_KINDS, VALUE_KINDS, identifier_kind, nhs_check_digit_valid
from pkpi.suites import SAFE_CODE, looks_like_identifier_value


def _nhs_numbers(rng: random.Random, count: int) -> list[str]:
    found = []
    while len(found) < count:
        digits = "".join(rng.choice("0123456789") for _ in range(10))
        if nhs_check_digit_valid(digits):
            found.append(digits)
    return found


# Values that are identifiers, each one step from a code the shortcut accepts: every condition
# of SAFE_CODE is what keeps one of them out.
IDENTIFIERS = [
    "9434765919", "943-476-5919", "K9434765919", "_9434765919",  # NHS numbers (digits first, or glued to a letter)
    "07700900123", "07700-900123",  # phone numbers
    "AB12CD", "GIR0AA", "N19GU",  # postcodes (a letter before a digit, no joiner)
    "Jemima", "Smith-Jones", "O'Brien", "Jo.Smith",  # names (no digit)
    "x1@y.com",  # email
]


@pytest.mark.parametrize("value", IDENTIFIERS)
def test_identifiers_near_codes_are_still_flagged(value):
    kinds = ID_KINDS
    assert looks_like_identifier_value(value, kinds) == (identifier_kind(value, kinds) is not None)
    if identifier_kind(value, kinds) is not None:
        assert looks_like_identifier_value(value, kinds)


def test_the_identifier_examples_are_identifiers():
    flagged = [v for v in IDENTIFIERS if identifier_kind(v, ID_KINDS) is not None]
    assert len(flagged) >= 10  # the list really exercises the rule


def test_plain_codes_take_the_shortcut():
    for code in ("NCT-C2503-00001", "K-4010232137", "AB1-2CD", "CT-2025030000000", "NCT-0001234", "T_001/2025.3"):
        assert SAFE_CODE.fullmatch(code), code
        assert identifier_kind(code, ID_KINDS) is None


def test_the_shortcut_agrees_with_identifier_kind_on_many_generated_values():
    rng = random.Random(13)
    nhs = _nhs_numbers(rng, 200)
    pieces = ["K", "NCT", "ab", "Z", "-", "_", "/", ".", "+", "(", ")", " ", "@", "0", "07", "44",
              "00", "1", "12", "2CD", "é", "\u0663", "x.uk", "Mc", "Jo"] + nhs
    values = set(nhs)
    for _ in range(40_000):
        values.add("".join(rng.choice(pieces) for _ in range(rng.randint(1, 5))))
    shortcut = 0
    for value in values:
        for kinds in (ID_KINDS, VALUE_KINDS):
            expected = identifier_kind(value, kinds) is not None
            assert looks_like_identifier_value(value, kinds) == expected, (value, kinds)
        shortcut += bool(SAFE_CODE.fullmatch(value))
    assert shortcut > 300  # the shortcut was really taken, not only the slow path


def _generated_values() -> set[str]:
    rng = random.Random(13)
    nhs = _nhs_numbers(rng, 200)
    pieces = ["K", "NCT", "ab", "Z", "-", "_", "/", ".", "+", "(", ")", " ", "@", "0", "07", "44",
              "00", "1", "12", "2CD", "é", "\u0663", "x.uk", "Mc", "Jo", "\t", "\u00a0", "ｓ"] + nhs
    values = set(nhs) | set(IDENTIFIERS)
    for _ in range(20_000):
        values.add("".join(rng.choice(pieces) for _ in range(rng.randint(1, 5))))
    return values


def test_the_sql_rule_gives_identifier_kinds_verdict_on_every_value():
    """The gate runs the rule in DuckDB (pkpi.suites.not_identifier_sql): its regular expressions
    settle most values, Python's identifier_kind the rest; together exactly identifier_kind."""
    import duckdb
    import pandas as pd
    import sqlalchemy as sa
    from duckdb_engine import Dialect

    from pkpi import suites

    typical = ["2025-03-18", "18/03/2025", "police", "early_help", "16", "1234.50", "CT-2025030000000",
               "NCT-8012902"]  # what nearly every cell of a real return holds
    values = sorted(_generated_values() | set(typical))
    con = duckdb.connect()
    try:
        suites.register_sql_functions(con)
        con.register("frame", pd.DataFrame({"v": values}, dtype=object))
        con.execute("create table vals as select * from frame")
        for kinds in (ID_KINDS, VALUE_KINDS):
            query = sa.select(sa.column("v"), suites.not_identifier_sql(sa.column("v"), kinds).label("ok"),
                              sa.or_(sa.func.regexp_full_match(sa.column("v"), suites.SAFE_CODE_RE2),
                                            sa.not_(sa.func.regexp_matches(sa.column("v"), suites.MAYBE_IDENTIFIER_RE2))).label("settled"),
                              ).select_from(sa.table("vals"))
            sql = str(query.compile(dialect=Dialect(), compile_kwargs={"literal_binds": True}))
            settled = set()
            for value, ok, quick in con.execute(sql).fetchall():
                assert ok == (identifier_kind(value, kinds) is None), (value, kinds)
                if quick:
                    settled.add(value)
            assert len(settled) > 300  # the regular expressions really settle values
            if kinds == VALUE_KINDS:
                assert set(typical) <= settled
    finally:
        con.close()
