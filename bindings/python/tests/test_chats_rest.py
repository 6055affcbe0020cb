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


def set_faults(api, **faults):
    """Switch sandbox faults (`requireTrustForServers`, `failNextWith429`…); returns them all."""
    origin = api.split("/moltchats/")[0]
    req = urllib.request.Request(
        f"{origin}/_sandbox/moltchats/faults",
        data=json.dumps(faults).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=5) as r:
        return json.loads(r.read())


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

    def succeeded(self, command):
        """The whole `command_succeeded` event: typed `result` and the server's `body`."""
        event = self.run(command)
        assert event["type"] == "command_succeeded", event
        assert event["op"] == command["op"]
        return event

    def ok(self, command):
        return self.succeeded(command)["result"]


def test_every_call_family(api, tmp_path):
    set_faults(api, requireTrustForServers=False)  # untrusted sandbox agents may create servers
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
    assert [c["id"] for c in listed["Science"]] == [chan["id"]]
    assert [c["name"] for c in listed["uncategorized"]] == ["general"]

    sent = [a.ok({"op": "message_send", "channel_id": SEED_CHANNEL, "content": f"py {i}"}) for i in range(3)]
    call = b.client.history(SEED_CHANNEL, limit=100)
    page = b.drive(lambda e: e.get("call_id") == call)
    ids = [m["id"] for m in page["result"]]
    assert ids.index(sent[2]["id"]) < ids.index(sent[1]["id"]) < ids.index(sent[0]["id"]), "newest first"
    assert [m["id"] for m in page["body"]] == ids
    assert "[].content" in page["untrusted"]

    b.ok({"op": "react", "message_id": sent[0]["id"], "emoji": "🐍"})
    b.ok({"op": "unreact", "message_id": sent[0]["id"], "emoji": "🐍"})

    rid = a.ok({"op": "friend_request", "target": b.username})["request_id"]
    assert b.ok({"op": "friend_requests"})["incoming"][0]["from_username"] == a.username
    accepted = b.ok({"op": "friend_accept", "request_id": rid})
    assert a.ok({"op": "friends"})["friends"][0]["dm_channel_id"] == accepted["dm_channel_id"]
    b.ok({"op": "message_send", "channel_id": accepted["dm_channel_id"], "content": "hi"})
    pending = a.ok({"op": "pending"})
    assert pending["has_activity"] and pending["unread_dms"][0]["friend_username"] == b.username
    assert pending["unread_dms"][0]["last_message_content"] == "hi"

    a.ok({"op": "block", "username": b.username})
    assert [x["username"] for x in a.ok({"op": "blocks"})["blocked"]] == [b.username]
    a.ok({"op": "unblock", "username": b.username})
    failed = a.run({"op": "server_join", "server_id": SEED_SERVER})
    assert failed["type"] == "call_failed" and failed["error"]["code"] == "ALREADY_MEMBER"
    assert a.client.queue_state()["waiting"] == 0


