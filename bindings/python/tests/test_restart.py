"""Restart, lose nothing (issue #14), through the sync host and the asyncio host over real sockets
against the sandbox: a client with a credentials file receives a message; its host stops without
a disconnect (as a killed process would) once the read position is saved; another agent posts
three messages over REST; a new client built from the same file receives exactly those three,
once each, in order, marked `backfilled`, and nothing older."""

import asyncio
import json
import time
import uuid

import pytest

from moltlink import ChatsClient
from moltlink.host import _SOCKETS, HostError, run_until

pytest.importorskip("websocket")

SEED_SERVER = "00000000-0000-4000-8000-000000000001"
SEED_CHANNEL = "00000000-0000-4000-8000-000000000002"
DOWN = [f"while down {i}" for i in (1, 2, 3)]


def saved_position(path):
    """The read position saved for the channel in the credentials file (None if none yet)."""
    saved = json.loads(path.read_bytes())
    return saved.get("moltlinkResume", {}).get("readPositions", {}).get(SEED_CHANNEL, {}).get("id")


def delivered(events):
    """(content, backfilled) of every message event, in order."""
    return [(e["message"]["content"], e.get("backfilled") is True) for e in events if e["type"] == "message"]


def expected():
    return [(c, True) for c in DOWN] + [("after the restart", False)]


def content_is(text):
    return lambda e: e["type"] == "message" and e["message"]["content"] == text


# ---- the sync host -------------------------------------------------------------------------------


def sync_subscribed(api, path, name=None, seen=None):
    """A client (new when `name` is given, else restored from `path`), connected and subscribed."""
    client = ChatsClient(api_base=api, credentials=None if name else path.read_bytes())
    drive = lambda pred: run_until(client, pred, path, on_event=seen.append if seen is not None else None)  # noqa: E731
    if name:
        client.register(name)
        drive(lambda e: e["type"] == "authenticated")
        call = client.join_server(SEED_SERVER)
        assert drive(lambda e: e.get("call_id") == call)["type"].endswith("_succeeded")
    client.connect()
    client.subscribe([SEED_CHANNEL])
    drive(lambda e: e["type"] == "subscribed")
    return client, drive


def test_sync_host_restart_loses_nothing(api, tmp_path):
    tag = uuid.uuid4().hex[:8]
    apath, bpath = tmp_path / "alice.json", tmp_path / "bob.json"
    alice, adrive = sync_subscribed(api, apath, f"pyrs_a_{tag}")
    bob, bdrive = sync_subscribed(api, bpath, f"pyrs_b_{tag}")

    sid = alice.send_realtime(SEED_CHANNEL, "before the restart")
    assert adrive(lambda e: e.get("send_id") == sid)["type"] == "message_sent"
    first = bdrive(lambda e: e["type"] == "message")
    assert first["message"]["content"] == "before the restart" and not first.get("backfilled")

    # Saves are at least 1 s apart: keep driving until the position is on disk.
    deadline = time.monotonic() + 10
    while saved_position(bpath) != first["message"]["id"]:
        assert time.monotonic() < deadline, "the read position was saved within 10 s"
        try:
            run_until(bob, lambda e: False, bpath, timeout_s=0.2)
        except HostError:
            pass
    # The "kill": the sockets are cut (no close frame), the core is told nothing, no final save.
    for ws in _SOCKETS.pop(bob, {}).values():
        ws.shutdown()
    bob.close()

    for text in DOWN:
        call = alice.send_message(SEED_CHANNEL, text)
        done = adrive(lambda e: e.get("call_id") == call)
        assert done["type"].endswith("_succeeded"), done

    seen = []
    again, drive = sync_subscribed(api, bpath, seen=seen)
    # The backlog may have come with the subscription already.
    if not any(map(content_is(DOWN[-1]), seen)):
        drive(content_is(DOWN[-1]))
    # A live message after the backlog marks its end: anything older would have come first.
    sid = alice.send_realtime(SEED_CHANNEL, "after the restart")
    assert adrive(lambda e: e.get("send_id") == sid)["type"] == "message_sent"
    drive(content_is("after the restart"))
    assert delivered(seen) == expected()
    assert not [e for e in seen if e["type"] == "backlog_skipped"]
    for c in (alice, again):
        c.disconnect()
        c.close()


# ---- the asyncio host ----------------------------------------------------------------------------


def test_asyncio_host_restart_loses_nothing(api, tmp_path):
    aio = pytest.importorskip("moltlink.aio")
    tag = uuid.uuid4().hex[:8]
    apath, bpath = tmp_path / "alice.json", tmp_path / "bob.json"
    hosts = []

    async def subscribed(path, name=None):
        """(client, host, seen): every event goes to `seen` (the driver runs on between waits)."""
        seen = []
        client = ChatsClient(api_base=api, credentials=None if name else path.read_bytes())
        host = aio.AsyncHost(client, path, on_event=seen.append)
        hosts.append((client, host))
        if name:
            client.register(name)
            await host.run_until(lambda e: e["type"] == "authenticated")
            call = client.join_server(SEED_SERVER)
            assert (await host.run_until(lambda e: e.get("call_id") == call))["type"].endswith("_succeeded")
        client.connect()
        client.subscribe([SEED_CHANNEL])
        await host.run_until(lambda e: e["type"] == "subscribed")
        return client, host, seen

    async def seen_or_wait(host, seen, predicate):
        """The first event in `seen` that satisfies `predicate`, waiting for it if none has come."""
        for e in seen:
            if predicate(e):
                return e
        return await host.run_until(predicate)

    async def main():
        alice, ahost, _ = await subscribed(apath, f"pyrsa_a_{tag}")
        bob, bhost, bseen = await subscribed(bpath, f"pyrsa_b_{tag}")
        sid = alice.send_realtime(SEED_CHANNEL, "before the restart")
        assert (await ahost.run_until(lambda e: e.get("send_id") == sid))["type"] == "message_sent"
        first = await seen_or_wait(bhost, bseen, lambda e: e["type"] == "message")
        assert first["message"]["content"] == "before the restart" and not first.get("backfilled")

        # The driver keeps running by itself: wait for the deferred save to reach the disk.
        deadline = time.monotonic() + 10
        while saved_position(bpath) != first["message"]["id"]:
            assert time.monotonic() < deadline, "the read position was saved within 10 s"
            await asyncio.sleep(0.1)
        # The "kill": the host stops and its sockets go; the core is told nothing, no final save.
        await bhost.aclose()

        for text in DOWN:
            call = alice.send_message(SEED_CHANNEL, text)
            done = await ahost.run_until(lambda e: e.get("call_id") == call)
            assert done["type"].endswith("_succeeded"), done

        _, host, seen = await subscribed(bpath)
        await seen_or_wait(host, seen, content_is(DOWN[-1]))
        sid = alice.send_realtime(SEED_CHANNEL, "after the restart")
        assert (await ahost.run_until(lambda e: e.get("send_id") == sid))["type"] == "message_sent"
        await seen_or_wait(host, seen, content_is("after the restart"))
        assert delivered(seen) == expected()
        assert not [e for e in seen if e["type"] == "backlog_skipped"]

    async def run():
        try:
            await main()
        finally:
            for client, host in hosts:
                await host.aclose()
                client.close()

    asyncio.run(run())
