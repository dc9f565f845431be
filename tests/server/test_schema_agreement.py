"""The published JSON Schema and the running server accept exactly the same requests.

Each body is sent to a real `worldgen serve` (``POST /v1/jobs?dry_run=true``: checked exactly as a
job is, not queued) and validated against the schema it publishes at ``/v1/schema`` and inside
``/openapi.json``; a body that is not JSON (NaN, Infinity, 1e400) is no instance of any schema.
"""

from __future__ import annotations

import json
import math

import pytest

from .test_server_http import _raw

SEED_MAX = 2**64 - 1
OK = {"prompt": "a fjord", "size": [64, 32]}


def _with(**fields) -> str:
    return json.dumps({**OK, **fields})


BODIES = [
    # Numbers at and beyond every limit.
    _with(span=0.5), _with(span=1), _with(span=360), _with(span=360.5), _with(span=0), _with(span="360"),
    _with(guidance=80), _with(guidance=50), _with(guidance=0), _with(guidance=-0.1), _with(guidance=True),
    _with(steps=0), _with(steps=1), _with(steps=1000), _with(steps=1001), _with(steps=7.0), _with(steps=7.5),
    _with(steps="10"), _with(steps=None), _with(steps=False),
    _with(seed=SEED_MAX), _with(seed=SEED_MAX + 1), _with(seed=-1), _with(seed=1.5), _with(seed=3.0),
    _with(seed=None), '{"prompt": "a", "size": [64, 32], "seed": ' + "9" * 5000 + "}",
    # Sizes: sides, multiples of 8, and the pixel limit (16384x1024 is exactly 16 Mi pixels).
    _with(size=[16384, 8192]), _with(size=[16384, 1024]), _with(size=[16384, 1032]), _with(size=[4096, 4096]),
    _with(size=[4104, 4096]), _with(size=[8, 8]), _with(size=[0, 8]), _with(size=[12, 8]), _with(size=[16392, 8]),
    _with(size=[256.0, 64]), _with(size=[256.5, 64]), _with(size=[8, 16384]), _with(size=[1024, 16384]),
    _with(size=[1032, 16384]), _with(size="256x64"), _with(size=[256]), _with(size=[256, 64, 1]),
    _with(size=[True, 64]),
    # Not JSON at all.
    '{"prompt": "x", "guidance": NaN}', '{"prompt": "x", "span": Infinity}', '{"prompt": "x", "span": 1e400}',
    # Text fields.
    _with(prompt=""), _with(prompt="   "), _with(prompt="x" * 2000), _with(prompt="x" * 2001),
    _with(prompt=" " + "x" * 1999 + " "), _with(prompt=5), _with(negative="n" * 2000), _with(negative="n" * 2001),
    _with(negative=""), _with(negative=["a"]), json.dumps({"size": [64, 32]}),
    _with(name="ok.1"), _with(name="a\n"), _with(name="../evil"), _with(name=".hidden"), _with(name="x" * 101),
    _with(dir="a/b"), _with(dir=""), _with(dir="a/../b"), _with(dir="/tmp"), _with(dir="a//b"), _with(dir=".serve"),
    _with(dir="/".join("a" * 9)), _with(dir="/".join("a" * 8)), _with(dir="a/b\n"),
    _with(modality="depth\n"), _with(modality="normal"), _with(scheduler=None), _with(scheduler="dpm"),
    _with(preset="fast"), _with(preset="slow"), _with(preset=None), _with(preset=3),
    # Unknown fields, and not an object.
    _with(sise=[8, 8]), _with(recipe="a.toml"), "[1, 2]", '"text"', "null",
    # Regions.
    _with(regions=[{"prompt": "a lighthouse", "azimuth": [0, 90]}]),
    _with(regions=[{"prompt": "a", "azimuth": [300, 60], "elevation": [30, -10], "weight": 100, "feather": 0}]),
    _with(regions=[{"prompt": "a", "azimuth": [90, 90]}]), _with(regions=[{"prompt": "a", "azimuth": [0, 360.5]}]),
    _with(regions=[{"prompt": "a", "azimuth": [0, 90], "elevation": [10, 10]}]),
    _with(regions=[{"prompt": "a", "azimuth": [0, 90], "elevation": [-91, 10]}]),
    _with(regions=[{"prompt": "a", "azimuth": [0, 90], "weight": 0}]),
    _with(regions=[{"prompt": "a", "azimuth": [0, 90], "weight": 101}]),
    _with(regions=[{"prompt": "a", "azimuth": [0, 90], "feather": 361}]),
    _with(regions=[{"prompt": "a", "azimuth": [0, 90], "mask": "m.png"}]),
    _with(regions=[{"prompt": " ", "azimuth": [0, 90]}]), _with(regions=[{"azimuth": [0, 90]}]),
    _with(regions=["0:90=a"]), _with(regions=[{"prompt": "a", "azimuth": [0, 90]}] * 32),
    _with(regions=[{"prompt": "a", "azimuth": [0, 90]}] * 33), _with(regions=None), _with(regions=[]),
]


