//! The spoken conversation, one turn at a time: utterance → transcription (STT) → the agent's
//! reply → streamed speech (TTS) → playback, cut short by barge-in. The turn state changes
//! only in [`next`] (state × input), applied by [`SpacesClient::turn`], which reports each
//! change as `spaces_turn`; the rest of this file builds requests and measures latencies.

use super::event::{Latency, SpacesEvent, TurnState};
use super::{Purpose, SpacesClient, local, voice};
use crate::error::{Error, Result};
use crate::io::{ApiError, RequestId, Untrusted, parse_json_body};
use serde_json::Value;

/// OpenAI's upload limit.
const MAX_WAV_BYTES: usize = 25 << 20;
/// TTS audio kept for one turn (24 kHz × 2 bytes × 10 min).
const MAX_TTS_SAMPLES: usize = 24_000 * 600;

/// What moves the turn state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TurnInput {
    /// A ticket arrived: in a room, so listening (unless a turn is already under way).
    Joined,
    /// An utterance went to transcription.
    Utterance,
    /// The agent's reply goes to speech; `transcribed`: the transcript it answers is in.
    Reply { transcribed: bool },
    /// The user spoke over the agent.
    BargeIn,
    /// The turn under way is abandoned (a new utterance, leaving, a failed rejoin).
    Cut,
    /// The turn's outcome is reported: listen again.
    Done,
}

/// The turn state after `input` in `state` (`None`: no turn yet). `Err` refuses a command;
/// an input that does not apply leaves the state as it is.
pub(super) fn next(state: Option<TurnState>, input: TurnInput) -> std::result::Result<Option<TurnState>, &'static str> {
    use TurnInput::*;
    use TurnState::*;
    Ok(match (state, input) {
        (None, Joined) => Some(Listening),
        (_, Joined) => state,
        (_, Utterance) => Some(Thinking),
        (Some(Speaking), Reply { .. }) => return Err("already speaking: wait for playback_finished or barge_in"),
        (Some(Thinking), Reply { transcribed: false }) => return Err("still transcribing: reply after the transcript"),
        (_, Reply { .. }) => Some(Speaking),
        (Some(Speaking), BargeIn) => Some(Interrupted),
        (_, BargeIn) => state,
        (Some(Thinking | Speaking | Interrupted), Cut) => Some(Interrupted),
        (_, Cut) => state,
        (_, Done) => Some(Listening),
    })
}

/// The turn under way (or the last one).
#[derive(Debug, Default)]
pub(super) struct Voice {
    pub(super) turn: u64,
    /// Written only by [`SpacesClient::turn`].
    pub(super) state: Option<TurnState>,
    stt: Option<RequestId>,
    tts: Option<RequestId>,
    tts_done: bool,
    awaiting_reply: bool,
    pcm: voice::PcmAssembler,
    taken_any: bool,
    utterance_at: u64,
    transcript_at: Option<u64>,
    reply_at: u64,
    first_byte_at: Option<u64>,
    latency: Latency,
}

