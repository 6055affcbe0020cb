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
