"""Moltspaces over the C ABI (`ml_spaces_*`): rooms, the Daily join ticket and voice turns.
No logic lives here: search/create/token, rejoin, retries, the turn-taking machine and the
exact OpenAI/ElevenLabs requests are the core's.

    with SpacesClient(open(".env", "rb").read()) as s:
        call = s.join("web3 builders")            # -> spaces_ticket {room_url, token, room_name}
        turn = s.utterance(pipeline.utterance_wav())  # -> spaces_transcript (untrusted text)
        s.reply("Hello!")                         # -> spaces_audio: pipeline.push_tts(s.take_audio())
        s.barge_in() / s.playback_started() / s.playback_finished()  # from the pipeline's events

Events (JSON dicts): spaces_registered, spaces_rooms, spaces_ticket, spaces_retrying,
spaces_left, spaces_turn {state: listening|thinking|speaking|interrupted}, spaces_transcript,
spaces_audio, spaces_turn_done {latency: {stt_ms, agent_ms, tts_first_byte_ms,
tts_first_audio_ms, tts_total_ms, playback_ms}}, call_failed."""

from __future__ import annotations

import json
from ctypes import byref, c_uint64, c_void_p
from typing import Any, Mapping, Optional

from . import _ffi
from .client import _check, _Client, _now, _text


class SpacesClient(_Client):
    """A Moltspaces client. `env`: the skill's `.env` bytes (and/or the saved registration,
    which has the same form). `options`: {"api_base", "openai_base", "elevenlabs_base",
    "voice_id", "stt_model", "tts_model", "token_lifetime_ms", "rejoin_margin_ms",
    "max_attempts", "backoff_ms"}; the sandbox's OPENAI_API_BASE/ELEVENLABS_API_BASE go here."""

    _prefix = "ml_spaces"

    def __init__(self, env: bytes = b"", options: Optional[Mapping[str, Any]] = None):
        self._lib = _ffi.lib()
        self._handle: Optional[int] = None
        env = bytes(env)
        handle = c_void_p()
        opts = None if options is None else _text(json.dumps(dict(options)))
        _check(self._lib.ml_spaces_new(env, len(env), opts, byref(handle)))
        self._handle = handle.value

    def command(self, command: Mapping[str, Any], now_ms: Optional[int] = None) -> int:
        """Run a command dict (`{"command": "join", "topic": …}`); returns its call id (turn for reply)."""
        out = c_uint64(0)
        _check(self._lib.ml_spaces_command(self._h, _text(json.dumps(dict(command))), _now(now_ms), byref(out)))
        return out.value

    def register(self, name: str, description: str, now_ms: Optional[int] = None) -> int:
        return self.command({"command": "register", "name": name, "description": description}, now_ms)

    def search(self, topic: str, now_ms: Optional[int] = None) -> int:
        return self.command({"command": "search", "topic": topic}, now_ms)

    def create(self, topic: str, now_ms: Optional[int] = None) -> int:
        return self.command({"command": "create", "topic": topic}, now_ms)

    def token(self, room: str, now_ms: Optional[int] = None) -> int:
        return self.command({"command": "token", "room": room}, now_ms)

    def join(self, topic: str, now_ms: Optional[int] = None) -> int:
        return self.command({"command": "join", "topic": topic}, now_ms)

    def leave(self, now_ms: Optional[int] = None) -> None:
        self.command({"command": "leave"}, now_ms)

    def dropped(self, now_ms: Optional[int] = None) -> None:
        """The Daily transport dropped: a fresh ticket comes as spaces_ticket (reason rejoin)."""
        self.command({"command": "dropped"}, now_ms)

    def reply(self, text: str, now_ms: Optional[int] = None) -> int:
        return self.command({"command": "reply", "text": text}, now_ms)

    def skip(self, now_ms: Optional[int] = None) -> None:
        self.command({"command": "skip"}, now_ms)

    def barge_in(self, now_ms: Optional[int] = None) -> None:
        self.command({"command": "barge_in"}, now_ms)

    def playback_started(self, now_ms: Optional[int] = None) -> None:
        """The pipeline's playback-started event: measures first-audio latency."""
        self.command({"command": "playback_started"}, now_ms)

    def playback_finished(self, now_ms: Optional[int] = None) -> None:
        self.command({"command": "playback_finished"}, now_ms)

    def utterance(self, wav: bytes, now_ms: Optional[int] = None) -> int:
        """An utterance WAV from the audio pipeline: starts a turn; returns its number."""
        wav = bytes(wav)
        turn = c_uint64(0)
        _check(self._lib.ml_spaces_utterance(self._h, wav, len(wav), _now(now_ms), byref(turn)))
        return turn.value

    def handle_body_chunk(self, id: int, chunk: bytes, now_ms: Optional[int] = None) -> None:
        chunk = bytes(chunk)
        _check(self._lib.ml_spaces_handle_body_chunk(self._h, id, chunk, len(chunk), _now(now_ms)))

    def handle_persisted(self, ticket: int, now_ms: Optional[int] = None) -> None:
        _check(self._lib.ml_spaces_handle_persisted(self._h, ticket, _now(now_ms)))

    def take_audio(self) -> bytes:
        """TTS audio received so far: 16-bit little-endian mono PCM at 24 kHz (drained)."""
        return self._read(self._lib.ml_spaces_take_audio)

    def state(self) -> dict:
        return json.loads(self._read(self._lib.ml_spaces_state))