def _strict_json(text: str):
    """The document, or None when it is not JSON (NaN and friends are no JSON numbers)."""
    def refuse(_):
        raise ValueError("not JSON")

    try:
        value = json.loads(text, parse_constant=refuse)
    except ValueError:
        return None
    if any(isinstance(v, float) and not math.isfinite(v) for v in _numbers(value)):
        return None  # 1e400 parses to inf in Python; JSON has no such number
    return value


def _numbers(value):
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, (int, float)):
        yield value


@pytest.fixture(scope="module")
def validators(procedural_server):
    from jsonschema import Draft202012Validator

    schema = procedural_server.get("/v1/schema")
    Draft202012Validator.check_schema(schema)
    openapi = procedural_server.get("/openapi.json")
    component = openapi["components"]["schemas"]["WorldRequest"]
    body = openapi["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/WorldRequest"}
    return Draft202012Validator(schema), Draft202012Validator(component)


def test_schema_and_server_accept_exactly_the_same_requests(procedural_server, validators):
    accepted_by_server, accepted_by_schema = set(), set()
    for index, body in enumerate(BODIES):
        status, reply = _raw(procedural_server.url, "POST", "/v1/jobs?dry_run=true", body.encode(),
                             {"Content-Type": "application/json"})
        assert status in (200, 400), (body[:120], status, reply)
        if status == 200:
            accepted_by_server.add(index)
        else:
            assert set(reply) == {"error"} and "\n" not in reply["error"], reply
        document = _strict_json(body)
        verdicts = {v.is_valid(document) for v in validators} if document is not None else {False}
        assert len(verdicts) == 1, body[:120]  # /v1/schema and /openapi.json say the same
        if verdicts.pop():
            accepted_by_schema.add(index)
    disagree = sorted(accepted_by_server ^ accepted_by_schema)
    assert not disagree, [(BODIES[i][:120], "server" if i in accepted_by_server else "schema") for i in disagree]
    # The set is a real test of both: many accepted, many refused.
    assert 25 <= len(accepted_by_server) <= len(BODIES) - 40, len(accepted_by_server)


def test_a_dry_run_queues_nothing_and_shows_the_defaults(procedural_server):
    before = procedural_server.get("/v1/jobs")["jobs"]
    status, reply = _raw(procedural_server.url, "POST", "/v1/jobs?dry_run=true", _with(preset="fast").encode(),
                         {"Content-Type": "application/json"})
    assert status == 200 and reply["request"]["steps"] == 14 and reply["request"]["size"] == [64, 32]
    assert procedural_server.get("/v1/jobs")["jobs"] == before


def test_docs_and_openapi_are_served(procedural_server):
    import urllib.request

    openapi = procedural_server.get("/openapi.json")
    assert {"/v1/health", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/events"} <= set(openapi["paths"])
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(procedural_server.url + "/docs",
                                                                           timeout=30) as reply:
        assert reply.status == 200 and b"swagger" in reply.read().lower()
