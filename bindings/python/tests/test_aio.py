"""The asyncio host (moltlink.aio) over real sockets against the sandbox: login and rotation
under a 3 s token lifetime (the loop stays free, the driver does not tick), a realtime round
trip across a dropped socket, a DM heartbeat, a Moltspaces join, and the example script."""

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

from moltlink import ChatsClient, DmClient, SpacesClient  # noqa: E402
from moltlink.aio import AsyncHost, HostError  # noqa: E402
from test_dm import admin, new_agent  # noqa: E402

SEED_SERVER = "00000000-0000-4000-8000-000000000001"
SEED_CHANNEL = "00000000-0000-4000-8000-000000000002"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aio_chat.py"


def authenticated(how):
    return lambda e: e["type"] == "authenticated" and e["how"] == how


def count_pumps(client):
    """Wrap `client.pump` to count the driver's rounds."""
    calls = [0]
    inner = client.pump

    def pump(*args, **kwargs):
        calls[0] += 1
        return inner(*args, **kwargs)

    client.pump = pump
    return calls


async def ticker(ticks, stop):
    """Proof that the loop is never blocked: a 10 ms ticker keeps ticking."""
    while not stop.is_set():
        ticks.append(time.monotonic())
        await asyncio.sleep(0.01)


def test_login_and_rotation_without_blocking_or_ticking(short_token_sandbox, tmp_path):
    api = short_token_sandbox["MOLTCHATS_API_BASE"]
    path = tmp_path / "credentials.json"
    name = "pyaio_" + uuid.uuid4().hex[:10]

    async def main():
        ticks, stop = [], asyncio.Event()
        tick_task = asyncio.create_task(ticker(ticks, stop))
        client = ChatsClient(api_base=api)
        pumps = count_pumps(client)
        async with AsyncHost(client, path) as host:
            client.register(name)
            first = await host.run_until(authenticated("register"), timeout_s=20)
            assert first["username"] == name
            assert json.loads(path.read_bytes())["username"] == name
            # Two scheduled rotations (at ~80% of 3 s): the driver sleeps until each deadline.
            start, before = time.monotonic(), pumps[0]
            for _ in range(2):
                await host.run_until(authenticated("refresh"), timeout_s=10)
            elapsed = time.monotonic() - start
            assert 1.5 < elapsed < 10
            # A 20 ms tick would pump ~elapsed/0.02 times; a deadline-driven host a few per rotation.
            assert pumps[0] - before < 40, f"{pumps[0] - before} pumps in {elapsed:.1f} s"
            print(f"two rotations: {pumps[0] - before} driver rounds in {elapsed:.1f} s")
            call = client.whoami()
            done = await host.run_until(lambda e: e.get("call_id") == call)
            assert done["type"] == "call_succeeded" and done["body"]["username"] == name
        stop.set()
        await tick_task
        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        assert max(gaps) < 0.5, f"the loop was blocked for {max(gaps):.2f} s"
        client.close()

        # A new process: the saved file logs in again by refresh.
        with ChatsClient(credentials=path.read_bytes()) as again:
            async with AsyncHost(again, path) as host:
                again.login()
                await host.run_until(authenticated("refresh"))

    asyncio.run(main())


def test_auth_failure_and_idle_core_fail_fast(api):
    async def main():
        # Nothing asked of the core: waiting for an event that cannot come fails at once.
        with ChatsClient(api_base=api) as client:
            async with AsyncHost(client) as host:
                with pytest.raises(HostError, match="nothing to do"):
                    await host.run_until(lambda e: False, timeout_s=5)

    asyncio.run(main())


async def make_agent(api, tmp_path, prefix):
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    client = ChatsClient(api_base=api)
    host = AsyncHost(client, tmp_path / f"{name}.json")
    client.register(name)
    await host.run_until(lambda e: e["type"] == "authenticated")
    call = client.command({"op": "server_join", "server_id": SEED_SERVER})
    await host.run_until(lambda e: e.get("call_id") == call)
    client.connect()
    client.subscribe([SEED_CHANNEL])
    await host.run_until(lambda e: e["type"] == "subscribed")
    return client, host


def set_fault(api, body):
    origin = api.split("/moltchats/")[0]
    req = urllib.request.Request(f"{origin}/_sandbox/moltchats/faults", data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST")
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5).read()


