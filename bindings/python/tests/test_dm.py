"""Moltbook DMs through the Python package: the issue's scenario against the sandbox over
real loopback HTTP, with both owners acting through the sandbox's admin routes."""

import json
import urllib.request
import uuid

import pytest

from moltlink import DmClient, ErrorCode, MoltlinkError
from moltlink.host import run_until


def admin(base: str, route: str, body=None):
    url = base.replace("/moltbook/api/v1", "/moltbook/_sandbox") + route
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST", headers={"content-type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def moltbook(sandbox):
    return sandbox["MOLTBOOK_API_BASE"]


def new_agent(base: str, owner: str):
    name = "py" + uuid.uuid4().hex[:10]
    return name, admin(base, "/agents", {"name": name, "owner": owner})["api_key"]


def outcome(client, call, seen):
    return run_until(client, lambda e: e.get("call_id") == call, on_event=seen.append, timeout_s=10)


def test_consent_escalation_and_block(moltbook):
    name_a, key_a = new_agent(moltbook, "owner_" + uuid.uuid4().hex[:8])
    owner_b = "owner_" + uuid.uuid4().hex[:8]
    name_b, key_b = new_agent(moltbook, owner_b)
    seen_a, seen_b = [], []
    with DmClient(key_a, api_base=moltbook) as a, DmClient(key_b, api_base=moltbook) as b:
        with pytest.raises(MoltlinkError) as err:
            a.request("short", to=name_b)
        assert err.value.code == ErrorCode.INVALID_ARGUMENT and "10-1000" in err.value.message

        done = outcome(a, a.request("Hi! My human wants to ask about the project.", to_owner="@" + owner_b), seen_a)
        assert done["type"] == "call_succeeded"
        cid = done["body"]["conversation_id"]
        assert a.state(cid) == "requested"

        # A's heartbeat sees nothing; B's sees the request and asks its human.
        for client, seen in ((a, seen_a), (b, seen_b)):
            client.heartbeat()
            checked = run_until(client, lambda e: e["type"] == "dm_checked", on_event=seen.append, timeout_s=10)
            assert checked["next_check_at_ms"] is not None
            client.heartbeat(False)
        assert not [e for e in seen_a if e["type"] == "dm_escalation"]
        escalations = [e for e in seen_b if e["type"] == "dm_escalation"]
        assert len(escalations) == 1
        assert escalations[0]["reason"] == "new_request" and escalations[0]["from"] == name_a
        assert escalations[0]["text"] == {"untrusted_text": "Hi! My human wants to ask about the project."}
        assert b.state(cid) == "awaiting_owner"

        # B's owner approves in the sandbox; B learns it from its inbox listing.
        admin(moltbook, "/approve", {"conversation_id": cid})
        outcome(b, b.conversations(), seen_b)
        assert b.state(cid) == "approved"
        outcome(a, a.conversations(), seen_a)
        assert a.state(cid) == "approved"

        assert outcome(a, a.send(cid, "When is the meeting?"), seen_a)["type"] == "call_succeeded"
        assert outcome(b, b.send(cid, "Question for your human: 3pm?", needs_human_input=True), seen_b)["type"] == "call_succeeded"
        seen_a.clear()
        outcome(a, a.check(), seen_a)
        escalations = [e for e in seen_a if e["type"] == "dm_escalation"]
        assert [e["reason"] for e in escalations] == ["needs_human_input"]
        assert admin(moltbook, "/stats")["read_calls"] == 0

        outcome(a, a.read(cid), seen_a)
        messages = [e for e in seen_a if e["type"] == "dm_message"]
        assert len(messages) == 1 and messages[0]["needs_human_input"] is True

        # B's owner blocks A: A's send is refused, and then A's next request locally.
        admin(moltbook, "/block", {"blocker": name_b, "blocked": name_a})
        failed = outcome(a, a.send(cid, "Still there?"), seen_a)
        assert failed["type"] == "call_failed" and failed["error"]["status"] == 403
        assert a.state(cid) == "blocked"
        with pytest.raises(MoltlinkError) as err:
            a.request("Please let us talk again.", to=name_b)
        assert err.value.code == ErrorCode.INVALID_STATE and "blocked" in err.value.message

    for event in seen_a + seen_b:
        assert key_a not in json.dumps(event) and key_b not in json.dumps(event)


def test_bare_host_and_redirects_keep_the_key(moltbook):
    _, key = new_agent(moltbook, "owner_" + uuid.uuid4().hex[:8])
    with pytest.raises(MoltlinkError) as err:
        DmClient(key, api_base="https://moltbook.com/api/v1")
    assert "bare host" in err.value.message
    before = admin(moltbook, "/stats")
    with DmClient(key, api_base=moltbook.replace("/moltbook/api/v1", "/moltbook-bare/api/v1")) as client:
        call = client.check()
        failed = run_until(client, lambda e: e.get("call_id") == call, timeout_s=10)
        assert failed["type"] == "call_failed"
        assert failed["error"]["code"] == "REDIRECT_REFUSED"
    after = admin(moltbook, "/stats")
    assert after["bare_requests"] == before["bare_requests"] + 1
    assert after["requests_with_key"] == before["requests_with_key"]
