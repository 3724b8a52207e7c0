"""pkpi.gx_pandas: the gate's one change to Great Expectations, pinned and checked.

If a GX upgrade renames the threshold or stops honouring it, these fail loudly instead of the
gate silently losing the speed-up (or, worse, patching something that no longer exists).
"""

from __future__ import annotations

import inspect

import pandas as pd
import pytest

from pkpi import gx_pandas


def test_installed_gx_is_a_version_the_change_was_checked_with():
    low, high = gx_pandas.SUPPORTED_GX
    assert low <= gx_pandas.gx_version() < high


def test_gx_still_fingerprints_batches_only_below_hash_threshold():
    from great_expectations.execution_engine import pandas_execution_engine as engine

    source = inspect.getsource(engine.PandasExecutionEngine.get_batch_data_and_markers)
    assert "HASH_THRESHOLD" in source and "pandas_data_fingerprint" in source


def test_after_the_change_a_validation_carries_no_fingerprint_and_still_decides():
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.execution_engine import pandas_execution_engine as engine

    gx_pandas.skip_batch_fingerprints()
    assert engine.HASH_THRESHOLD == 0
    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_pandas("fingerprint_check").add_dataframe_asset("frame")
             .add_batch_definition_whole_dataframe("whole").get_batch(
                 batch_parameters={"dataframe": pd.DataFrame({"n": [1, 2, 30]})}))
    assert "pandas_data_fingerprint" not in batch.batch_markers
    result = batch.validate(gxe.ExpectColumnValuesToBeBetween(column="n", min_value=0, max_value=10))
    assert not result.success and result.result["unexpected_count"] == 1


def test_an_unchecked_gx_version_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setattr(gx_pandas, "gx_version", lambda: (1, 99))
    with pytest.raises(RuntimeError, match="widen SUPPORTED_GX"):
        gx_pandas.skip_batch_fingerprints()
