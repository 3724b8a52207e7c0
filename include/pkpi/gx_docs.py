"""Great Expectations Data Docs of the latest returns, built from their validation.json files.

``pkpi docs`` calls :func:`build_data_docs`: the last :data:`DOCS_RETURNS` returns whose cells
GX validated (newest load first, from archive and quarantine; :mod:`pkpi.gx_results`) are given
to GX's own site builder on an ephemeral context, which writes ``$PKPI_DATA_DIR/gx/docs``: an
index of the results, a page per result and a page per suite. The site is assembled under a
temporary name and renamed into place (:func:`pkpi.files.replace_folder`).

Two things GX's pages need changing, done to the HTML it writes:

* **Offline.** GX's templates load Bootstrap, jQuery, Font Awesome and more from CDNs, and its
  logo from its own web server (with the context's id in the address). Each of those is
  vendored in ``gx_docs_assets/`` (see its README: package, version, licence) and copied to
  ``static/vendor/``; every link is pointed there, and the logo at GX's own copy in
  ``static/images/``. Vega (GX's charts) is not vendored: no expectation of these suites draws
  one, and a page that does stops the build (:class:`DataDocsFailed` says what to do).
* **Markup.** GX writes some values into its index unescaped (the data asset name, the batch
  spec, inside a script block), so whatever of a partner's file reaches the pages (its file
  name) is first reduced to :func:`shown` characters.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from datetime import datetime
from pathlib import Path

from .errors import PermanentError
from .files import make_dir, remove_paths, replace_folder, secure_tree
from .gx_results import VALIDATION_FILE, read
from .settings import Settings
from .settling import STAGING

log = logging.getLogger(__name__)

DOCS_RETURNS = 100
"""How many of the latest validated returns Data Docs show (each file's results stay beside it)."""
SITE = "pkpi"
ASSETS = Path(__file__).with_name("gx_docs_assets")
VENDOR = "static/vendor"

CDN_ASSETS = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap@4.3.1/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap@4.3.1/dist/js/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table@1.19.1/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table@1.19.1/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker@1.9.0/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker@1.9.0/dist/js/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-free@6.6.0/css/all.min.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js@1.12.9/dist/umd/popper.min.js",
}
"""Every asset GX 1.24's page templates load from a CDN -> its vendored copy in gx_docs_assets/."""

CHART_SCRIPTS = ("https://cdn.jsdelivr.net/npm/vega@5", "https://cdn.jsdelivr.net/npm/vega-lite@5",
                 "https://cdn.jsdelivr.net/npm/vega-embed@6")
GX_WEB_IMAGES = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"

_SCRIPT_OR_LINK = re.compile(r"<(?:script|link|img)\b[^>]*>", re.IGNORECASE)
_EXTERNAL = re.compile(r"""\b(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)""", re.IGNORECASE)
_SRI = re.compile(r"""\s+(?:integrity|crossorigin)\s*=\s*(?:"[^"]*"|'[^']*'|\S+)""", re.IGNORECASE)
_WEB_IMAGE = re.compile(re.escape(GX_WEB_IMAGES) + r"([A-Za-z0-9_.-]+)(?:\?[^\"'\s>]*)?")
_NOT_SHOWN = re.compile(r"[^\w .,()+-]")


class DataDocsFailed(PermanentError, RuntimeError):
    """GX could not write a page of Data Docs, or a page needs something not vendored."""


def docs_dir(settings: Settings) -> Path:
    """Where :func:`build_data_docs` puts the site: ``$PKPI_DATA_DIR/gx/docs``."""
    return settings.data_dir / "gx" / "docs"


def shown(text: str | None) -> str:
    """``text`` as it may appear in a Data Docs page: letters, digits, space and ``.,()+-``
    kept, anything else (``<``, quotes, ``&``, backslashes) as ``_``."""
    return _NOT_SHOWN.sub("_", text or "")


def latest_results(settings: Settings, limit: int = DOCS_RETURNS) -> list[dict]:
    """The validation.json documents of the last ``limit`` returns GX validated, newest first.

    A load's folder is named by its load id, which starts with when it was validated, so the
    newest are found by name without reading the others.
    """
    found: list[tuple[str, Path]] = []
    for area in (settings.archive_dir, settings.quarantine_dir):
        for folder, dirs, files in os.walk(area):
            dirs[:] = [d for d in dirs if d != STAGING]
            if VALIDATION_FILE in files:
                found.append((os.path.basename(folder), Path(folder) / VALIDATION_FILE))
    out = []
    for _, path in sorted(found, reverse=True):
        try:
            doc = read(path)
        except FileNotFoundError:  # deleted by retention since the folders were listed
            continue
        if doc.get("suites"):
            out.append(doc)
            if len(out) == limit:
                break
    return out


