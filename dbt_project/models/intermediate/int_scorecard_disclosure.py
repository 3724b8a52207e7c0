"""Which scorecard figures disclosure control hides, for mart.scorecard.suppressed.

The mart keeps every figure exactly (docs/scorecard.md: disclosure control applies to what
leaves the warehouse, never to the mart). So that a reader of mart.scorecard can still tell which
figures the scorecard files, the email and the published copy hide, this model runs the very
code that controls the published copy (pkpi.publishing.decide, with
pkpi.disclosure's rules: primary suppression of small counts and of ratios on small bases, and
complementary suppression so that no hidden figure can be worked out by subtraction) over an
in-memory copy of the scorecard rows and kpi_values, and returns one row per scorecard row:
suppressed, and suppression_reason naming each hidden figure and why
("value: small_count; fytd_value: complement").

The threshold is the dbt var disclosure_threshold, which `pkpi build` sets from
PKPI_DISCLOSURE_THRESHOLD (default 5).
"""

import pandas as pd

from pkpi.publishing import decide, reason_text


def model(dbt, session):
    dbt.config(materialized="table")
    threshold = int(dbt.config.get("disclosure_threshold") or 5)
    rows = dbt.ref("int_scorecard_rows").df()
    # dbt reads the refs from this source to order the build, so they are written out literally.
    decisions = decide(
        {
            "kpi_values": dbt.ref("kpi_values").df(),
            "dim_kpi": dbt.ref("dim_kpi").df(),
            "dim_month": dbt.ref("dim_month").df(),
            "scorecard": rows,
        },
        threshold,
    )
    flags = rows[["period", "kpi_code"]].copy()
    reasons = [decisions.row(period, kpi) for period, kpi in zip(flags["period"], flags["kpi_code"])]
    flags["suppressed"] = [bool(r) for r in reasons]
    flags["suppression_reason"] = pd.Series([reason_text(r) if r else None for r in reasons], dtype="string")
    return flags
