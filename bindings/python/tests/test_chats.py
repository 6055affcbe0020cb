"""The Python binding against the real library: offline checks, then real HTTP to the sandbox."""

import json
import stat

import pytest

import moltlink
from moltlink import ChatsClient, ErrorCode, Kind, MoltlinkError
from moltlink.host import HostError, run_until

NOW = 1_750_000_000_000


def authenticated(how):
    return lambda e: e["type"] == "authenticated" and e["how"] == how


def test_version():
    assert moltlink.version() == moltlink.__version__


def test_register_login_refresh_whoami_then_reload(api, username, tmp_path):
    path = tmp_path / "credentials.json"
    log = []
    with ChatsClient(api_base=api) as client:
        client.register(username)
        event = run_until(client, authenticated("register"), path, log=log.append)
        assert event["username"] == username
        assert client.is_authenticated()
        assert client.agent_id == event["agent_id"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        saved = json.loads(path.read_bytes())
        assert saved["username"] == username and saved["apiBase"] == api and "refreshToken" in saved

        client.refresh()
        run_until(client, authenticated("refresh"), path)

        call = client.whoami()
        done = run_until(client, lambda e: e.get("call_id") == call, path)
        assert done["type"] == "call_succeeded"
        assert done["body"]["username"] == username
        agent_id = client.agent_id
    assert any(line.startswith("persist #") for line in log)
    assert not any("refreshToken" in line or "Bearer" in line for line in log)

    # A new process: the saved file alone (its apiBase) is enough to log in again by refresh.
    with ChatsClient(credentials=path.read_bytes()) as again:
        assert again.api_base == api and again.agent_id == agent_id and again.username == username
        assert not again.is_authenticated()
        again.login()
        run_until(again, authenticated("refresh"), path)
        call = again.whoami()
        assert run_until(again, lambda e: e.get("call_id") == call, path)["body"]["id"] == agent_id


def test_poll_outputs_step_by_step():
    with ChatsClient(api_base="http://127.0.0.1/moltchats/api/v1", seed=bytes(32)) as client:
        assert client.poll().kind == Kind.WAIT
        client.register("poll_agent", now_ms=NOW)
        out = client.poll()
        assert out.kind == Kind.PERSIST and out.id > 0
        assert out.meta == {"kind": "persist", "ticket": out.id}
        assert b"privateKey" in out.body
        assert "privateKey" not in repr(out), "bodies stay out of repr"
        assert client.poll() == moltlink.Output(Kind.WAIT, 0, None, {"kind": "wait", "until_ms": None}, b"")

        client.handle_persisted(out.id, now_ms=NOW)
        http = client.poll()
        assert http.kind == Kind.HTTP
        assert (http.meta["method"], http.meta["url"]) == ("POST", "http://127.0.0.1/moltchats/api/v1/agents/register")
        assert json.loads(http.body)["username"] == "poll_agent"
        assert repr(http).startswith("Output(HTTP #") and "poll_agent" not in repr(http)

        # A transport failure is retried after a back-off: the wait now has a deadline.
        client.handle_transport_error(http.id, "connection refused", now_ms=NOW)
        retry = client.poll()
        assert retry.kind == Kind.EVENT and retry.event["type"] == "auth_retrying"
        wait = client.poll()
        assert wait.kind == Kind.WAIT and wait.deadline_ms > NOW
        client.handle_timeout(now_ms=wait.deadline_ms)
        assert client.poll().kind == Kind.HTTP


def test_pump_delivers_to_callbacks_and_reraises():
    with ChatsClient(api_base="http://127.0.0.1/moltchats/api/v1") as client:
        client.register("pump_agent", now_ms=NOW)
        persisted = []
        ignore = lambda *args: None
        assert client.pump(ignore, lambda t, b: persisted.append((t, b)), ignore) is None
        assert len(persisted) == 1 and b"privateKey" in persisted[0][1]

        client.handle_persisted(persisted[0][0], now_ms=NOW)
        sent = []

        def boom(id, meta, body):
            sent.append(id)
            raise RuntimeError("callback failed")

        with pytest.raises(RuntimeError, match="callback failed"):
            client.pump(boom, ignore, ignore)
        assert len(sent) == 1, "the request was still delivered once"
        assert client.poll().kind == Kind.WAIT


def test_garbage_credentials_are_refused_without_echo():
    garbage = b'{"username": "x", "privateKey": "-----BEGIN TOPSECRET-----'
    with pytest.raises(MoltlinkError) as info:
        ChatsClient(credentials=garbage)
    err = info.value
    assert err.code == 5 == ErrorCode.INVALID_CREDENTIALS
    assert err.name == "INVALID_CREDENTIALS"
    assert "TOPSECRET" not in str(err) and "TOPSECRET" not in err.message
    with pytest.raises(MoltlinkError) as info:
        ChatsClient(credentials=b'{"username":"x","privateKey":"not a pem"}')
    assert info.value.code == 5 and "not a pem" not in str(info.value)


def test_unknown_ids_and_bad_arguments():
    with ChatsClient(api_base="http://127.0.0.1/moltchats/api/v1") as client:
        with pytest.raises(MoltlinkError) as info:
            client.handle_response(424242, 200, {"content-type": "application/json"}, b"{}")
        assert (info.value.code, info.value.name) == (6, "UNKNOWN_ID")
        with pytest.raises(MoltlinkError) as info:
            client.handle_persisted(99)
        assert info.value.code == ErrorCode.UNKNOWN_ID
        with pytest.raises(MoltlinkError) as info:
            client.login()
        assert info.value.code == ErrorCode.NOT_REGISTERED
        with pytest.raises(MoltlinkError) as info:
            client.register("not a valid name!")
        assert info.value.code == ErrorCode.INVALID_ARGUMENT
        with pytest.raises(MoltlinkError) as info:
            client.call("GET", "no-slash")
        assert info.value.code == ErrorCode.INVALID_ARGUMENT
    with pytest.raises(MoltlinkError) as info:
        ChatsClient(seed=b"short")
    assert info.value.code == ErrorCode.INVALID_ARGUMENT and "32 bytes" in info.value.message
    with pytest.raises(MoltlinkError) as info:
        ChatsClient(api_base="ftp://example.com")
    assert info.value.code == ErrorCode.INVALID_ARGUMENT


def test_closed_client_is_refused():
    client = ChatsClient()
    client.close()
    client.close()
    with pytest.raises(ValueError):
        client.poll()


def test_run_until_reports_auth_failure(api, tmp_path):
    """Credentials for an agent the server never heard of: re-auth fails, and says so."""
    with ChatsClient(api_base=api) as donor:
        donor.register("py_donor_unused", now_ms=NOW)
        key_file = donor.poll().body
    creds = json.loads(key_file)
    creds["agentId"] = "00000000-0000-0000-0000-000000000000"
    with ChatsClient(api_base=api, credentials=json.dumps(creds).encode()) as client:
        client.login()
        with pytest.raises(HostError) as info:
            run_until(client, authenticated("challenge"), tmp_path / "c.json", timeout_s=10)
        assert any(e["type"] == "auth_failed" for e in info.value.events)
