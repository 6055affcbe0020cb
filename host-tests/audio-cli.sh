#!/usr/bin/env bash
# The audio CLI without a sound card: espeak-ng speech in a WAV file → `moltlink audio
# loopback --input/--output` → events, utterance files and a speaker WAV; `devices` and a
# device run must not crash (a clear error is fine on a machine without a sound card).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/moltlink
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
espeak-ng --stdout "Hello, can you hear me now?" | sox -t wav - -r 44100 -c 2 "$dir/mic.wav" pad 1 1
espeak-ng --stdout "I am the agent and I will keep talking so that you can interrupt me whenever you like." \
  | sox -t wav - -r 24000 "$dir/tts.wav" pad 0.5 0
"$bin" audio loopback --input "$dir/mic.wav" --output "$dir/out.wav" --tts "$dir/tts.wav" \
  --utterances "$dir/utt" --json > "$dir/events.jsonl"
cat "$dir/events.jsonl"
grep -q '"type":"speech-started"' "$dir/events.jsonl"
grep -q '"type":"speech-stopped"' "$dir/events.jsonl"
grep -q '"type":"barge-in"' "$dir/events.jsonl"
[ -s "$dir/utt/utterance-1.wav" ]
[ "$(soxi -r "$dir/utt/utterance-1.wav")" = 16000 ]
[ "$(soxi -r "$dir/out.wav")" = 44100 ] && [ "$(soxi -c "$dir/out.wav")" = 2 ]
# Any rate in: espeak-ng's own 22 050 Hz WAV as the agent's speech, unconverted, and an
# 11 025 Hz microphone (20 ms is 220.5 samples there: frames alternate 220/221).
espeak-ng --stdout "This is espeak at its own rate." > "$dir/tts22.wav"
[ "$(soxi -r "$dir/tts22.wav")" = 22050 ]
sox "$dir/mic.wav" -r 11025 -c 1 "$dir/mic11.wav"
"$bin" audio loopback --input "$dir/mic11.wav" --output "$dir/out11.wav" --tts "$dir/tts22.wav" --json > "$dir/events11.jsonl"
grep -q '"type":"speech-started"' "$dir/events11.jsonl"
grep -q '"type":"playback-started"' "$dir/events11.jsonl"
[ "$(soxi -r "$dir/out11.wav")" = 11025 ]
# The speaker file is as long as the mic file plus the 1 s tail, to within the last partial
# frame: 20 ms frames of 220 and 221 samples, none lost or doubled.
n_in=$(soxi -s "$dir/mic11.wav"); n_out=$(soxi -s "$dir/out11.wav")
d=$(( n_out - n_in - 11025 )); [ $d -le 0 ] && [ $d -gt -221 ] \
  || { echo "11025 Hz: $n_out samples out for $n_in in"; exit 1; }
"$bin" audio devices >/dev/null
# Without a sound card a device run must fail cleanly (exit 1 with a message), not crash.
set +e
"$bin" audio loopback --seconds 1 > /dev/null 2> "$dir/err.txt"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  [ $rc -eq 1 ] && grep -q "error:" "$dir/err.txt" || { cat "$dir/err.txt"; echo "device run crashed (exit $rc)"; exit 1; }
fi
echo "audio CLI: ok"
