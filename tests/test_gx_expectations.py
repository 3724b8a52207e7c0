"""pkpi.gx_expectations: GX reads each expectation's arguments once per call, with the same results.

If a GX upgrade changes the methods it replaces, these fail loudly instead of the gate running
on replacements that no longer do what GX does.
"""

from __future__ import annotations

import pytest

from pkpi import gx_expectations, gx_pandas
from pkpi.contracts import load_contracts
from pkpi.suites import build_suites

RUNTIME_CONFIGURATIONS = [None, {}, {"result_format": "COMPLETE"},
                          {"result_format": {"result_format": "SUMMARY", "partial_unexpected_count": 0}}]


@pytest.fixture(scope="module")
def expectations():
    gx_expectations.read_configuration_once()
    found = [e for contract in load_contracts().values() for suite in build_suites(contract)
             for e in suite.expectations]
    assert len({type(e) for e in found}) >= 5  # every kind the shipped suites use, built-in and pkpi's own
    return found


def test_installed_gx_is_a_version_the_change_was_checked_with():
    low, high = gx_pandas.SUPPORTED_GX
    assert low <= gx_pandas.gx_version() < high


def test_the_replacements_are_installed_once_and_keep_gxs_own():
    from great_expectations.expectations.expectation import Expectation

    gx_expectations.read_configuration_once()
    gx_expectations.read_configuration_once()
    assert set(gx_expectations.ORIGINALS) == set(gx_expectations.REPLACED)
    for name, original in gx_expectations.ORIGINALS.items():
        assert getattr(Expectation, name) is not original
        assert original.__module__ == "great_expectations.expectations.expectation"


def test_every_shipped_expectation_gets_the_arguments_gx_itself_computes(expectations):
    originals = gx_expectations.ORIGINALS
    for e in expectations:
        assert e._get_domain_kwargs() == originals["_get_domain_kwargs"](e), e
        assert e._get_success_kwargs() == originals["_get_success_kwargs"](e), e
        for key in (*e.domain_keys, *e.success_keys, *e.runtime_keys, "not_a_field"):
            assert e._get_success_kwarg(key, "missing") == originals["_get_success_kwarg"](e, key, "missing"), (e, key)
        for runtime in RUNTIME_CONFIGURATIONS:
            assert e._get_runtime_kwargs(runtime) == originals["_get_runtime_kwargs"](e, runtime), (e, runtime)


def test_no_expectation_class_overrides_what_is_replaced(expectations):
    # The replacements call each other directly; a subclass's own version would be bypassed.
    from great_expectations.expectations.expectation import Expectation

    for kind in {type(e) for e in expectations}:
        for name in gx_expectations.REPLACED:
            owner = next(c for c in kind.__mro__ if name in vars(c))
            assert owner is Expectation, f"{kind.__name__} has its own {name}"


def test_an_unchecked_gx_version_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setattr(gx_expectations, "ORIGINALS", {})
    monkeypatch.setattr(gx_pandas, "gx_version", lambda: (1, 99))  # the one check (require_checked_gx)
    with pytest.raises(RuntimeError, match="widen SUPPORTED_GX"):
        gx_expectations.read_configuration_once()
