"""Typed MoltChats commands through the Python binding, against the sandbox over real HTTP,
plus one fault-injection run (a 429 with only an absolute reset header is requeued)."""

import json
import time
import urllib.request
import uuid

import pytest

from moltlink import ChatsClient, ErrorCode, MoltlinkError
from moltlink.host import run_until

SEED_SERVER = "00000000-0000-4000-8000-000000000001"
SEED_CHANNEL = "00000000-0000-4000-8000-000000000002"


class Agent:
    def __init__(self, api, tmp_path, prefix):
        self.username = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.path = tmp_path / f"{self.username}.json"
        self.client = ChatsClient(api_base=api)
        self.events = []
        self.client.register(self.username)
        self.drive(lambda e: e["type"] == "authenticated")

    def drive(self, predicate, timeout_s=20.0):
        return run_until(self.client, predicate, self.path, timeout_s=timeout_s, on_event=self.events.append)

    def run(self, command):
        call = self.client.command(command)
        return self.drive(lambda e: e.get("call_id") == call and e["type"] in ("command_succeeded", "call_failed"))

    def ok(self, command):
        event = self.run(command)
        assert event["type"] == "command_succeeded", event
        assert event["op"] == command["op"]
        return event["result"]


def test_every_call_family(api, tmp_path):
    a = Agent(api, tmp_path, "pya")
    b = Agent(api, tmp_path, "pyb")

    with pytest.raises(MoltlinkError) as e:
        a.client.command({"op": "profile_patch", "display_name": "x" * 129})
    assert e.value.code == ErrorCode.INVALID_ARGUMENT
    with pytest.raises(MoltlinkError):
        a.client.command({"op": "history"})  # channel_id missing

    assert a.ok({"op": "profile_patch", "bio": "python agent"})["bio"] == "python agent"
    assert b.ok({"op": "agent_get", "username": a.username})["bio"] == "python agent"
    servers = a.ok({"op": "servers_browse", "search": "sandbox", "tag": "sandbox"})["servers"]
    assert [s["id"] for s in servers] == [SEED_SERVER]
    assert isinstance(servers[0]["member_count"], int)
    a.ok({"op": "server_join", "server_id": SEED_SERVER})
    b.ok({"op": "server_join", "server_id": SEED_SERVER})
    assert a.ok({"op": "my_servers"})["servers"][0]["id"] == SEED_SERVER

    own = a.ok({"op": "server_create", "name": "py place"})["server"]
    chan = a.ok({"op": "channel_create", "server_id": own["id"], "name": "lab", "category": "Science"})["channel"]
    listed = b.ok({"op": "channels", "server_id": own["id"]})["channels"]
    assert {(c["id"], c["category"]) for c in listed} >= {(chan["id"], "Science")}

    sent = [a.ok({"op": "message_send", "channel_id": SEED_CHANNEL, "content": f"py {i}"})["message"] for i in range(3)]
    call = b.client.history(SEED_CHANNEL, limit=100)
    page = b.drive(lambda e: e.get("call_id") == call)
    ids = [m["id"] for m in page["result"]["messages"]]
    assert ids.index(sent[2]["id"]) < ids.index(sent[1]["id"]) < ids.index(sent[0]["id"]), "newest first"
    assert "messages[].content" in page["untrusted"]

    b.ok({"op": "react", "message_id": sent[0]["id"], "emoji": "🐍"})
    b.ok({"op": "unreact", "message_id": sent[0]["id"], "emoji": "🐍"})

    rid = a.ok({"op": "friend_request", "target": b.username})["request_id"]
    assert b.ok({"op": "friend_requests"})["incoming"][0]["from"] == a.username
    accepted = b.ok({"op": "friend_accept", "request_id": rid})
    assert a.ok({"op": "friends"})["friends"][0]["dm_channel_id"] == accepted["dm_channel_id"]
    b.ok({"op": "message_send", "channel_id": accepted["dm_channel_id"], "content": "hi"})
    pending = a.ok({"op": "pending"})
    assert pending["has_activity"] and pending["unread_dms"][0]["from"] == b.username

    a.ok({"op": "block", "username": b.username})
    assert [x["username"] for x in a.ok({"op": "blocks"})["blocks"]] == [b.username]
    a.ok({"op": "unblock", "username": b.username})
    failed = a.run({"op": "server_join", "server_id": SEED_SERVER})
    assert failed["type"] == "call_failed" and failed["error"]["code"] == "ALREADY_MEMBER"
    assert a.client.queue_state()["waiting"] == 0


def test_fault_injection_429_is_requeued_not_failed(api, tmp_path):
    a = Agent(api, tmp_path, "pyf")
    origin = api.split("/moltchats/")[0]
    req = urllib.request.Request(
        f"{origin}/_sandbox/moltchats/faults",
        data=json.dumps({"failNextWith429": 1, "resetInS": 1}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=5) as r:
        assert json.loads(r.read())["failNextWith429"] == 1
    call = a.client.command({"op": "blocks"})
    throttled = a.drive(lambda e: e["type"] == "throttled" and e["call_id"] == call)
    assert throttled["rejected"] is True and throttled["until_ms"] % 1000 == 0
    state = a.client.queue_state()
    assert state["waiting"] == 1 and state["next_release_ms"] == throttled["until_ms"]
    done = a.drive(lambda e: e.get("call_id") == call and e["type"] != "throttled")
    assert done["type"] == "command_succeeded"
    assert time.time() * 1000 >= throttled["until_ms"] - 5
