"""The realtime session through the Python binding (cdylib) and websocket-client, against the
sandbox's WebSocket gateway over real sockets, including a dropped-socket fault."""

import json
import urllib.request
import uuid

import pytest

from moltlink import ChatsClient
from moltlink.host import run_until

pytest.importorskip("websocket")

SEED_SERVER = "00000000-0000-4000-8000-000000000001"
SEED_CHANNEL = "00000000-0000-4000-8000-000000000002"


def make(api, tmp_path, prefix):
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    path = tmp_path / f"{name}.json"
    client = ChatsClient(api_base=api)
    client.register(name)
    run_until(client, lambda e: e["type"] == "authenticated", path)
    call = client.command({"op": "server_join", "server_id": SEED_SERVER})
    run_until(client, lambda e: e.get("call_id") == call, path)
    return client, path, name


def test_send_over_ws_and_receive_live_and_after_a_dropped_socket(api, tmp_path):
    alice, apath, _ = make(api, tmp_path, "pyws_a")
    bob, bpath, _ = make(api, tmp_path, "pyws_b")
    for c, p in ((alice, apath), (bob, bpath)):
        c.connect()
        c.subscribe([SEED_CHANNEL])
        run_until(c, lambda e: e["type"] == "subscribed", p)

    sid = alice.send_realtime(SEED_CHANNEL, "hello from python over ws")
    sent = run_until(alice, lambda e: e.get("send_id") == sid, apath)
    assert sent["type"] == "message_sent"
    got = run_until(bob, lambda e: e["type"] == "message", bpath)
    assert got["message"]["content"] == "hello from python over ws"
    assert got["trust"] == "untrusted_remote_text" and got["own"] is False

    # The server stores the next message and drops the socket before the ack.
    origin = api.split("/moltchats/")[0]
    req = urllib.request.Request(f"{origin}/_sandbox/moltchats/faults", data=json.dumps({"wsDropOnNextSend": True}).encode(), headers={"content-type": "application/json"}, method="POST")
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5).read()
    sid = alice.send_realtime(SEED_CHANNEL, "stored, then the socket died")
    sent = run_until(alice, lambda e: e.get("send_id") == sid, apath, timeout_s=30)
    assert sent["type"] == "message_sent"
    got = run_until(bob, lambda e: e["type"] == "message" and "socket died" in e["message"]["content"], bpath)
    history = alice.command({"op": "history", "channel_id": SEED_CHANNEL, "limit": 100})
    page = run_until(alice, lambda e: e.get("call_id") == history, apath)
    contents = [m["content"] for m in page["result"]]  # history: a bare array, newest first
    assert contents.count("stored, then the socket died") == 1, "no duplicate send"
    for c in (alice, bob):
        c.disconnect()
        c.close()
