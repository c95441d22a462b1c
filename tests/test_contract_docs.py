"""Issue 15: the contract lives in the repository (docs/api.md), in step with /openapi.json."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "api.md"
ROUTE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?]*)")
NOT_SERVED = "*Not served by this build yet.*"
# flask-smorest's own pages, which the OpenAPI document does not describe.
UNDOCUMENTED_BY_OPENAPI = {("GET", "/openapi.json"), ("GET", "/docs")}


def _normal(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


def _documented() -> set[tuple[str, str]]:
    """Routes docs/api.md describes, leaving out sections not served by this build."""
    routes = set()
    for section in re.split(r"(?m)^## ", DOC.read_text()):
        if NOT_SERVED in section:
            continue
        routes |= {(method, _normal(path)) for method, path in ROUTE.findall(section)}
    return routes


def _served(client) -> set[tuple[str, str]]:
    spec = client.get("/openapi.json").get_json()
    return {(method.upper(), _normal(path)) for path, operations in spec["paths"].items()
            for method in operations if method in ("get", "post", "put", "patch", "delete")}


def test_every_served_route_is_in_docs_api_md(client):
    missing = _served(client) - _documented()
    assert not missing, f"in /openapi.json but not in docs/api.md: {sorted(missing)}"


def test_every_route_docs_api_md_promises_is_served(client):
    missing = _documented() - _served(client) - UNDOCUMENTED_BY_OPENAPI
    assert not missing, f"in docs/api.md but not served: {sorted(missing)}"


def test_readme_links_the_contract_and_the_licences_exist():
    readme = (REPO / "README.md").read_text()
    assert "(docs/api.md)" in readme
    assert not re.search(r"\]\((?!docs/)[^)]*API\.md\)", readme)
    licence = (REPO / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence
    assert "CC BY-NC-SA 3.0" in readme and "non-commercial research" in readme


def test_readme_says_what_every_runtime_dependency_is_for():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.match(r"[A-Za-z0-9_.-]+", requirement)[0]
             for requirement in project["dependencies"]}
    section = (REPO / "README.md").read_text().split("\n## Libraries\n", 1)[1].split("\n## ")[0]
    named = {n.lower() for n in re.findall(r"`([A-Za-z0-9_.-]+)`", section)}
    assert sorted(n for n in names if n.lower() not in named) == []
