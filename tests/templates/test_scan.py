"""A published template is scanned as a deploy is: what it pins is unknown while no
advisory covers it (never "clean"), and a fresh look after the platform owner imports
advisories finds the real ones — here the OSV records of requests 2.19.0."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO
from tests.templates.conftest import files_b64
from tests.templates.test_registry import HYAC_TOML, template
from tests.tenancy.conftest import Platform


def test_a_template_is_scanned_and_rescanned_after_an_import(platform: Platform) -> None:
    files = template("old-requests")
    files.update(files_b64({"hyac.toml": HYAC_TOML + 'requirements = ["requests==2.19.0"]\n'}))
    with platform.owner() as client:
        published = client.post("/v1/templates", json={"files_b64": files})
    assert published.status_code == 201, published.text
    scan = published.json()["scan"]
    assert scan["status"] == "unknown", scan
    assert [(p["name"], p["version"]) for p in scan["packages"]] == [("requests", "2.19.0")]

    imported = subprocess.run(
        [sys.executable, "-m", "hyac_agent", "vulndb", "import",
         str(REPO / "tests" / "fixtures" / "osv" / "PyPI"), "--data-dir", str(platform.agent.data_dir)],
        capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr

    with platform.owner() as client:
        fresh = client.get("/v1/templates/old-requests", params={"fresh": "true"}).json()["scan"]
        stored = client.get("/v1/templates", params={"q": "old-requests"}).json()["templates"][0]["scan"]
    assert fresh["status"] == "vulnerable", fresh
    advisories = {a["id"] for a in fresh["packages"][0]["advisories"]}
    assert advisories and all(a["fixed"] for a in fresh["packages"][0]["advisories"])
    assert stored["status"] == "vulnerable"  # the new result is kept with the version
