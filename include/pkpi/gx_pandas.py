"""The one change the gate makes to Great Expectations' pandas engine, pinned to the GX versions
it was checked against.

When GX loads a dataframe batch it fingerprints the whole frame (``pd.util.hash_pandas_object``
plus md5) for the batch's metadata, on every validation run: for a file of 300,000 rows that is
about a sixth of the gate's time, and the gate never reads the fingerprint. GX skips it for
frames of at least ``HASH_THRESHOLD`` bytes, so the gate sets that threshold to 0.
tests/test_gx_pandas.py fails if a GX upgrade moves or renames what this relies on.
"""

from __future__ import annotations

SUPPORTED_GX = ((1, 24), (1, 25))
"""The GX versions pkpi.gx_pandas, pkpi.gx_duckdb and pkpi.gx_expectations were checked with: from 1.24
up to, not including, 1.25."""


def gx_version() -> tuple[int, int]:
    import great_expectations as gx

    major, minor = gx.__version__.split(".")[:2]
    return int(major), int(minor)


def require_checked_gx(module: str, internals_present: bool, what_to_check: str) -> None:
    """Refuse to change GX's internals unless the installed GX is one ``module`` was checked
    with and the internals it changes are there; the error says what to check (each module's
    own test does) before widening SUPPORTED_GX."""
    low, high = SUPPORTED_GX
    if not low <= gx_version() < high or not internals_present:
        raise RuntimeError(
            f"{module} was checked with Great Expectations {low[0]}.{low[1]}.x, not "
            f"{'.'.join(map(str, gx_version()))}: check that {what_to_check}, then widen SUPPORTED_GX."
        )


def skip_batch_fingerprints() -> None:
    """Stop GX fingerprinting each dataframe batch (see the module docstring)."""
    from great_expectations.execution_engine import pandas_execution_engine as engine

    require_checked_gx("pkpi.gx_pandas", hasattr(engine, "HASH_THRESHOLD"),
                       "PandasExecutionEngine still skips fingerprints of frames above HASH_THRESHOLD "
                       "(tests/test_gx_pandas.py)")
    engine.HASH_THRESHOLD = 0
