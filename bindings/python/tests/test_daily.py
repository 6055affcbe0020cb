"""The Daily host (moltlink.daily) on daily-python, offline: as far as Daily goes without a
real room. Devices are created; espeak-ng speech is pumped through the pipeline and Daily's
virtual devices at the 20 ms pace; a voice turn runs through the host against the sandbox
(the room's audio stands in for what Daily's speaker delivers in a call); a join to the
sandbox's room URL (unreachable: not a Daily room) fails with DailyJoinError, bounded in time.
What needs a real room (media flowing through Daily) is in the README's Python section."""

import json
import time
import urllib.request
import uuid
from array import array

import pytest

daily = pytest.importorskip(
    "daily", reason="daily-python is not installed: run-tests.sh installs it from PyPI; it has no wheel for this platform"
)

from moltlink import AudioPipeline, SpacesClient  # noqa: E402
from moltlink.daily import FRAME, AudioPump, DailyDevices, DailyJoinError, DailyRoom, serve  # noqa: E402
from moltlink.host import run_until  # noqa: E402

from test_audio import speech  # noqa: E402

PIPELINE = {"device": {"rate": 48000, "channels": 1}}


class RoomAudio:
    """What Daily's virtual speaker yields in a call (the room's mixed audio), from a buffer."""

    def __init__(self, pcm: array):
        self.data = pcm.tobytes()
        self.at = 0

    def read_frames(self, n: int) -> bytes:
        chunk = self.data[self.at : self.at + 2 * n]
        self.at += len(chunk)
        return chunk


@pytest.fixture(scope="module")
def registered(sandbox, tmp_path_factory):
    """Keys plus a saved Moltspaces registration on the sandbox, and the client options."""
    options = {"api_base": sandbox["MOLTSPACES_API_BASE"], "openai_base": sandbox["OPENAI_API_BASE"], "elevenlabs_base": sandbox["ELEVENLABS_API_BASE"]}
    keys = b"OPENAI_API_KEY=sk-daily\nELEVENLABS_API_KEY=xi-daily\n"
    saved = tmp_path_factory.mktemp("daily") / "registration.env"
    with SpacesClient(keys, options) as s:
        call = s.register("dy" + uuid.uuid4().hex[:8], "daily host test")
        run_until(s, lambda e: e.get("call_id") == call, saved)
    return keys + saved.read_bytes(), options


def join_ticket(s: SpacesClient) -> dict:
    call = s.join("daily " + uuid.uuid4().hex[:6])
    ticket = run_until(s, lambda e: e.get("call_id") == call and e["type"] != "spaces_turn")
    assert ticket["type"] == "spaces_ticket", ticket
    return ticket["ticket"]


def test_devices_and_audio_through_pipeline():
    devices = DailyDevices()
    assert (devices.mic.sample_rate, devices.mic.channels) == (48000, 1)
    assert (devices.speaker.sample_rate, devices.speaker.channels) == (48000, 1)
    assert devices.mic.name != DailyDevices().mic.name  # unique names per process
    # A WAV's frames straight to the virtual mic and a read from the virtual speaker: Daily
    # takes them without error (it moves nothing until a call runs its media engine).
    wav = speech("Writing to the virtual microphone.", 48000)
    for i in range(0, 10 * FRAME, FRAME):
        assert 0 <= devices.mic.write_frames(wav[i : i + FRAME].tobytes()) <= FRAME
        assert len(devices.speaker.read_frames(FRAME)) <= 2 * FRAME

    with AudioPipeline(PIPELINE) as pipeline:
        pump = AudioPump(pipeline, devices)
        pump.push_tts(speech("I am the agent speaking into the room.", 24000).tobytes())
        pump.start()
        time.sleep(1.5)
        pump.stop()
        assert pump.error is None
        # The 20 ms pace held by the audio thread (Daily's speaker does not pace us offline).
        assert 60 <= pump.frames <= 85, pump.frames
        assert pump.offered == pump.frames * FRAME and 0 <= pump.accepted <= pump.offered
        assert pump.played_energy > 25, "agent speech went from the pipeline to the virtual mic"
        assert pump.max_step_s < 0.020, f"one frame took {pump.max_step_s * 1000:.1f} ms"
        print(f"daily offline: {pump.frames} frames in 1.5 s, slowest {pump.max_step_s * 1000:.2f} ms, mic accepted {pump.accepted}/{pump.offered} samples, room {pump.heard} samples")


def test_voice_turn_through_the_host(sandbox, registered):
    """Room speech -> pump -> pipeline VAD -> utterance -> STT stand-in -> answer -> TTS ->
    pump -> pipeline playback -> virtual mic. The control thread blocks on HTTP meanwhile."""
    env, options = registered
    root = sandbox["OPENAI_API_BASE"].rsplit("/openai", 1)[0]
    body = json.dumps({"transcripts": ["What is the weather like?"], "no_espeak": True}).encode()
    req = urllib.request.Request(root + "/speech/_sandbox/transcripts", data=body, method="POST", headers={"content-type": "application/json"})
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10).read()

    heard, seen = [], []
    room = array("h", bytes(2 * 24000)) + speech("What is the weather like", 48000) + array("h", bytes(2 * 96000))
    with SpacesClient(env, options) as s, AudioPipeline(PIPELINE) as pipeline:
        join_ticket(s)
        pump = AudioPump(pipeline, DailyDevices())
        pump.speaker = RoomAudio(room)
        serve(s, pump, lambda text: heard.append(text) or "It is sunny.", seconds=20, on_event=seen.append,
              until=lambda e: e["type"] == "spaces_turn_done")
        assert pump.error is None
    assert heard == ["What is the weather like?"]
    done = [e for e in seen if e["type"] == "spaces_turn_done"]
    assert done and done[0]["interrupted"] is False, json.dumps(seen, indent=None)[:3000]
    assert pump.played_energy > 10, "the reply's speech was played toward the virtual mic"
    assert not any("sk-daily" in json.dumps(e) or "xi-daily" in json.dumps(e) for e in seen)


def test_unreachable_room_fails_cleanly(registered):
    """A Moltspaces ticket from the sandbox names https://sandbox.daily.co/<room>, which Daily
    cannot look up: the join raises DailyJoinError with Daily's reason (offline after Daily's
    own retries, ~19 s; online at once), never showing the meeting token."""
    env, options = registered
    with SpacesClient(env, options) as s:
        ticket = join_ticket(s)
    assert ticket["room_url"].startswith("https://sandbox.daily.co/") and ticket["token"]
    started = time.monotonic()
    with DailyRoom(DailyDevices()) as room, pytest.raises(DailyJoinError) as err:
        room.join(ticket, timeout=60)
    assert time.monotonic() - started < 60
    assert str(err.value).startswith(f"cannot join the Daily room {ticket['room_url']}: "), err.value
    assert ticket["token"] not in str(err.value)
    assert not room.joined


def test_join_timeout_is_bounded():
    ticket = {"room_url": "https://sandbox.daily.co/moltlink-timeout-" + uuid.uuid4().hex[:8], "token": "t"}
    started = time.monotonic()
    with pytest.raises(DailyJoinError, match=r"did not finish within 1 s"):
        with DailyRoom(DailyDevices()) as room:
            room.join(ticket, timeout=1)
    # join (1 s) + leave (0.5 s) + release (at most 5 s, on a helper thread): no hang.
    assert time.monotonic() - started < 8
