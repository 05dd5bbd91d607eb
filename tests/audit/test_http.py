"""The read-only HTTP API over a real socket: auth, roles, queries, proofs, OpenAPI."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xborder_gateway.audit import AuditLog, Checkpoint, NoteVerifier, merkle, verify_bundle
from xborder_gateway.audit.http import AuditApi, TokenStore, make_server, serve_in_thread
from xborder_gateway.config import Settings


class Api:
    def __init__(self, base: str, token: str, operator_token: str) -> None:
        self.base = base
        self.token = token
        self.operator_token = operator_token

    def get(self, path: str, token: str | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.base + path, method=method)  # noqa: S310 - http://127.0.0.1 only
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - our own local server
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers), exc.read()

    def json(self, path: str) -> Any:
        status, _, body = self.get(path, self.token)
        assert status == 200, body
        return json.loads(body)


@pytest.fixture
def api(tmp_path: Path, make_event: Any) -> Iterator[Api]:
    settings = Settings(home=tmp_path, audit_url=None, audit_checkpoint_entries=10)
    with AuditLog.open(settings, "VN") as writer:
        for start in range(0, 30, 10):
            writer.append([make_event(i) for i in range(start, start + 10)])
    tokens = TokenStore(tmp_path / "audit" / "api-tokens.json")
    token = tokens.add("alice")
    operator = tokens.add("bob", role="operator")
    log = AuditLog.open(settings, "VN", read_only=True)
    server = make_server(AuditApi(log, tokens), "127.0.0.1", 0)
    serve_in_thread(server)
    try:
        yield Api(f"http://127.0.0.1:{server.server_address[1]}", token, operator)
    finally:
        server.shutdown()
        server.server_close()
        log.close()


def test_openapi_is_public_and_describes_every_route(api: Api) -> None:
    status, _headers, body = api.get("/openapi.json")
    assert status == 200
    doc = json.loads(body)
    assert doc["openapi"].startswith("3.")
    assert {"/v1/entries", "/v1/entries/{index}", "/v1/proof/inclusion", "/v1/proof/consistency",
            "/v1/checkpoint", "/v1/key", "/v1/bundle/{index}", "/v1/tree"} <= set(doc["paths"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


@pytest.mark.parametrize(
    ("name", "token", "status"),
    [("no token", None, 401), ("unknown token", "not-a-token", 401), ("operator role", "operator", 403)],
)
def test_auth_is_required(api: Api, name: str, token: str | None, status: int) -> None:
    got, headers, body = api.get("/v1/tree", api.operator_token if token == "operator" else token)
    assert got == status, name
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Bearer")
    assert b"entries" not in body


def test_read_only(api: Api) -> None:
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = api.get("/v1/entries", api.token, method=method)
        assert status == 405
        assert headers["Allow"] == "GET, HEAD"


def test_queries_and_proofs(api: Api) -> None:
    tree = api.json("/v1/tree")
    assert tree["size"] == 30
    found = api.json("/v1/entries?declaration=305100000004&type=sent")
    assert [e["index"] for e in found["entries"]] == [19]
    page = api.json("/v1/entries?limit=7&after=20")
    assert [e["index"] for e in page["entries"]] == list(range(21, 28))
    assert api.json("/v1/entries/5")["entry"]["kafka_offset"] == 5
    proof = api.json("/v1/proof/inclusion?index=5&size=30")
    assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), 5, 30,
                                   [bytes.fromhex(h) for h in proof["hashes"]], bytes.fromhex(tree["root"]))
    cons = api.json("/v1/proof/consistency?old=10&new=30")
    assert merkle.verify_consistency(10, 30, bytes.fromhex(cons["old_root"]), bytes.fromhex(tree["root"]),
                                     [bytes.fromhex(h) for h in cons["hashes"]])
    key_status, _, key = api.get("/v1/key", api.token)
    note_status, _, note = api.get("/v1/checkpoint", api.token)
    assert (key_status, note_status) == (200, 200)
    cp = Checkpoint.open(note.decode(), NoteVerifier.parse(key.decode()))
    assert (cp.size, cp.root.hex()) == (30, tree["root"])
    bundle = api.json("/v1/bundle/12")
    assert verify_bundle(bundle, key.decode().strip()).index == 12


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/entries/999", 404),
        ("/v1/proof/inclusion?index=30", 404),
        ("/v1/proof/inclusion", 400),
        ("/v1/proof/inclusion?index=-1", 400),
        ("/v1/proof/consistency?old=5&new=99", 404),
        ("/v1/entries?type=nonsense", 400),
        ("/v1/entries?since=yesterday", 400),
        ("/v1/nothing", 404),
        ("/v1/entries?message_id=" + "x" * 3000, 414),
    ],
)
def test_bad_requests(api: Api, path: str, status: int) -> None:
    got, _headers, body = api.get(path, api.token)
    assert got == status, body
    assert "error" in json.loads(body)
