"""The voice pipeline (C ABI `ml_audio_*`): 20 ms frames of interleaved int16 in and out.

    p = AudioPipeline({"device": {"rate": 48000, "channels": 1}})
    packet = p.capture(mic_frame, encode=True)   # bytes (Opus) or b"" without encode
    speaker_frame = p.playback()                 # array('h'), p.next_frame_samples()[1] long
    for event in p.events(): ...                 # {"type": "speech-started", "at_ms": ...}
    wav = p.utterance_wav()                      # the last utterance, 16 kHz mono WAV

Frames may be any buffer of int16 (array('h'), bytes of little-endian samples, a list).
A frame is `frame_samples` long, except at rates where 20 ms is not a whole number of samples
(11 025 Hz): there frames alternate 220/221, and `next_frame_samples()` says the next sizes.
"""

from __future__ import annotations

import ctypes
import json
from array import array
from ctypes import POINTER, byref, c_int16, c_size_t, c_uint64, c_void_p
from typing import Any, Iterator

from . import _ffi
from .client import _check

_MAX_PACKET = 1275


def _samples(pcm: Any) -> array:
    if isinstance(pcm, array) and pcm.typecode == "h":
        return pcm
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        a = array("h")
        a.frombytes(bytes(pcm))
        return a
    return array("h", pcm)


def _ptr(a: array):
    addr, _ = a.buffer_info()
    return ctypes.cast(addr, POINTER(c_int16))


class AudioPipeline:
    """One duplex pipeline; `config` is an AudioConfig dict (every field optional)."""

    def __init__(self, config: dict | None = None):
        lib = _ffi.lib()
        self._h = c_void_p()
        text = json.dumps(config).encode() if config is not None else None
        _check(lib.ml_audio_new(text, byref(self._h)))
        n = c_size_t()
        _check(lib.ml_audio_frame_samples(self._h, byref(n)))
        self.frame_samples = n.value
        self._out = array("h", bytes(2 * n.value))
        self._packet = ctypes.create_string_buffer(_MAX_PACKET)

    def next_frame_samples(self) -> tuple[int, int]:
        """Samples the next `capture` takes and the next `playback` returns."""
        capture, playback = c_size_t(), c_size_t()
        _check(_ffi.lib().ml_audio_next_frame_samples(self._h, byref(capture), byref(playback)))
        return capture.value, playback.value

    def capture(self, mic: Any, encode: bool = False) -> bytes:
        a = _samples(mic)
        n = c_size_t()
        cap = _MAX_PACKET if encode else 0
        _check(_ffi.lib().ml_audio_capture(self._h, _ptr(a), len(a), self._packet if encode else None, cap, byref(n)))
        return self._packet.raw[: n.value]

    def push_packet(self, speaker: int, seq: int, payload: bytes, arrival_ms: int) -> None:
        _check(_ffi.lib().ml_audio_push_packet(self._h, speaker, seq & 0xFFFF, payload, len(payload), arrival_ms))

    def push_tts(self, pcm: Any) -> None:
        a = _samples(pcm)
        _check(_ffi.lib().ml_audio_push_tts(self._h, _ptr(a), len(a)))

    def playback(self) -> array:
        n = self.next_frame_samples()[1]
        _check(_ffi.lib().ml_audio_playback(self._h, _ptr(self._out), n))
        return array("h", self._out[:n])

    def poll_event(self) -> dict | None:
        lib, needed = _ffi.lib(), c_size_t()
        rc = lib.ml_audio_poll_event(self._h, None, 0, byref(needed))
        if needed.value == 0:
            _check(rc)
            return None
        buf = ctypes.create_string_buffer(needed.value + 1)
        _check(lib.ml_audio_poll_event(self._h, buf, len(buf), byref(needed)))
        return json.loads(buf.raw[: needed.value])

    def events(self) -> Iterator[dict]:
        while (e := self.poll_event()) is not None:
            yield e

    def utterance(self) -> array:
        lib, needed = _ffi.lib(), c_size_t()
        lib.ml_audio_utterance(self._h, None, 0, byref(needed))
        out = array("h", bytes(2 * needed.value))
        _check(lib.ml_audio_utterance(self._h, _ptr(out), len(out), byref(needed)))
        return out

    def utterance_wav(self) -> bytes:
        lib, needed = _ffi.lib(), c_size_t()
        lib.ml_audio_utterance_wav(self._h, None, 0, byref(needed))
        buf = ctypes.create_string_buffer(needed.value + 1)
        _check(lib.ml_audio_utterance_wav(self._h, buf, len(buf), byref(needed)))
        return buf.raw[: needed.value]

    def flush_playback(self) -> int:
        ms = c_uint64()
        _check(_ffi.lib().ml_audio_flush_playback(self._h, byref(ms)))
        return ms.value

    def close(self) -> None:
        if self._h:
            _ffi.lib().ml_audio_free(self._h)
            self._h = c_void_p()

    def __enter__(self) -> "AudioPipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
