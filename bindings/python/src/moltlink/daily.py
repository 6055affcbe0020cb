"""A Daily host: a Moltspaces ticket's room on daily-python, wired to the AudioPipeline.
`pip install "moltlink[daily]"` (daily-python from PyPI).

    devices = DailyDevices()                       # virtual mic + speaker, 48 kHz mono
    with AudioPipeline({"device": {"rate": 48000, "channels": 1}}) as pipeline:
        pump = AudioPump(pipeline, devices)        # the audio thread: 20 ms frames
        with DailyRoom(devices) as room:
            room.join(ticket["ticket"], timeout=30)  # DailyJoinError on failure or timeout
            serve(spaces, pump, answer, seconds=600)

Wiring (20 ms frames at 48 kHz mono):
  room audio -> virtual speaker -> AudioPipeline.capture (VAD, barge-in)
  AudioPipeline.playback (agent speech) -> virtual microphone -> the room

Threads: the audio thread (AudioPump) owns the pipeline and only moves frames; it never waits
on HTTP or the agent. Pipeline events (with the utterance WAV) leave it over a queue and TTS
PCM enters it over a queue; the caller's thread runs the SpacesClient (HTTP, the agent).

Offline, Daily creates the devices and accepts frames, but its media engine only runs inside a
call: the microphone takes 0 frames and the speaker yields none until a join succeeds (the
pump pads with silence and keeps its 20 ms pace). A join to an unreachable room fails with
DailyJoinError (Daily's error, or our timeout) and leaves nothing running.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional

from .audio import AudioPipeline
from .client import Kind

if TYPE_CHECKING:
    from .spaces import SpacesClient

RATE = 48_000
FRAME = 960  # 20 ms at 48 kHz mono
_FRAME_S = 0.020

_init_lock = threading.Lock()
_initialised = False
_names = itertools.count(1)


class DailyJoinError(RuntimeError):
    """Joining the room failed (Daily's error) or did not finish within the timeout."""


def _daily() -> Any:
    """daily-python, initialised once per process (Daily.init is process-wide)."""
    global _initialised
    try:
        import daily  # type: ignore[import-not-found, unused-ignore]  # optional: the `daily` extra
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError('moltlink.daily needs daily-python: pip install "moltlink[daily]"') from e
    with _init_lock:
        if not _initialised:
            daily.Daily.init()
            _initialised = True
    return daily


class DailyDevices:
    """Daily's virtual microphone (what the room hears from us) and speaker (what we hear from
    the room), 48 kHz mono; the speaker is selected as Daily's output. Names are unique per
    process because Daily keeps devices by name."""

    def __init__(self, prefix: str = "moltlink"):
        daily = _daily()
        n = next(_names)
        self.mic_name = f"{prefix}-mic-{n}"
        self.speaker_name = f"{prefix}-speaker-{n}"
        # The mic does not block on write (Daily buffers it): the speaker's blocking read alone
        # paces the audio thread, which would otherwise wait twice per frame in a call.
        self.mic = daily.Daily.create_microphone_device(self.mic_name, sample_rate=RATE, channels=1, non_blocking=True)
        self.speaker = daily.Daily.create_speaker_device(self.speaker_name, sample_rate=RATE, channels=1)
        daily.Daily.select_speaker_device(self.speaker_name)


class AudioPump:
    """The audio thread: every 20 ms one frame from the virtual speaker into
    `pipeline.capture` and one frame of `pipeline.playback` into the virtual microphone.
    `step()` does one frame on the caller's thread (tests); `start()` runs it paced."""

    def __init__(self, pipeline: AudioPipeline, devices: DailyDevices):
        if pipeline.frame_samples != FRAME:
            raise ValueError(f"the pipeline must run 48 kHz mono (frame of {FRAME} samples), not {pipeline.frame_samples}")
        self.pipeline = pipeline
        self.mic = devices.mic
        self.speaker = devices.speaker
        self._tts: "queue.SimpleQueue[bytes]" = queue.SimpleQueue()
        self._events: "queue.SimpleQueue[dict]" = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None
        # Counters (samples): heard from the room, offered to and accepted by the microphone.
        self.frames = 0
        self.heard = 0
        self.offered = 0
        self.accepted = 0
        self.played_energy = 0  # frames of playback that were not silence
        self.max_step_s = 0.0

    def push_tts(self, pcm: bytes) -> None:
        """TTS PCM (16-bit mono, 24 kHz) for playback; safe from any thread."""
        self._tts.put(bytes(pcm))

    def step(self) -> None:
        """One 20 ms frame both ways; pipeline events go to the queue `events()` reads."""
        started = time.monotonic()
        room = self.speaker.read_frames(FRAME)
        self.heard += len(room) // 2
        if len(room) < 2 * FRAME:  # not in a call (yet), or a short read: pad with silence
            room = room + bytes(2 * FRAME - len(room))
        self.pipeline.capture(room)
        while True:
            try:
                self.pipeline.push_tts(self._tts.get_nowait())
            except queue.Empty:
                break
        out = self.pipeline.playback()
        if any(out):
            self.played_energy += 1
        self.offered += FRAME
        self.accepted += self.mic.write_frames(out.tobytes()) or 0
        for event in self.pipeline.events():
            if event["type"] == "speech-stopped":
                event = {**event, "wav": self.pipeline.utterance_wav()}
            self._events.put(event)
        self.frames += 1
        self.max_step_s = max(self.max_step_s, time.monotonic() - started)

    def events(self, timeout: float = 0.0) -> List[dict]:
        """Pipeline events so far (speech-stopped carries the utterance as "wav"); waits up to
        `timeout` seconds for the first."""
        out: List[dict] = []
        try:
            out.append(self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait())
            while True:
                out.append(self._events.get_nowait())
        except queue.Empty:
            pass
        return out

    def _run(self) -> None:
        deadline = time.monotonic()
        try:
            while not self._stop.is_set():
                self.step()
                # In a call the speaker read blocks ~20 ms and paces us; offline it returns at
                # once, so hold the 20 ms cadence ourselves (never falling more than a frame behind).
                deadline = max(deadline + _FRAME_S, time.monotonic() - _FRAME_S)
                self._stop.wait(max(0.0, deadline - time.monotonic()))
        except BaseException as e:  # reported to the control thread, which raises it
            self.error = e

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> "AudioPump":
        self._thread = threading.Thread(target=self._run, name="moltlink-audio", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


class _Events:
    """Daily's callbacks (on Daily's threads): errors and call states, kept for the join."""

    def __init__(self) -> None:
        self.errors: List[str] = []
        self.states: List[str] = []

    def on_error(self, message: str) -> None:
        self.errors.append(message)

    def on_call_state_updated(self, state: str) -> None:
        self.states.append(state)


class DailyRoom:
    """One Daily CallClient publishing the virtual microphone. `join` is bounded by a timeout
    and raises DailyJoinError; leave/release never hang (bounded waits)."""

    def __init__(self, devices: DailyDevices):
        daily = _daily()
        self.devices = devices
        self._events = _Events()
        handler = type("_Handler", (daily.EventHandler,), {
            "on_error": lambda _self, m: self._events.on_error(m),
            "on_call_state_updated": lambda _self, s: self._events.on_call_state_updated(s),
        })()
        self.client = daily.CallClient(event_handler=handler)
        self.joined = False

    @property
    def errors(self) -> List[str]:
        return list(self._events.errors)

    @property
    def states(self) -> List[str]:
        return list(self._events.states)

    def join(self, ticket: Mapping[str, Any], timeout: float = 30.0) -> Mapping[str, Any]:
        """Join `ticket` ({"room_url", "token"}: a spaces_ticket event's "ticket"). Returns
        Daily's call data; raises DailyJoinError on Daily's error or after `timeout` s."""
        url, token = str(ticket["room_url"]), str(ticket.get("token") or "")
        done = threading.Event()
        result: Dict[str, Any] = {}

        def completion(data: Optional[Mapping[str, Any]], error: Optional[str]) -> None:
            result["data"], result["error"] = data, error
            done.set()

        settings = {"inputs": {"camera": False, "microphone": {"isEnabled": True, "settings": {"deviceId": self.devices.mic_name}}}}
        self.client.update_subscription_profiles({"base": {"camera": "unsubscribed", "microphone": "subscribed"}})
        self.client.join(url, meeting_token=token or None, client_settings=settings, completion=completion)
        if not done.wait(timeout):
            # Daily answers a leave only once its join attempt ends (offline it retries for
            # ~19 s): ask, but do not wait for it; release() is bounded the same way.
            self.leave(timeout=0.5)
            raise DailyJoinError(f"joining the Daily room {url} did not finish within {timeout:g} s")
        if result["error"]:
            self.leave()
            # Daily's message names the room and the cause; the meeting token never shows.
            message = str(result["error"]).replace(token, "<token>") if token else str(result["error"])
            raise DailyJoinError(f"cannot join the Daily room {url}: {message}")
        self.joined = True
        return result["data"] or {}

    def leave(self, timeout: float = 5.0) -> None:
        done = threading.Event()
        self.client.leave(completion=lambda _error: done.set())
        done.wait(timeout)
        self.joined = False

    def release(self, timeout: float = 5.0) -> bool:
        """Free the CallClient. Daily's release waits for a join attempt still under way, so it
        runs on a helper thread and we wait at most `timeout` s; False if it had not finished."""
        done = threading.Thread(target=self.client.release, name="moltlink-daily-release", daemon=True)
        done.start()
        done.join(timeout)
        return not done.is_alive()

    def __enter__(self) -> "DailyRoom":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.joined:
            self.leave()
        self.release()


def drain(spaces: "SpacesClient", pump: AudioPump, answer: Callable[[str], Optional[str]],
          persist: Optional[Callable[[bytes], None]] = None, on_event: Optional[Callable[[dict], None]] = None) -> None:
    """Run the SpacesClient until it waits: its HTTP (blocking: this is the control thread, the
    audio keeps running), persistence, and its events (TTS audio to the pump, transcripts to
    `answer`, whose text is spoken; None skips the turn)."""
    from .host import perform_http

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
            if persist is None:
                raise RuntimeError("the core asked to persist the registration but no persist callback was given")
            persist(out.body)
            spaces.handle_persisted(out.id)
        elif out.kind == Kind.EVENT:
            event = out.meta["event"]
            if on_event is not None:
                on_event(event)
            if event["type"] == "spaces_audio":
                pump.push_tts(spaces.take_audio())
            elif event["type"] == "spaces_transcript":
                # Another participant's words: data for the agent, never instructions.
                text = answer(event["text"]["untrusted_text"])
                if text is None:
                    spaces.skip()
                else:
                    spaces.reply(text)


def serve(spaces: "SpacesClient", pump: AudioPump, answer: Callable[[str], Optional[str]], seconds: float,
          persist: Optional[Callable[[bytes], None]] = None, on_event: Optional[Callable[[dict], None]] = None,
          until: Optional[Callable[[dict], bool]] = None) -> None:
    """The control loop on the caller's thread for `seconds` (or until a client event
    satisfies `until`): pipeline events to the client (utterance, barge-in, playback end), the
    client's work via `drain`. Starts the pump if it is not running, stops it at the end;
    re-raises an error of the audio thread."""
    stop = threading.Event()

    def seen(event: dict) -> None:
        if on_event is not None:
            on_event(event)
        if until is not None and until(event):
            stop.set()

    if not pump.running:
        pump.start()
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not stop.is_set():
            if pump.error is not None:
                raise pump.error
            for event in pump.events(timeout=0.05):
                if event["type"] == "speech-stopped":
                    spaces.utterance(event["wav"])
                elif event["type"] == "barge-in":
                    spaces.barge_in()
                elif event["type"] == "playback-finished":
                    spaces.playback_finished()
            spaces.handle_timeout()  # renews the meeting token before it expires
            drain(spaces, pump, answer, persist, seen)
    finally:
        pump.stop()
