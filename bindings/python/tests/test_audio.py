"""The audio pipeline through the cdylib, on real espeak-ng speech."""

import io
import subprocess
import wave
from array import array

import pytest

from moltlink import AudioPipeline, ErrorCode, MoltlinkError


def speech(text: str, rate: int) -> array:
    wav = subprocess.run(["espeak-ng", "--stdout", text], check=True, capture_output=True).stdout
    raw = subprocess.run(
        ["sox", "-t", "wav", "-", "-r", str(rate), "-c", "1", "-t", "s16", "-"], input=wav, check=True, capture_output=True
    ).stdout
    a = array("h")
    a.frombytes(raw)
    return a


def test_vad_utterance_and_opus_loopback():
    with AudioPipeline({"device": {"rate": 24000, "channels": 2}}) as p:
        assert p.frame_samples == 960
        mono = array("h", bytes(2 * 24000)) + speech("Hello from Python, testing the voice pipeline.", 24000)
        mono += array("h", bytes(2 * 24000))
        stereo = array("h", (s for s in mono for _ in range(2)))
        events, energy = [], 0
        for i in range(0, len(stereo) - 960 + 1, 960):
            packet = p.capture(stereo[i : i + 960], encode=True)
            assert packet
            p.push_packet(5, i // 960, packet, i // 960 * 20)
            out = p.playback()
            energy += sum(v * v for v in out)
            events.extend(p.events())
        assert events[0]["type"] == "speech-started" and abs(events[0]["at_ms"] - 1000) < 150, events
        assert any(e["type"] == "speech-stopped" for e in events), events
        with wave.open(io.BytesIO(p.utterance_wav())) as w:
            assert (w.getframerate(), w.getnchannels()) == (16000, 1)
            assert w.getnframes() == len(p.utterance()) > 16000
        assert energy > 0


def test_barge_in_flushes_tts():
    with AudioPipeline() as p:
        p.push_tts(speech("I am the agent and I will talk for a long while now.", 24000))
        user = speech("Stop talking please, I have a question.", 48000)
        barge = None
        for k in range(200):
            p.playback()
            at = k * 960
            frame = user[at : at + 960] if k >= 50 else array("h", bytes(1920))
            if len(frame) < 960:
                frame = array("h", bytes(1920))
            p.capture(frame)
            for e in p.events():
                if e["type"] == "barge-in":
                    barge = e
        assert barge is not None and barge["flushed_ms"] > 500


def test_11025_hz_frames_alternate():
    """20 ms is not a whole number of samples at 11 025 Hz: frames alternate 220/221."""
    with AudioPipeline({"device": {"rate": 11025, "channels": 1}}) as p:
        assert p.frame_samples == 221
        p.push_tts(array("h", [1000] * 24000))
        captured = played = 0
        sizes = set()
        for _ in range(50):
            n, expected = p.next_frame_samples()
            sizes.add(n)
            assert p.capture(array("h", [(i * 37) % 4000 for i in range(n)]), encode=True)
            captured += n
            assert len(p.playback()) == expected
            played += expected
        assert (captured, played, sorted(sizes)) == (11025, 11025, [220, 221])
        wrong = 221 if p.next_frame_samples()[0] == 220 else 220
        with pytest.raises(MoltlinkError):
            p.capture(array("h", [0] * wrong))


def test_bad_input_raises():
    with pytest.raises(MoltlinkError) as e:
        AudioPipeline({"device": {"rate": 1000}})
    assert e.value.code == ErrorCode.INVALID_ARGUMENT
    with AudioPipeline({"device": {"rate": 22050, "channels": 1}, "tts_rate": 22050}) as p:  # espeak-ng's rate
        assert p.frame_samples == 441
    with AudioPipeline() as p, pytest.raises(MoltlinkError):
        p.capture(array("h", [0] * 7))
