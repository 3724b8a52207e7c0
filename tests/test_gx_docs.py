"""`pkpi docs` builds Great Expectations Data Docs of the latest returns (pkpi.gx_docs): GX's own
pages, listing each validated file's results, that open from disk in a real headless Chromium
with no network (tests/support/browser.py) and their styles and scripts applied, and into which
a partner's file name cannot put markup."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pkpi.gx_docs import (
    ASSETS, CDN_ASSETS, CHART_SCRIPTS, DataDocsFailed, _make_offline, build_data_docs, latest_results, shown,
)
from pkpi.ingest import ingest_landing
from pkpi.settings import Settings
from support.returns import MONTH, SEEDS, TODAY, csv_bytes, drop_file, table

HOSTILE = """<img src=x onerror="document.title='owned'">'&amp;bad.csv"""
VALIDATION_TABLE = "#section-1-content-block-2-1-body-table"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("gx-docs")
    settings = Settings.from_env({"PKPI_DATA_DIR": str(root / "data"), "PKPI_REFERENCE_DIR": str(SEEDS)})
    drop_file(settings.landing_dir, f"contacts/NCT/{MONTH}/good.csv", csv_bytes(table("contacts")))
    drop_file(settings.landing_dir, f"contacts/WNC/{MONTH}/{HOSTILE}",
              csv_bytes(table("contacts", {(2, "sex"): "zebra"})))
    drop_file(settings.landing_dir, f"contacts/NNC/{MONTH}/header.csv", b"contact_id,surname\nC1,Smith\n")
    outcomes = {o.file_name: o for o in ingest_landing(settings, today=TODAY).outcomes}
    return settings, build_data_docs(settings), outcomes


def _opened(page_at, path: Path):
    """A page opened from disk, with every request that failed and every script error on it."""
    page = page_at(1280)
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("pageerror", lambda error: failed.append(f"script error: {error}"))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, failed


def test_the_index_lists_each_validated_files_results(site):
    settings, index, outcomes = site
    assert index == settings.data_dir / "gx" / "docs" / "index.html"
    html = index.read_text(encoding="utf-8")
    for name in ("good.csv", HOSTILE):
        load_id = outcomes[name].load_id
        assert html.count(f"'run_name': '{load_id}'") == 2  # its values and ranges suites
        for suite in ("values", "ranges"):
            (page,) = (index.parent / "validations" / "contacts" / suite / load_id).rglob("*.html")
            text = page.read_text(encoding="utf-8")
            assert f"contacts/{outcomes[name].partner_code}/{MONTH}" in text  # the return it is of
            assert ("Failed" if name == HOSTILE and suite == "values" else "Succeeded") in text
    # Refused at its header, before GX looked at a cell: nothing to show.
    assert outcomes["header.csv"].load_id not in html


def test_the_latest_returns_come_first_and_their_number_is_bounded(site):
    settings, _, outcomes = site
    validated = sorted((o for o in outcomes.values() if o.file_name != "header.csv"), key=lambda o: o.load_id)
    assert [d["load_id"] for d in latest_results(settings)] == [o.load_id for o in reversed(validated)]
    assert [d["load_id"] for d in latest_results(settings, limit=1)] == [validated[-1].load_id]


def test_a_file_name_cannot_put_markup_into_the_pages(site, page_at):
    settings, index, outcomes = site
    pages = list(index.parent.rglob("*.html"))
    assert not [p for p in pages if "<img src=x" in p.read_text(encoding="utf-8")]
    page, failed = _opened(page_at, index)
    page.wait_for_selector(f"{VALIDATION_TABLE} tbody tr", timeout=30_000)
    assert page.title() != "owned"
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert shown(HOSTILE) in page.content()  # the name is there, made plain
    assert failed == []


def test_the_pages_render_with_their_styles_and_scripts_offline(site, page_at):
    settings, index, outcomes = site
    result = next((index.parent / "validations" / "contacts" / "values" / outcomes["good.csv"].load_id).rglob("*.html"))
    for path in (index, result):
        page, failed = _opened(page_at, path)
        # Bootstrap's stylesheet: its navbar is a flex box and its .table collapses its borders.
        assert page.evaluate("getComputedStyle(document.querySelector('.navbar')).display") == "flex"
        assert page.evaluate("getComputedStyle(document.querySelector('table')).borderCollapse") == "collapse"
        # Font Awesome's stylesheet, then its font, loaded from the vendored copy.
        assert "Font Awesome" in page.evaluate("getComputedStyle(document.querySelector('.fas')).fontFamily")
        page.evaluate("document.fonts.ready")
        # jQuery and Bootstrap's scripts ran.
        assert page.evaluate("typeof window.jQuery === 'function' && typeof jQuery.fn.modal === 'function'")
        assert failed == [], (path, failed)
    page, _ = _opened(page_at, index)
    page.wait_for_selector(".bootstrap-table", timeout=30_000)  # bootstrap-table's script built the index table
    assert page.locator(f"{VALIDATION_TABLE} tbody tr").count() == 4  # 2 files x 2 suites


def _templates() -> str:
    import great_expectations

    folder = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.j2")))


def test_every_asset_gx_loads_from_a_cdn_is_vendored_with_its_licence():
    loaded = set(re.findall(r"""<(?:script|link)\b[^>]*(?:src|href)="(https://[^"]+)\"""", _templates()))
    assert loaded == set(CDN_ASSETS) | set(CHART_SCRIPTS)
    for vendored in CDN_ASSETS.values():
        assert (ASSETS / vendored).is_file(), vendored
        package = ASSETS / vendored.split("/")[0]
        assert [p for p in package.iterdir() if p.name.startswith("LICENSE")] or \
            '"license": "MIT"' in (package / "package.json").read_text(), package
    assert (ASSETS / "README.md").is_file()


def test_the_vendored_scripts_are_the_very_files_gx_pins():
    """GX's templates pin two scripts by their Subresource Integrity hash: the copies are those files."""
    pinned = re.findall(r'src="(https://[^"]+)" integrity="sha384-([^"]+)"', _templates())
    assert len(pinned) == 2
    for url, digest in pinned:
        data = (ASSETS / CDN_ASSETS[url]).read_bytes()
        assert base64.b64encode(hashlib.sha384(data).digest()).decode() == digest, url


def test_gx_analytics_are_off_whichever_pkpi_module_imports_gx_first():
    env = {k: v for k, v in os.environ.items() if k != "GX_ANALYTICS_ENABLED"}
    code = "import os, pkpi.gx_docs, great_expectations; print(os.environ['GX_ANALYTICS_ENABLED'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "false", done.stderr


@pytest.mark.parametrize("html, says", [
    ('<script src="https://cdn.example.org/new.js"></script>', "loads https://cdn.example.org/new.js"),
    ('<script>vegaEmbed("#chart", {});</script>', "draws a chart"),
])
def test_a_page_needing_what_is_not_vendored_stops_the_build_saying_what_to_do(tmp_path, html, says):
    (tmp_path / "static").mkdir()
    page = tmp_path / "index.html"
    page.write_text(html, encoding="utf-8")
    with pytest.raises(DataDocsFailed, match=f"{re.escape(says)}.*include/pkpi/gx_docs_assets"):
        _make_offline(page, tmp_path)
