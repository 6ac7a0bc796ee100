"""Drift check: docs/openapi.yaml describes exactly the routes the code serves.

The routes are read from three places that must agree: Cargo.toml's
`[workspace.metadata.lambda.watch.router]` (the local stack), template.yaml's HttpApi events
(AWS), and `Route` in shared/service/src/api.rs (`method_and_path`, `weight`). The document must
have every one of them and no other, each operation named after its `Route` variant
(`CreateJob` -> `createJob`) and carrying its `x-weight`.

Run: .venv/bin/python -m pytest infra/tests/test_openapi_routes.py
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

Route = tuple[str, str]  # (METHOD, path pattern)


def document() -> dict:
    return yaml.safe_load((REPO / "docs/openapi.yaml").read_text())


def document_routes() -> set[Route]:
    return {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def cargo_router_routes() -> set[Route]:
    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    router = cargo["workspace"]["metadata"]["lambda"]["watch"]["router"]
    return {(entry["method"].upper(), path) for path, entries in router.items() for entry in entries}


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads template.yaml's short-form intrinsics (`!Ref`, `!Sub`, ...) as plain values."""


def _any_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_CloudFormationLoader.add_multi_constructor("!", _any_tag)


def template_routes() -> set[Route]:
    template = yaml.load((REPO / "template.yaml").read_text(), Loader=_CloudFormationLoader)
    routes = set()
    for resource in template["Resources"].values():
        for event in (resource.get("Properties") or {}).get("Events", {}).values():
            if event.get("Type") == "HttpApi":
                props = event["Properties"]
                routes.add((props["Method"].upper(), props["Path"]))
    return routes


def _match_arms(fn_name: str) -> str:
    """The body of `fn fn_name` in api.rs's `impl Route` (up to the next `pub fn`)."""
    source = (REPO / "shared/service/src/api.rs").read_text()
    start = source.index(f"pub fn {fn_name}(")
    end = source.find("pub fn ", start + 1)
    return source[start:end]


def code_routes() -> dict[str, Route]:
    """`Route` variant -> (METHOD, path), from `Route::method_and_path`."""
    arms = re.findall(r'Route::(\w+)\s*=>\s*\(\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*\)', _match_arms("method_and_path"))
    return {variant: (method, path) for variant, method, path in arms}


def code_weights() -> dict[str, int]:
    return {variant: int(w) for variant, w in re.findall(r"Route::(\w+)\s*=>\s*(\d+)", _match_arms("weight"))}


def test_the_code_is_read() -> None:
    # Guards the readers themselves: an empty set would make every comparison below vacuous.
    declared = re.search(r"pub const ALL: \[Route; (\d+)\]", (REPO / "shared/service/src/api.rs").read_text())
    assert declared and len(code_routes()) == int(declared.group(1)) >= 6
    assert set(code_weights()) == set(code_routes())
    assert cargo_router_routes() and template_routes()


@pytest.mark.parametrize("source", [cargo_router_routes, template_routes], ids=["Cargo.toml router", "template.yaml"])
def test_every_served_route_is_documented_and_nothing_else(source) -> None:
    served, documented = source(), document_routes()
    assert served - documented == set(), "served but missing from docs/openapi.yaml"
    assert documented - served == set(), "in docs/openapi.yaml but not served"


def test_document_matches_route_in_api_rs() -> None:
    assert set(code_routes().values()) == document_routes()


def test_operation_ids_and_weights_follow_route() -> None:
    paths = document()["paths"]
    weights = code_weights()
    for variant, (method, path) in code_routes().items():
        operation = paths[path][method.lower()]
        assert operation["operationId"] == variant[0].lower() + variant[1:], (method, path)
        assert operation["x-weight"] == weights[variant], (method, path)


def test_the_document_is_valid_openapi() -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.readers import read_from_filename

    spec, _ = read_from_filename(str(REPO / "docs/openapi.yaml"))
    validate(spec)
