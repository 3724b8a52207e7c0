"""`pkpi docs` builds the dbt documentation site the quality sub-group and engineers browse:
the project's own overview page (not dbt's default "Welcome"), the model groups and their
owners, and nothing that points outside the repository."""

from __future__ import annotations

import json
import re

import pytest

from pkpi.build import generate_docs

REPO_FOLDERS = ("dbt_project/", "docs/", "include/", "seeds/")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from pkpi.settings import Settings

    from conftest import SEEDS

    data = tmp_path_factory.mktemp("docs-data")
    return generate_docs(Settings(data_dir=data, reference_dir=SEEDS))


@pytest.fixture(scope="module")
def manifest(site) -> dict:
    return json.loads((site / "manifest.json").read_text())


def test_the_site_has_the_projects_overview_page(manifest):
    overview = manifest["docs"]["doc.pkpi.__overview__"]["block_contents"]
    assert overview.startswith("# The partnership KPI mart")
    for published in ("kpi_values", "scorecard", "dim_partner", "dim_month", "dim_kpi", "fct_return_submissions"):
        assert f"`{published}`" in overview


def test_every_model_and_the_catalogue_is_in_a_group_with_an_owner(manifest):
    groups = {g["name"]: g["owner"] for g in manifest["groups"].values()}
    assert set(groups) == {"partner_returns", "reference_data", "kpi_mart"}
    assert all(owner.get("name") and owner.get("email") for owner in groups.values())
    ungrouped = [n["name"] for n in manifest["nodes"].values()
                 if n["resource_type"] in ("model", "seed") and n["config"].get("group") not in groups]
    assert not ungrouped
    marts = {n["name"]: n["config"]["group"] for n in manifest["nodes"].values()
             if n["resource_type"] == "model" and n["schema"].endswith("mart")}
    assert set(marts.values()) == {"kpi_mart"}


def test_no_description_points_outside_the_repository(manifest):
    texts = [manifest["docs"]["doc.pkpi.__overview__"]["block_contents"]]
    for node in [*manifest["nodes"].values(), *manifest["sources"].values(), *manifest["exposures"].values()]:
        texts.append(node.get("description") or "")
        texts += [c.get("description") or "" for c in node.get("columns", {}).values()]
    outside = [t for t in texts if re.search(r"\.\./|https?://(?!airflow\.apache\.org|docs\.getdbt)", t)]
    assert not outside
    named = set(re.findall(r"`((?:dbt_project|docs|include|seeds)/[^`\s]*)`", "\n".join(texts)))
    from conftest import REPO

    missing = [path for path in named if not (REPO / path.rstrip("/")).exists()]
    assert not missing, f"descriptions name files the repository does not have: {missing}"


def test_the_site_opens_from_disk_on_the_overview(site, page_at):
    page = page_at(1280)
    page.goto((site / "index.html").as_uri())
    page.wait_for_selector("text=The partnership KPI mart", timeout=30_000)
    body = page.inner_text("body")
    assert "Welcome!" not in body
    assert "What analysts may read" in body
