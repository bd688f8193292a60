"""The scan routes as a tenant member who tries what the role does not allow, or sends
what the agent should not take."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import current_runtime
from tests.tenancy.conftest import Platform, platform  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def members(platform: Platform) -> dict[str, str]:  # noqa: F811
    platform.tenant("scanned")
    platform.tenant("bystander")
    return {role: platform.user(f"scan-{role}", "scanned", role)
            for role in ("viewer", "developer", "admin")}


def test_only_a_tenant_admin_changes_the_policy(
        platform: Platform, members: dict[str, str]) -> None:  # noqa: F811
    block = {"mode": "block", "severity": "high", "unknown": "block"}
    for role in ("viewer", "developer"):
        with platform.http(members[role], "scanned") as client:
            assert client.get("/v1/scan/policy").json()["inherited"] is True
            refused = client.put("/v1/scan/policy", json=block)
            assert refused.status_code == 403, refused.text
            assert client.delete("/v1/scan/policy").status_code == 403
    with platform.http(members["admin"], "scanned") as client:
        set_ = client.put("/v1/scan/policy", json={**block, "inherited": True})
        assert set_.status_code == 200 and set_.json() == {**block, "inherited": False}
        # an admin of one tenant sets nothing in another
        assert client.put("/v1/scan/policy", json=block,
                          headers={"X-Hyac-Tenant": "bystander"}).status_code == 403
        for bad in ({"mode": "allow-all"}, {"mode": "block", "severity": "none"},
                    {"mode": "block", "unknown": "maybe"}, {"mode": "warn", "extra": 1}):
            answer = client.put("/v1/scan/policy", json=bad)
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"]["code"] == "invalid_input"
    with platform.owner("bystander") as client:
        assert client.get("/v1/scan/policy").json()["inherited"] is True


def test_package_scans_are_bounded_and_answer_unknown_without_data(
        platform: Platform, members: dict[str, str]) -> None:  # noqa: F811
    with platform.http(members["admin"], "scanned") as client:
        assert client.put("/v1/scan/policy", json={"mode": "block", "unknown": "block"}
                          ).status_code == 200
    with platform.http(members["viewer"], "scanned") as client:
        answer = client.post("/v1/scan/packages", json={
            "ecosystem": "PyPI", "packages": [{"name": "requests", "version": "2.19.0"},
                                              {"name": "x' OR 1=1 --", "version": "1"}]})
        assert answer.status_code == 200, answer.text
        report = answer.json()
        # nothing imported on this agent: unknown, and the admin's policy blocks unknown
        assert report["result"]["status"] == "unknown" and report["blocked"] is True
        too_many = [{"name": f"p{i}", "version": "1.0"} for i in range(5001)]
        assert client.post("/v1/scan/packages", json={
            "ecosystem": "PyPI", "packages": too_many}).status_code == 422
        assert client.post("/v1/scan/packages", json={
            "ecosystem": "Maven", "packages": []}).status_code == 422
        long_name = client.post("/v1/scan/packages", json={
            "ecosystem": "npm", "packages": [{"name": "a" * 300, "version": "1.0.0"}]})
        assert long_name.status_code == 400
        assert long_name.json()["error"]["code"] == "invalid_input"
        for version in ("0", "-1", "99999999999", "x"):
            assert client.get("/v1/functions/any/scan",
                              params={"version": version}).status_code == 422
        assert client.get("/v1/functions/..%2f..%2fetc/scan").status_code in (400, 404)
        assert client.get("/v1/vulndb").json()["ecosystems"] == {}


def test_a_version_without_dependencies_and_another_tenants_function(
        platform: Platform, members: dict[str, str]) -> None:  # noqa: F811
    entry = "functions/plain.py"
    body = {"entry": entry, "config": {"runtime": current_runtime()},
            "files_b64": {entry: base64.b64encode(b"def main(context):\n    return 1\n").decode()}}
    with platform.http(members["developer"], "scanned") as client:
        assert client.put("/v1/functions/plain", json=body).status_code == 201
        report = client.get("/v1/functions/plain/scan").json()
        assert report["result"] is None and report["blocked"] is False
        bom = client.get("/v1/functions/plain/sbom").json()
        assert bom["components"] == [] and bom["vulnerabilities"] == []
        assert [r["function"] for r in client.post("/v1/scan", json={}).json()] == ["plain"]
        # the same name in a tenant the member does not belong to
        for path in ("/v1/functions/plain/scan", "/v1/functions/plain/sbom"):
            assert client.get(path, headers={"X-Hyac-Tenant": "bystander"}).status_code == 403
    with platform.owner("bystander") as client:
        assert client.get("/v1/functions/plain/scan").status_code == 404
        assert client.post("/v1/scan", json={"function": "plain"}).status_code == 404