def _suite_result(doc: dict, suite: dict):
    """One suite's result in ``doc`` as GX's object, with the meta its pages show."""
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    validated = datetime.fromisoformat(doc["validated_at"])  # UTC, written with its Z
    return_ = "/".join(shown(doc.get(k)) for k in ("return_type", "partner_code", "period"))
    meta = {
        "great_expectations_version": doc["great_expectations_version"],
        "run_id": RunIdentifier(run_name=doc["load_id"], run_time=validated),
        "validation_time": validated,
        "active_batch_definition": {"datasource_name": "partner_returns", "data_asset_name": return_,
                                    "batch_definition_name": "whole_file"},
        "batch_spec": {"data_asset_name": return_, "file": shown(doc["file_name"]), "outcome": doc["outcome"],
                       "load_id": doc["load_id"]},  # a result's page names its asset from here
        "batch_markers": {},
    }
    results = []
    for r in suite["results"]:
        config = r["expectation_config"]
        results.append(ExpectationValidationResult(
            success=r["success"], result=r["result"], meta=r.get("meta") or {}, exception_info=r["exception_info"],
            expectation_config=ExpectationConfiguration(type=config["type"], kwargs=config["kwargs"],
                                                        meta=config.get("meta"))))
    return ExpectationSuiteValidationResult(success=suite["success"], results=results, suite_name=suite["suite_name"],
                                            statistics=suite["statistics"], meta=meta, batch_id=doc["load_id"])


class _Errors(logging.Handler):
    """GX logs a page it could not render and carries on; these make the build fail instead."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def build_data_docs(settings: Settings, limit: int = DOCS_RETURNS) -> Path:
    """Build GX Data Docs of the latest ``limit`` validated returns; returns the site's index.html."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier, ValidationResultIdentifier,
    )

    from .suites import suites_context

    site = docs_dir(settings)
    make_dir(settings, site.parent)
    temporary = site.with_name(f".docs.{os.getpid()}.tmp")
    remove_paths((temporary,))
    try:
        context, _ = suites_context()  # the suites get their own pages, which each result links to
        context.add_data_docs_site(SITE, {
            "class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(temporary)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        stored = 0
        for doc in latest_results(settings, limit):
            for suite in doc["suites"]:
                result = _suite_result(doc, suite)
                key = ValidationResultIdentifier(ExpectationSuiteIdentifier(suite["suite_name"]),
                                                 result.meta["run_id"], doc["load_id"])
                context.validation_results_store.set(key, result)
                stored += 1
        errors = _Errors()
        gx_log = logging.getLogger("great_expectations")
        gx_log.addHandler(errors)
        try:
            context.build_data_docs(site_names=[SITE])
        finally:
            gx_log.removeHandler(errors)
        pages = sum(1 for _ in (temporary / "validations").rglob("*.html")) if stored else 0
        if errors.messages or pages != stored:
            first = errors.messages[0].splitlines()[0] if errors.messages else "no error was logged"
            raise DataDocsFailed(
                f"Great Expectations wrote {pages} of {stored} validation pages of Data Docs ({first}). "
                "Check that the GX version is the one pkpi.gx_docs was checked with, then run `pkpi docs` again.")
        shutil.copytree(ASSETS, temporary / VENDOR, ignore=shutil.ignore_patterns("README.md"))
        for page in temporary.rglob("*.html"):
            _make_offline(page, temporary)
        replace_folder(temporary, site)
    finally:
        remove_paths((temporary,))
    secure_tree(settings, site)
    log.info("Great Expectations Data Docs written to %s", site / "index.html")
    return site / "index.html"


def _make_offline(page: Path, site: Path) -> None:
    """Point ``page``'s CDN links at the vendored copies (see the module docstring)."""
    html = page.read_text(encoding="utf-8")
    static = Path(os.path.relpath(site / "static", page.parent)).as_posix()
    vendor = Path(os.path.relpath(site / VENDOR, page.parent)).as_posix()
    for url in CHART_SCRIPTS:
        html = html.replace(f'<script src="{url}"></script>', "")
    if "vegaEmbed" in html:
        raise DataDocsFailed(
            f"The Data Docs page {page.relative_to(site)} draws a chart, which needs Vega, and pkpi "
            "does not vendor it: add vega, vega-lite and vega-embed to include/pkpi/gx_docs_assets "
            "(see its README) and to pkpi.gx_docs.CDN_ASSETS.")
    for url, vendored in CDN_ASSETS.items():
        html = html.replace(url, f"{vendor}/{vendored}")
    html = _WEB_IMAGE.sub(lambda m: f"{static}/images/{m.group(1)}", html)

    def local(tag: re.Match) -> str:
        text = _SRI.sub("", tag.group(0))  # a file:// page cannot fetch with CORS; the copies are pinned
        outside = _EXTERNAL.search(text)
        if outside:
            raise DataDocsFailed(
                f"The Data Docs page {page.relative_to(site)} loads {outside.group(1)}, which pkpi does "
                "not vendor: add it to include/pkpi/gx_docs_assets (see its README) and to "
                "pkpi.gx_docs.CDN_ASSETS, then run `pkpi docs` again.")
        return text

    html = _SCRIPT_OR_LINK.sub(local, html)
    page.write_text(html, encoding="utf-8")