impl SpacesClient {
    /// One utterance from the audio pipeline (`utterance_wav`): starts a turn (transcription).
    /// An utterance while the agent speaks cuts the agent off first. Returns the turn number.
    pub fn utterance(&mut self, wav: &[u8], now_ms: u64) -> Result<u64> {
        let key = self.cfg.openai_key.clone().ok_or_else(|| Error::invalid_state("OPENAI_API_KEY is not configured"))?;
        if wav.len() < 44 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
            return Err(Error::invalid_argument("the utterance must be a WAV file (RIFF/WAVE)"));
        }
        if wav.len() > MAX_WAV_BYTES {
            return Err(Error::invalid_argument("the utterance is over OpenAI's 25 MB upload limit"));
        }
        self.interrupt(TurnInput::Cut, now_ms);
        let turn = self.voice.turn + 1;
        let request = voice::transcription_request(&self.cfg.openai_base, key.expose(), &self.cfg.stt_model, wav, turn)?;
        self.voice = Voice { turn, state: self.voice.state, utterance_at: now_ms, ..Voice::default() };
        let id = self.out.http(request);
        self.in_flight.insert(id, Purpose::Stt);
        self.voice.stt = Some(id);
        self.turn(TurnInput::Utterance);
        Ok(turn)
    }

    /// The TTS audio received so far (24 kHz mono), drained: push it into the pipeline.
    pub fn take_audio(&mut self) -> Vec<i16> {
        let samples = std::mem::take(&mut self.voice.pcm.samples);
        self.voice.taken_any |= !samples.is_empty();
        samples
    }

    /// `take_audio` as little-endian bytes (what the adapters hand out).
    pub fn take_audio_bytes(&mut self) -> Vec<u8> {
        self.take_audio().iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// Bytes waiting in `take_audio_bytes`.
    pub fn audio_bytes_ready(&self) -> usize {
        self.voice.pcm.samples.len() * 2
    }

    /// Apply `input` to the turn state and report a change: the one place the state is written.
    /// Refusals matter only for commands, which ask [`next`] before acting.
    pub(super) fn turn(&mut self, input: TurnInput) {
        let Ok(to) = next(self.voice.state, input) else { return };
        if to != self.voice.state {
            self.voice.state = to;
            if let Some(state) = to {
                self.out.event(SpacesEvent::SpacesTurn { turn: self.voice.turn, state });
            }
        }
    }

    /// End the turn under way as interrupted, when `input` (barge-in, a cut) applies to it.
    pub(super) fn interrupt(&mut self, input: TurnInput, now_ms: u64) {
        if next(self.voice.state, input) == Ok(Some(TurnState::Interrupted)) {
            self.finish_turn(now_ms, true, None);
        }
    }

    /// The agent does not answer the last transcript: the turn ends.
    pub(super) fn skip(&mut self, now_ms: u64) -> Result<u64> {
        if self.voice.awaiting_reply {
            self.finish_turn(now_ms, false, None);
        }
        Ok(0)
    }

    pub(super) fn barge_in(&mut self, now_ms: u64) -> Result<u64> {
        self.interrupt(TurnInput::BargeIn, now_ms);
        Ok(0)
    }

    /// The pipeline played everything out: the turn ends once all the speech arrived and was taken.
    pub(super) fn playback_finished(&mut self, now_ms: u64) -> Result<u64> {
        let v = &self.voice;
        if v.state == Some(TurnState::Speaking) && v.tts_done && v.pcm.samples.is_empty() {
            self.finish_turn(now_ms, false, None);
        }
        Ok(0)
    }

    /// The pipeline started playing this turn's speech: the first-audio latency.
    pub(super) fn playback_started(&mut self, now_ms: u64) -> Result<u64> {
        let v = &mut self.voice;
        if v.state == Some(TurnState::Speaking) && v.taken_any && v.latency.tts_first_audio_ms.is_none() {
            v.latency.tts_first_audio_ms = Some(now_ms.saturating_sub(v.reply_at));
        }
        Ok(0)
    }

    /// Speak `text`: the answer to the last transcript, or unprompted speech (a turn of its own).
    pub(super) fn reply(&mut self, text: &str, now_ms: u64) -> Result<u64> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 5000 {
            return Err(Error::invalid_argument("reply text must be 1-5000 characters"));
        }
        let key = self.cfg.elevenlabs_key.clone().ok_or_else(|| Error::invalid_state("ELEVENLABS_API_KEY is not configured"))?;
        let input = TurnInput::Reply { transcribed: self.voice.awaiting_reply };
        next(self.voice.state, input).map_err(Error::invalid_state)?;
        let request = voice::tts_request(&self.cfg.elevenlabs_base, key.expose(), &self.cfg.voice_id, &self.cfg.tts_model, text)?;
        if !self.voice.awaiting_reply {
            // Unprompted speech: a turn of its own.
            self.voice = Voice { turn: self.voice.turn + 1, state: self.voice.state, ..Voice::default() };
        }
        if let Some(at) = self.voice.transcript_at {
            self.voice.latency.agent_ms = Some(now_ms.saturating_sub(at));
        }
        self.voice.awaiting_reply = false;
        self.voice.reply_at = now_ms;
        // The audio streams: the host passes it to `handle_body_chunk` as it arrives.
        let id = self.out.http_streamed(request);
        self.in_flight.insert(id, Purpose::Tts { turn: self.voice.turn });
        self.voice.tts = Some(id);
        self.turn(input);
        Ok(self.voice.turn)
    }

    /// The transcription answer (`id` is ignored when its turn was cut meanwhile).
    pub(super) fn on_transcription(&mut self, id: RequestId, response: http::Response<Vec<u8>>, now_ms: u64) {
        if self.voice.stt != Some(id) {
            return;
        }
        let outcome = if response.status().is_success() {
            parse_json_body(&response)
        } else {
            Err(voice::speech_error(response.status().as_u16(), response.body()))
        };
        self.on_transcript(outcome, now_ms);
    }

    /// The end of the speech answer (its body, when the host did not stream it).
    pub(super) fn on_speech(&mut self, id: RequestId, turn: u64, response: http::Response<Vec<u8>>, now_ms: u64) {
        if self.voice.tts != Some(id) {
            return;
        }
        if !response.status().is_success() {
            let error = voice::speech_error(response.status().as_u16(), response.body());
            return self.finish_turn(now_ms, false, Some(error));
        }
        self.tts_audio(turn, response.body(), now_ms);
        self.voice.tts_done = true;
        self.voice.latency.tts_total_ms = Some(now_ms.saturating_sub(self.voice.reply_at));
        if self.voice.first_byte_at.is_none() {
            self.finish_turn(now_ms, false, Some(local("NO_AUDIO", "the text-to-speech answer carried no audio")));
        }
    }

    /// A chunk of streamed speech for `turn`.
    pub(super) fn on_speech_chunk(&mut self, id: RequestId, turn: u64, chunk: &[u8], now_ms: u64) {
        if self.voice.tts == Some(id) {
            self.tts_audio(turn, chunk, now_ms);
        }
    }

    /// A speech request (STT or TTS) could not be performed.
    pub(super) fn on_speech_failed(&mut self, id: RequestId, purpose: &Purpose, error: ApiError, now_ms: u64) {
        match purpose {
            Purpose::Stt if self.voice.stt == Some(id) => self.on_transcript(Err(error), now_ms),
            Purpose::Tts { .. } if self.voice.tts == Some(id) => self.finish_turn(now_ms, false, Some(error)),
            _ => {}
        }
    }

    fn on_transcript(&mut self, outcome: std::result::Result<Value, ApiError>, now_ms: u64) {
        self.voice.stt = None;
        let stt_ms = now_ms.saturating_sub(self.voice.utterance_at);
        self.voice.latency.stt_ms = Some(stt_ms);
        match outcome.map(|body| voice::transcript(&body)) {
            Ok(Some(text)) if !text.is_empty() => {
                self.voice.transcript_at = Some(now_ms);
                self.voice.awaiting_reply = true;
                let turn = self.voice.turn;
                self.out.event(SpacesEvent::SpacesTranscript { turn, text: Untrusted::new(text), stt_ms });
            }
            Ok(Some(_)) => self.finish_turn(now_ms, false, None),
            Ok(None) => self.finish_turn(now_ms, false, Some(local("BAD_RESPONSE", "the transcription answer has no `text`"))),
            Err(e) => self.finish_turn(now_ms, false, Some(e)),
        }
    }

    fn tts_audio(&mut self, turn: u64, bytes: &[u8], now_ms: u64) {
        if bytes.is_empty() {
            return;
        }
        if self.voice.first_byte_at.is_none() {
            self.voice.first_byte_at = Some(now_ms);
            self.voice.latency.tts_first_byte_ms = Some(now_ms.saturating_sub(self.voice.reply_at));
        }
        if self.voice.pcm.samples.len() + bytes.len() / 2 > MAX_TTS_SAMPLES {
            return;
        }
        let samples = self.voice.pcm.push(bytes);
        if samples > 0 {
            self.out.event(SpacesEvent::SpacesAudio { turn, samples });
        }
    }

    /// End the current turn: played out, failed, or cut (`interrupted`).
    fn finish_turn(&mut self, now_ms: u64, interrupted: bool, error: Option<ApiError>) {
        let v = &mut self.voice;
        if let Some(first) = v.first_byte_at {
            v.latency.playback_ms = Some(now_ms.saturating_sub(first));
        }
        let (turn, latency) = (v.turn, v.latency);
        v.stt = None;
        v.tts = None;
        v.awaiting_reply = false;
        v.pcm = Default::default();
        if interrupted {
            self.turn(TurnInput::Cut);
        }
        self.out.event(SpacesEvent::SpacesTurnDone { turn, interrupted, latency, error });
        self.turn(TurnInput::Done);
    }
}