def test_realtime_round_trip_and_a_dropped_socket(api, tmp_path):
    async def main():
        (alice, ahost), (bob, bhost) = await asyncio.gather(make_agent(api, tmp_path, "pyaio_a"), make_agent(api, tmp_path, "pyaio_b"))

        async def first_message():  # bob listens through the events() iterator
            async for event in bhost.events():
                if event["type"] == "message" and event["message"]["content"] == "hello over asyncio":
                    return event

        received = asyncio.wait_for(first_message(), 15)
        sid = alice.send_realtime(SEED_CHANNEL, "hello over asyncio")
        sent, got = await asyncio.gather(ahost.run_until(lambda e: e.get("send_id") == sid), received)
        assert sent["type"] == "message_sent"
        assert got["trust"] == "untrusted_remote_text" and got["own"] is False

        # The server stores the next message and drops the socket before the ack: the core
        # reconnects and confirms it once, over a new socket.
        set_fault(api, {"wsDropOnNextSend": True})
        text = f"stored, then the socket died ({uuid.uuid4().hex[:8]})"  # the channel is shared
        seen = []
        received = bhost.run_until(lambda e: e["type"] == "message" and e["message"]["content"] == text, timeout_s=30)
        sid = alice.send_realtime(SEED_CHANNEL, text)
        ahost._on_event = seen.append
        sent, _ = await asyncio.gather(ahost.run_until(lambda e: e.get("send_id") == sid, timeout_s=30), received)
        assert sent["type"] == "message_sent"
        assert any(e["type"] in ("disconnected", "reconnecting") for e in seen), [e["type"] for e in seen]
        call = alice.command({"op": "history", "channel_id": SEED_CHANNEL, "limit": 100})
        page = await ahost.run_until(lambda e: e.get("call_id") == call)
        assert [m["content"] for m in page["result"]].count(text) == 1, "no duplicate send"
        for client, host in ((alice, ahost), (bob, bhost)):
            client.disconnect()
            host.wake()
            await host.aclose()
            client.close()

    asyncio.run(main())


def test_dm_heartbeat(sandbox):
    moltbook = sandbox["MOLTBOOK_API_BASE"]

    async def main():
        name_a, key_a = new_agent(moltbook, "owner_" + uuid.uuid4().hex[:8])
        owner_b = "owner_" + uuid.uuid4().hex[:8]
        _, key_b = new_agent(moltbook, owner_b)
        with DmClient(key_a, api_base=moltbook) as a, DmClient(key_b, api_base=moltbook) as b:
            async with AsyncHost(a) as ahost, AsyncHost(b) as bhost:
                call = a.request("Hi! My human wants to ask about the project.", to_owner="@" + owner_b)
                assert (await ahost.run_until(lambda e: e.get("call_id") == call))["type"] == "call_succeeded"
                # B's heartbeat runs on its own schedule: its first check escalates the request.
                escalation = bhost.run_until(lambda e: e["type"] == "dm_escalation", timeout_s=10)
                b.heartbeat()
                checked = bhost.run_until(lambda e: e["type"] == "dm_checked", timeout_s=10)
                escalated, checked = await asyncio.gather(escalation, checked)
                assert escalated["reason"] == "new_request" and escalated["from"] == name_a
                assert escalated["text"] == {"untrusted_text": "Hi! My human wants to ask about the project."}
                assert checked["next_check_at_ms"] > time.time() * 1000
                b.heartbeat(False)
                bhost.wake()
        assert key_a and key_b

    asyncio.run(main())


def test_spaces_join(sandbox, tmp_path):
    options = {"api_base": sandbox["MOLTSPACES_API_BASE"], "openai_base": sandbox["OPENAI_API_BASE"], "elevenlabs_base": sandbox["ELEVENLABS_API_BASE"]}
    saved = tmp_path / "registration.env"

    async def main():
        with SpacesClient(b"OPENAI_API_KEY=sk-py\n", options) as s:
            async with AsyncHost(s, saved) as host:
                call = s.register("py" + uuid.uuid4().hex[:8], "asyncio test agent")
                assert (await host.run_until(lambda e: e.get("call_id") == call))["type"] == "spaces_registered"
                topic = "aio topic " + uuid.uuid4().hex[:6]
                call = s.join(topic)
                ticket = await host.run_until(lambda e: e.get("call_id") == call and e["type"] != "spaces_turn")
                assert ticket["type"] == "spaces_ticket" and ticket["reason"] == "join"
                assert s.state()["room"]["joined"] is True
                s.leave()
                await host.run_until(lambda e: e["type"] == "spaces_left")
        assert saved.read_bytes().startswith(b"MOLTSPACES_API_KEY=moltspaces_")

    asyncio.run(main())


def test_example_script(api, tmp_path):
    env = dict(os.environ, MOLTCHATS_API_BASE=api)
    result = subprocess.run([sys.executable, str(EXAMPLE), "--state-dir", str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "bob received: hello from alice" in result.stdout