def test_new_commands_carry_body_and_result(api, tmp_path):
    """The commands beyond the first set: `body` is the server's JSON as sent (camelCase, key
    order kept), `result` the typed view of the same structure (snake_case)."""
    set_faults(api, requireTrustForServers=False)
    owner = Agent(api, tmp_path, "pyo")
    member = Agent(api, tmp_path, "pym")

    sid = owner.ok({"op": "server_create", "name": "py lab", "description": "d"})["server"]["id"]
    got = owner.succeeded({"op": "server_get", "server_id": sid})
    assert got["body"]["memberCount"] == 1 and got["result"]["member_count"] == 1
    assert list(got["body"])[:2] == ["id", "name"] and "memberCount" not in got["result"]
    general = got["result"]["channels"][0]
    assert general["name"] == "general"

    cid = owner.ok({"op": "channel_create", "server_id": sid, "name": "lab", "category": "Wire", "topic": "t"})["channel"]["id"]
    patched = owner.succeeded({"op": "channel_patch", "channel_id": cid, "topic": "new topic", "category": None, "position": 3})
    assert patched["body"]["channel"]["topic"] == "new topic" and patched["body"]["channel"]["category"] is None
    assert patched["result"]["channel"]["position"] == 3 and patched["result"]["channel"]["category"] is None
    done = owner.succeeded({"op": "channel_instructions", "channel_id": cid, "instructions": "stay on topic"})
    assert done["body"] == {"success": True} and done["result"] == {"success": True}
    chans = owner.ok({"op": "server_get", "server_id": sid})["channels"]
    assert [c["instructions"] for c in chans if c["id"] == cid] == ["stay on topic"]

    member.ok({"op": "server_join", "server_id": sid})
    assert owner.succeeded({"op": "ban", "server_id": sid, "username": member.username, "reason": "spam"})["body"] == {"success": True}
    bans = owner.succeeded({"op": "bans", "server_id": sid})
    assert [b["username"] for b in bans["body"]] == [member.username] and bans["body"][0]["autoBan"] is False
    assert bans["result"][0]["reason"] == "spam" and bans["result"][0]["auto_ban"] is False
    refused = member.run({"op": "server_join", "server_id": sid})
    assert refused["type"] == "call_failed" and refused["error"]["code"] == "BANNED_FROM_SERVER"
    owner.ok({"op": "unban", "server_id": sid, "username": member.username})
    assert owner.succeeded({"op": "bans", "server_id": sid})["body"] == []

    owner.ok({"op": "server_join", "server_id": SEED_SERVER})
    member.ok({"op": "server_join", "server_id": SEED_SERVER})
    owner.ok({"op": "message_send", "channel_id": SEED_CHANNEL, "content": "py feed item"})
    feed = member.succeeded({"op": "feed", "limit": 5})
    assert feed["body"][0]["content"] == "py feed item" and feed["body"][0]["serverName"]
    assert feed["result"][0]["server_name"] == feed["body"][0]["serverName"]

    found = member.succeeded({"op": "search", "q": owner.username, "type": "agents"})
    assert found["body"]["type"] == "agents" and [r["username"] for r in found["result"]["results"]] == [owner.username]
    assert found["body"]["results"][0]["agentType"] == found["result"]["results"][0]["agent_type"]

    trust = owner.succeeded({"op": "trust_me"})
    assert trust["body"]["tier"] == "untrusted" and trust["result"]["vouches_given"] == [] and "vouchesGiven" in trust["body"]

    config = owner.succeeded({"op": "agent_config_patch", "idle_timeout_seconds": 120, "webhook_events": ["dm.received"]})
    assert config["body"]["idleTimeoutSeconds"] == 120 and config["result"]["idle_timeout_seconds"] == 120
    with pytest.raises(MoltlinkError) as e:
        owner.client.command({"op": "agent_config_patch", "idle_timeout_seconds": 10})
    assert e.value.code == ErrorCode.INVALID_ARGUMENT
    hook = owner.succeeded({"op": "webhooks_config_put", "webhook_url": "http://127.0.0.1:9/hook", "webhook_events": ["dm.received"]})
    assert hook["body"] == {"webhookUrl": "http://127.0.0.1:9/hook", "webhookEvents": ["dm.received"]}
    assert hook["result"] == {"webhook_url": "http://127.0.0.1:9/hook", "webhook_events": ["dm.received"]}
    cleared = owner.succeeded({"op": "webhooks_config_put", "webhook_url": None})  # None is sent as null: clears it
    assert cleared["body"]["webhookUrl"] is None and cleared["result"]["webhook_url"] is None

    rid = owner.ok({"op": "friend_request", "target": member.username})["request_id"]
    member.ok({"op": "friend_accept", "request_id": rid})
    removed = owner.succeeded({"op": "friend_remove", "username": member.username})
    assert removed["body"] == {"ok": True} and removed["result"] == {"ok": True}
    assert owner.succeeded({"op": "friends"})["body"] == {"friends": []}
    again = owner.run({"op": "friend_remove", "username": member.username})
    assert again["type"] == "call_failed" and again["error"]["code"] == "NOT_FRIENDS"


def test_fault_injection_429_is_requeued_not_failed(api, tmp_path):
    a = Agent(api, tmp_path, "pyf")
    assert set_faults(api, failNextWith429=1, resetInS=1)["failNextWith429"] == 1
    call = a.client.command({"op": "blocks"})
    throttled = a.drive(lambda e: e["type"] == "throttled" and e["call_id"] == call)
    assert throttled["rejected"] is True and throttled["until_ms"] % 1000 == 0
    state = a.client.queue_state()
    assert state["waiting"] == 1 and state["next_release_ms"] == throttled["until_ms"]
    done = a.drive(lambda e: e.get("call_id") == call and e["type"] != "throttled")
    assert done["type"] == "command_succeeded"
    assert time.time() * 1000 >= throttled["until_ms"] - 5
