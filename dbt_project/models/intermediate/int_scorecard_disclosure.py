"""Which scorecard figures disclosure control hides, for mart.scorecard.suppressed.

The mart keeps every figure exactly (kpi-mart.md section 5: disclosure control applies to what
leaves the warehouse, never to the mart). So that a reader of mart.scorecard can still tell which
figures the scorecard files, the email and the published copy hide, this model runs the very
code that controls the published copy (pkpi.publishing.apply_disclosure_control, with
pkpi.disclosure's rules: primary suppression of small counts and of ratios on small bases, and
complementary suppression so that no hidden figure can be worked out by subtraction) over an
in-memory copy of the scorecard rows and kpi_values, and returns one row per scorecard row:
suppressed, and suppression_reason naming each hidden figure and why
("value: small_count; fytd_value: complement").

The threshold is the dbt var disclosure_threshold, which `pkpi build` sets from
PKPI_DISCLOSURE_THRESHOLD (default 5).
"""

import duckdb

from pkpi.publishing import apply_disclosure_control

def _flags(inputs: dict, threshold: int):
    scratch = duckdb.connect()
    try:
        scratch.execute("create schema controlled")
        for name, relation in inputs.items():
            frame = relation.df()
            scratch.register("incoming", frame)
            scratch.execute(f"create table controlled.{name} as select * from incoming")
            scratch.unregister("incoming")
        apply_disclosure_control(scratch, "controlled", threshold)
        return scratch.execute(
            "select period, kpi_code, suppressed, suppression_reason from controlled.scorecard"
        ).df()
    finally:
        scratch.close()


def model(dbt, session):
    dbt.config(materialized="table")
    threshold = int(dbt.config.get("disclosure_threshold") or 5)
    # dbt reads the refs from this source to order the build, so they are written out literally.
    inputs = {
        "kpi_values": dbt.ref("kpi_values"),
        "dim_kpi": dbt.ref("dim_kpi"),
        "dim_month": dbt.ref("dim_month"),
        "scorecard": dbt.ref("int_scorecard_rows"),
    }
    return _flags(inputs, threshold)