#[cfg(test)]
mod tests {
    use super::TurnInput::*;
    use super::*;
    use TurnState::*;

    #[test]
    fn the_turn_table() {
        assert_eq!(next(None, Joined), Ok(Some(Listening)));
        assert_eq!(next(Some(Speaking), Joined), Ok(Some(Speaking)), "a rejoin keeps the turn");
        assert_eq!(next(Some(Listening), Utterance), Ok(Some(Thinking)));
        assert!(next(Some(Thinking), Reply { transcribed: false }).is_err());
        assert_eq!(next(Some(Thinking), Reply { transcribed: true }), Ok(Some(Speaking)));
        assert!(next(Some(Speaking), Reply { transcribed: true }).is_err());
        assert_eq!(next(Some(Listening), Reply { transcribed: false }), Ok(Some(Speaking)), "unprompted speech");
        assert_eq!(next(Some(Thinking), BargeIn), Ok(Some(Thinking)), "barge-in cuts only speech");
        assert_eq!(next(Some(Speaking), BargeIn), Ok(Some(Interrupted)));
        assert_eq!(next(Some(Thinking), Cut), Ok(Some(Interrupted)));
        assert_eq!(next(Some(Listening), Cut), Ok(Some(Listening)));
        assert_eq!(next(Some(Interrupted), Done), Ok(Some(Listening)));
    }
}
