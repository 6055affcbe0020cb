"""Moltspaces through the Python package against the sandbox over real loopback HTTP:
registration (persisted), empty search, join (create), a voice turn with the STT/TTS stand-ins,
barge-in; and the daily-python example byte-compiles."""

import io
import json
import math
import py_compile
import struct
import urllib.request
import uuid
import wave
from pathlib import Path

import pytest

from moltlink import ErrorCode, MoltlinkError, SpacesClient
from moltlink.host import run_until


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={"content-type": "application/json"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10) as r:
        return json.loads(r.read())


def tone_wav(ms: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i * 0.05))) for i in range(16 * ms)))
    return buf.getvalue()


@pytest.fixture
def spaces_env(sandbox):
    return {"api_base": sandbox["MOLTSPACES_API_BASE"], "openai_base": sandbox["OPENAI_API_BASE"], "elevenlabs_base": sandbox["ELEVENLABS_API_BASE"]}


def test_rooms_and_a_voice_turn(sandbox, spaces_env, tmp_path):
    root = sandbox["OPENAI_API_BASE"].rsplit("/openai", 1)[0]
    saved = tmp_path / "registration.env"
    keys = b"OPENAI_API_KEY=sk-py\nELEVENLABS_API_KEY=xi-py\n"
    with SpacesClient(keys, spaces_env) as s:
        with pytest.raises(MoltlinkError) as err:
            s.search("anything")
        assert err.value.code == ErrorCode.NOT_REGISTERED
        call = s.register("py" + uuid.uuid4().hex[:8], "python test agent")
        done = run_until(s, lambda e: e.get("call_id") == call, saved)
        assert done["type"] == "spaces_registered"
    assert saved.read_bytes().startswith(b"MOLTSPACES_API_KEY=moltspaces_")

    topic = "py topic " + uuid.uuid4().hex[:6]
    seen = []
    with SpacesClient(keys + saved.read_bytes(), spaces_env) as s:
        call = s.search(topic)
        rooms = run_until(s, lambda e: e.get("call_id") == call)
        assert rooms["type"] == "spaces_rooms" and rooms["rooms"] == []
        call = s.join(topic)
        ticket = run_until(s, lambda e: e.get("call_id") == call and e["type"] != "spaces_turn")
        assert ticket["type"] == "spaces_ticket" and ticket["reason"] == "join"
        assert ticket["ticket"]["room_url"].startswith("https://sandbox.daily.co/py-topic-")
        assert s.state()["room"]["joined"] is True

        post(root + "/speech/_sandbox/transcripts", {"transcripts": ["How are you?"], "no_espeak": True})
        turn = s.utterance(tone_wav(600))
        transcript = run_until(s, lambda e: e["type"] == "spaces_transcript", on_event=seen.append)
        assert transcript["text"] == {"untrusted_text": "How are you?"} and transcript["turn"] == turn
        s.reply("Very well, thank you for asking.")
        run_until(s, lambda e: e["type"] == "spaces_audio", on_event=seen.append)
        pcm = s.take_audio()
        assert len(pcm) > 2 * 24000 and max(abs(v) for v in struct.unpack(f"<{len(pcm) // 2}h", pcm)) > 1000
        s.playback_finished()
        done = run_until(s, lambda e: e["type"] == "spaces_turn_done", on_event=seen.append)
        assert done["interrupted"] is False and done["latency"]["stt_ms"] is not None
        # Barge-in while speaking.
        post(root + "/speech/_sandbox/transcripts", {"transcripts": ["Tell me more."]})
        s.utterance(tone_wav(400))
        run_until(s, lambda e: e["type"] == "spaces_transcript")
        s.reply("Well, it is a long story.")
        run_until(s, lambda e: e["type"] == "spaces_audio")
        s.barge_in()
        cut = run_until(s, lambda e: e["type"] == "spaces_turn_done")
        assert cut["interrupted"] is True
        assert s.take_audio() == b""
        s.leave()
        left = run_until(s, lambda e: e["type"] == "spaces_left")
        assert left["room_name"] == ticket["ticket"]["room_name"]
    states = [e["state"] for e in seen if e["type"] == "spaces_turn"]
    assert states[:3] == ["thinking", "speaking", "listening"]
    assert not any("sk-py" in json.dumps(e) or "xi-py" in json.dumps(e) for e in seen)


def test_bad_input_is_a_clear_error(spaces_env):
    with pytest.raises(MoltlinkError) as err:
        SpacesClient(b"MOLTSPACES_API_BASE=http://example.com/v1\n")
    assert err.value.code == ErrorCode.INVALID_ARGUMENT
    with SpacesClient(b"OPENAI_API_KEY=k\n", spaces_env) as s:
        with pytest.raises(MoltlinkError) as err:
            s.utterance(b"not a wav")
        assert err.value.code == ErrorCode.INVALID_ARGUMENT
        with pytest.raises(MoltlinkError):
            s.command({"command": "fly"})


def test_daily_example_compiles(tmp_path):
    example = Path(__file__).resolve().parents[1] / "examples" / "daily_room.py"
    py_compile.compile(str(example), cfile=str(tmp_path / "daily_room.pyc"), doraise=True)
