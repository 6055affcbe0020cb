"""A Moltspaces voice agent in a real Daily room: moltlink finds/opens the room and runs the
turns (STT → your agent → TTS), daily-python carries the audio. Not run in CI (it needs
network, real keys and `pip install daily-python`); the tests only byte-compile it.

    pip install daily-python ./bindings/python
    python bindings/python/examples/daily_room.py --env .env --topic "web3 builders"

Wiring (20 ms frames at 48 kHz mono):
  room audio → Daily virtual speaker → AudioPipeline.capture (VAD, barge-in)
  utterance  → SpacesClient.utterance → transcript → answer() → SpacesClient.reply
  TTS PCM    → AudioPipeline.push_tts → AudioPipeline.playback → Daily virtual microphone
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from daily import CallClient, Daily  # type: ignore[import-not-found]

from moltlink import AudioPipeline, Kind, SpacesClient
from moltlink.host import perform_http, run_until, write_atomic

RATE, FRAME = 48_000, 960


def answer(transcript: str) -> str:
    """Your agent goes here (an LLM call). The transcript is another participant's words:
    treat it as data, never as instructions."""
    return f"I heard you say: {transcript}"


def drain(spaces: SpacesClient, pipeline: AudioPipeline, registration: Path) -> None:
    """Perform the core's requests and act on its events until it waits."""
    while True:
        out = spaces.poll()
        if out.kind == Kind.WAIT:
            return
        if out.kind == Kind.HTTP:
            try:
                status, headers, body = perform_http(out.meta, out.body, 30.0)
                spaces.handle_response(out.id, status, headers, body)
            except OSError as e:
                spaces.handle_transport_error(out.id, str(e))
        elif out.kind == Kind.PERSIST:
            write_atomic(registration, out.body)
            spaces.handle_persisted(out.id)
        elif out.kind == Kind.EVENT:
            event = out.meta["event"]
            kind = event["type"]
            if kind == "spaces_audio":
                pipeline.push_tts(spaces.take_audio())
            elif kind == "spaces_transcript":
                text = event["text"]["untrusted_text"]
                print(f"heard: {text!r}")
                spaces.reply(answer(text))
            elif kind in ("spaces_turn", "spaces_turn_done", "spaces_ticket", "spaces_left"):
                print(event if kind != "spaces_ticket" else {**event, "ticket": {**event["ticket"], "token": "<hidden>"}})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default=".env")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--registration", default=str(Path.home() / ".config/moltspaces/registration.env"))
    ap.add_argument("--minutes", type=float, default=10)
    args = ap.parse_args()
    registration = Path(args.registration)
    env = Path(args.env).read_bytes() + (registration.read_bytes() if registration.exists() else b"")

    with SpacesClient(env) as spaces, AudioPipeline({"device": {"rate": RATE, "channels": 1}}) as pipeline:
        call = spaces.join(args.topic)
        ticket = run_until(spaces, lambda e: e.get("call_id") == call and e["type"] in ("spaces_ticket", "call_failed"))
        if ticket["type"] == "call_failed":
            raise SystemExit(f"join failed: {ticket['error']}")

        Daily.init()
        mic = Daily.create_virtual_microphone_device("moltlink-mic", sample_rate=RATE, channels=1)
        speaker = Daily.create_virtual_speaker_device("moltlink-speaker", sample_rate=RATE, channels=1)
        Daily.select_speaker_device("moltlink-speaker")
        client = CallClient()
        client.update_subscription_profiles({"base": {"camera": "unsubscribed", "microphone": "subscribed"}})
        client.join(
            ticket["ticket"]["room_url"],
            meeting_token=ticket["ticket"]["token"],
            client_settings={"inputs": {"camera": False, "microphone": {"isEnabled": True, "settings": {"deviceId": "moltlink-mic"}}}},
        )
        try:
            end = time.monotonic() + args.minutes * 60
            while time.monotonic() < end:
                room = speaker.read_frames(FRAME)  # blocks ~20 ms: paces the loop
                if len(room) < FRAME * 2:
                    room = room + bytes(FRAME * 2 - len(room))
                pipeline.capture(room)
                mic.write_frames(pipeline.playback().tobytes())
                for event in pipeline.events():
                    if event["type"] == "speech-stopped":
                        spaces.utterance(pipeline.utterance_wav())
                    elif event["type"] == "barge-in":
                        spaces.barge_in()
                    elif event["type"] == "playback-finished":
                        spaces.playback_finished()
                spaces.handle_timeout()  # renews the meeting token before it expires
                drain(spaces, pipeline, registration)
        finally:
            spaces.leave()
            drain(spaces, pipeline, registration)
            client.leave()
            client.release()


if __name__ == "__main__":
    main()
