"""What a tenant may ask the installers for, and what it is told when they fail."""

from __future__ import annotations

import json

import pytest

from hyac_agent.deps.messages import MAX_CHARS, summarize
from hyac_agent.deps.policy import check_npm_lock, check_npm_manifest, check_requirement, parse_lock
from hyac_common.errors import DependencyRefused

INDEX_REQUIREMENTS = ["six", "six==1.16.0", "requests[socks]>=2,<3", "Foo.Bar_baz ~= 1.4",
                      'idna>=3 ; python_version >= "3.8"', "attrs (>=22)"]
NEVER = ["git+https://example.org/x.git", "x @ git+https://example.org/x.git",
         "x @ file:///etc/passwd", "./x", "/abs/x", "~/x", "x.tar.gz", "--index-url http://x/",
         "-e .", "-f http://x/", "--extra-index-url=http://x/", "-r other.txt",
         "-c constraints.txt", "six --index-url http://x/", 'six ; python_version > "3" --pre',
         "six\n--index-url http://x/", "six \\", "x @ ftp://example.org/x.tar.gz"]
URL = "evil @ https://example.org/evil-1.0.tar.gz"


@pytest.mark.parametrize("line", INDEX_REQUIREMENTS)
def test_index_requirements_are_accepted(line: str) -> None:
    assert check_requirement(line, allow_urls=False) is None


@pytest.mark.parametrize("line", NEVER)
@pytest.mark.parametrize("allow_urls", [False, True])
def test_vcs_paths_and_options_are_refused_even_where_urls_are_allowed(
    line: str, allow_urls: bool
) -> None:
    with pytest.raises(DependencyRefused) as caught:
        check_requirement(line, allow_urls)
    assert "\n" not in caught.value.message


def test_a_direct_url_needs_the_owner() -> None:
    with pytest.raises(DependencyRefused, match="HYAC_DEPS_ALLOW_DIRECT_URLS"):
        check_requirement(URL, allow_urls=False)
    assert check_requirement(URL, allow_urls=True) == "https://example.org/evil-1.0.tar.gz"


LOCK = ("six==1.16.0 \\\n    --hash=sha256:1e61 \\\n    --hash=sha256:8abb\n"
        "idna==3.7 \\\n    --hash=sha256:82fe\n")


def test_a_pinned_lock_parses_and_prints_back() -> None:
    entries = parse_lock(LOCK, allow_urls=False)
    assert [(e.name, e.version, e.url) for e in entries] == [("six", "1.16.0", None),
                                                             ("idna", "3.7", None)]
    assert "".join(e.line() for e in entries) == LOCK


@pytest.mark.parametrize("lock", [
    "evil @ https://example.org/evil.tar.gz --hash=sha256:00\n",
    "--index-url http://127.0.0.1:1/simple\nsix==1.16.0 --hash=sha256:00\n",
    "six==1.16.0 --hash=sha256:00 --find-links http://127.0.0.1:1/\n",
    "six>=1 --hash=sha256:00\n",
    "six==1.16.0 --hash=md5:00\n",
    "six==1.16.0 --hash=sha256:00\nidna==3.7\n",
    "./six --hash=sha256:00\n",
])
def test_a_lock_with_anything_but_hashed_pins_is_refused(lock: str) -> None:
    with pytest.raises(DependencyRefused):
        parse_lock(lock, allow_urls=False)


def test_a_url_lock_entry_needs_the_owner_and_its_hash() -> None:
    line = "evil @ https://example.org/evil.tar.gz --hash=sha256:00\n"
    assert parse_lock(line, allow_urls=True)[0].url == "https://example.org/evil.tar.gz"
    with pytest.raises(DependencyRefused):
        parse_lock("evil @ https://example.org/evil.tar.gz\n", allow_urls=True)


def npm_lock(resolved: str, **extra: object) -> str:
    return json.dumps({
        "package.json": {"name": "hyac-deps", "dependencies": {"a": "^1.0.0"}},
        "package-lock.json": {"lockfileVersion": 3, "packages": {
            "": {"dependencies": {"a": "^1.0.0"}},
            "node_modules/a": {"version": "1.0.0", "resolved": resolved,
                               "integrity": "sha512-AA", **extra}}},
    })


def test_an_npm_lock_resolves_from_the_registry_only() -> None:
    check_npm_lock(npm_lock("https://registry.npmjs.org/a/-/a-1.0.0.tgz"), allow_urls=False)
    for hostile in (npm_lock("http://127.0.0.1:1/a.tgz"), npm_lock("git+ssh://x/a.git"),
                    npm_lock("file:../a"), npm_lock("https://registry.npmjs.org/a", link=True),
                    npm_lock("https://registry.npmjs.org/a/-/a-1.0.0.tgz", integrity=""),
                    json.dumps({"package.json": {}, "package-lock.json": {"dependencies": {}}})):
        with pytest.raises(DependencyRefused):
            check_npm_lock(hostile, allow_urls=False)


@pytest.mark.parametrize("spec", ["git+https://x/a.git", "user/repo", "github:user/repo",
                                  "file:../a", "link:../a", "npm:other@1", "https://x/a.tgz"])
def test_npm_specs_other_than_ranges_are_refused(spec: str) -> None:
    with pytest.raises(DependencyRefused):
        check_npm_manifest({"dependencies": {"a": spec}}, allow_urls=False)
    check_npm_manifest({"dependencies": {"a": "^1.2 || 2.x", "@s/b": "latest"}}, allow_urls=False)


def test_an_installer_failure_is_summarized_to_the_resolvers_sentence() -> None:
    uv = ("error: No solution found when resolving dependencies\n"
          "  cause: Because nope was not found in the package registry and you require\n"
          "         nope==1, we can conclude that your requirements are unsatisfiable.\n"
          "hint: see /root/.cache/uv/simple-v16/pypi/nope.rkyv\n")
    assert summarize(uv) == (
        "No solution found when resolving dependencies: Because nope was not found in the "
        "package registry and you require nope==1, we can conclude that your requirements "
        "are unsatisfiable.")
    npm = ("npm error code E404\nnpm error 404 Not Found - GET https://registry.npmjs.org/nope\n"
           "npm error A complete log of this run can be found in: /root/.npm/_logs/x.log\n")
    assert summarize(npm) == "Not Found - GET https://registry.npmjs.org/nope"
    build = "Traceback (most recent call last):\n  File \"/tmp/hyac-resolve-1/setup.py\"\nSECRET=1\n"
    assert summarize(build) == ""
    long = "error: " + "x" * 2000 + " /var/lib/hyac/data\n"
    assert len(summarize(long)) <= MAX_CHARS and "/var/lib" not in summarize("error: at /var/lib/x")
