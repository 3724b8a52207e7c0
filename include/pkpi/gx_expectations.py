"""The gate's change to how Great Expectations reads an expectation's arguments, pinned to the
GX versions it was checked against.

``Expectation.configuration`` is a property that builds a new ``ExpectationConfiguration`` from
the expectation's pydantic fields each time it is read (``dict()``, JSON conversion, an id).
GX 1.24 reads it once per key inside loops: ``_get_domain_kwargs`` and ``_get_success_kwargs``
rebuild it for every domain and success key, and ``_get_runtime_kwargs`` for every runtime key
(through ``_get_success_kwarg``); building the metric graph calls them for every metric of every
expectation. For a small partner file that was about 40 % of the gate's time. The replacements
below read the configuration once per call and compute exactly the same values, in the same way:
nothing changes an expectation between two reads inside one of these calls.

tests/test_gx_expectations.py fails if a GX upgrade changes the methods this replaces.
"""

from __future__ import annotations

import logging
from typing import Any

from .gx_pandas import require_checked_gx

logger = logging.getLogger("great_expectations.expectations.expectation")  # where GX says it

# The methods replaced, each by the function of the same name below.
REPLACED = ("_get_domain_kwargs", "_get_success_kwargs", "_get_success_kwarg", "_get_runtime_kwargs")
ORIGINALS: dict[str, Any] = {}
"""GX's own methods, kept when replaced, so tests/test_gx_expectations.py can compare."""


def read_configuration_once() -> None:
    """Replace the four methods on GX's ``Expectation`` (see the module docstring); idempotent."""
    if ORIGINALS:
        return
    from great_expectations.exceptions import InvalidExpectationKwargsError
    from great_expectations.expectations.expectation import Expectation, parse_result_format

    require_checked_gx("pkpi.gx_expectations", all(hasattr(Expectation, name) for name in REPLACED),
                       f"Expectation's {', '.join(REPLACED)} still do what the replacements do "
                       "(tests/test_gx_expectations.py)")

    def success_kwarg(self, kwargs: dict, key: str, default: Any = None) -> Any:
        # Expectation._get_success_kwarg, given the configuration's kwargs.
        if key in kwargs:
            return kwargs[key]
        field = self.__fields__.get(key)
        if field is not None:
            return field.default if not field.required else default
        logger.warning(f'_get_success_kwarg called with key "{key}", '
                       f"but it is not a known field of {type(self).__name__}")
        return default

    # Each takes the configuration's kwargs, read once by the method that starts the call.
    def domain(self, kwargs: dict) -> dict:
        domain_kwargs = {key: kwargs.get(key, self._get_default_value(key)) for key in self.domain_keys}
        missing_kwargs = set(self.domain_keys) - set(domain_kwargs.keys())
        if missing_kwargs:
            raise InvalidExpectationKwargsError(f"Missing domain kwargs: {list(missing_kwargs)}")
        return domain_kwargs

    def success(self, kwargs: dict) -> dict:
        domain_kwargs = domain(self, kwargs)
        success_kwargs = {key: kwargs.get(key, self._get_default_value(key)) for key in self.success_keys}
        success_kwargs.update(domain_kwargs)
        return success_kwargs

    def _get_domain_kwargs(self) -> dict:
        return domain(self, self.configuration.kwargs)

    def _get_success_kwargs(self) -> dict:
        return success(self, self.configuration.kwargs)

    def _get_success_kwarg(self, key: str, default: Any = None) -> Any:
        return success_kwarg(self, self.configuration.kwargs, key, default)

    def _get_runtime_kwargs(self, runtime_configuration: dict | None = None) -> dict:
        runtime_configuration = runtime_configuration or {}
        kwargs = self.configuration.kwargs
        success_kwargs = success(self, kwargs)
        runtime_kwargs = {key: runtime_configuration.get(key, success_kwarg(self, kwargs, key))
                          for key in self.runtime_keys}
        runtime_kwargs.update(success_kwargs)
        runtime_kwargs["result_format"] = parse_result_format(runtime_kwargs["result_format"])
        return runtime_kwargs

    replacements = {"_get_domain_kwargs": _get_domain_kwargs, "_get_success_kwargs": _get_success_kwargs,
                    "_get_success_kwarg": _get_success_kwarg, "_get_runtime_kwargs": _get_runtime_kwargs}
    assert set(replacements) == set(REPLACED)
    for name in REPLACED:
        ORIGINALS[name] = getattr(Expectation, name)
        setattr(Expectation, name, replacements[name])
