#!/usr/bin/env bash
# Moltspaces end to end, offline: the CLI against the sandbox over real HTTP.
# Rooms: register (saved file), empty search, create, token, search. Voice: an espeak-ng
# question in a WAV → pipeline utterance → sandbox STT (scripted transcript) → scripted agent
# reply → streamed TTS (espeak-ng) → pipeline playback → output WAV (checked: speech, length);
# then a WAV that interrupts the agent: barge-in cuts playback. Prints the time per stage.
set -euo pipefail
# `… | has PATTERN`: like `grep -q`, but reads all its input. `grep -q` exits at the first
# match, and the writer's next line then fails with EPIPE (a flaky failure under pipefail).
has() { grep "$@" >/dev/null; }
cd "$(dirname "$0")/.."
bin=$PWD/target/release/moltlink
dir=$(mktemp -d)
sandbox_pid=
trap '[ -n "$sandbox_pid" ] && kill "$sandbox_pid" 2>/dev/null; rm -rf "$dir"' EXIT

"$bin" sandbox --port 0 > "$dir/sandbox.env" &
sandbox_pid=$!
for _ in $(seq 100); do grep -q ready "$dir/sandbox.env" && break; sleep 0.05; done
set -a; . <(grep = "$dir/sandbox.env"); set +a
root=${OPENAI_API_BASE%/openai}
export OPENAI_API_KEY=sk-e2e-openai ELEVENLABS_API_KEY=xi-e2e-eleven
reg=(--registration "$dir/registration.env")

"$bin" spaces register --name E2EBot --description "end-to-end test agent" "${reg[@]}"
grep -q '^MOLTSPACES_API_KEY=moltspaces_' "$dir/registration.env"
[ "$(stat -c %a "$dir/registration.env")" = 600 ]
"$bin" spaces search "space rocks" "${reg[@]}" --json > "$dir/search0.json"
grep -q '"rooms":\[\]' "$dir/search0.json"
"$bin" spaces create "space rocks" "${reg[@]}" --json | has '"room_name":"space-rocks-001"'
"$bin" spaces token space-rocks-001 "${reg[@]}" --json | has '"reason":"token"'
# The newer skill generation (the sandbox's default) lists rooms with a url and no count;
# its token answer is camelCase.
"$bin" spaces search "space rocks" "${reg[@]}" | has "space-rocks-001 (? participants) https://sandbox.daily.co/space-rocks-001"
"$bin" spaces token space-rocks-001 "${reg[@]}" --json | has '"room_url":"https://sandbox.daily.co/space-rocks-001"'
# The older generation: participant counts, snake_case, create by topic.
curl -fsS -XPOST "$root/moltspaces/_sandbox/config" -d '{"generation":"older"}' > /dev/null
"$bin" spaces search "space rocks" "${reg[@]}" | has "space-rocks-001 (3 participants)"
"$bin" spaces create "moon dust" "${reg[@]}" --json | has '"room_name":"moon-dust-001"'
curl -fsS -XPOST "$root/moltspaces/_sandbox/config" -d '{"generation":"newer"}' > /dev/null
# A missing key is a clear error.
if MOLTSPACES_API_KEY= "$bin" spaces search x --registration "$dir/none.env" 2> "$dir/err.txt"; then exit 1; fi
grep -q "MOLTSPACES_API_KEY" "$dir/err.txt"

# 1. A spoken question and a full answer.
espeak-ng --stdout "What is the capital of France?" | sox -t wav - -r 48000 -c 1 -b 16 "$dir/q.wav" pad 0.5 1.0
curl -fsS -XPOST "$root/speech/_sandbox/transcripts" -d '{"transcripts":["What is the capital of France?"]}' > /dev/null
start=$(date +%s%N)
"$bin" spaces join --topic "space rocks" "${reg[@]}" --input "$dir/q.wav" --output "$dir/out.wav" \
  --reply "The capital of France is Paris." > "$dir/turn1.txt"
wall=$((($(date +%s%N) - start) / 1000000))
cat "$dir/turn1.txt"
grep -q 'heard "What is the capital of France?"' "$dir/turn1.txt"
grep -q "^turn 1 done: " "$dir/turn1.txt"
grep -q "room_name=space-rocks-001" "$dir/turn1.txt"
# The output holds the agent's speech: long enough for the sentence, and loud.
[ "$(soxi -r "$dir/out.wav")" = 48000 ]
played=$(sed -n 's/^played \([0-9]*\) ms of agent speech/\1/p' "$dir/turn1.txt")
[ "$played" -ge 1200 ] && [ "$played" -le 6000 ] || { echo "implausible speech length: $played ms"; exit 1; }
rms=$(sox "$dir/out.wav" -n trim "$(soxi -D "$dir/q.wav")" stat 2>&1 | awk '/RMS +amplitude/ {print $3}')
awk -v r="$rms" 'BEGIN { exit !(r > 0.02) }' || { echo "agent speech is silent (RMS $rms)"; exit 1; }
echo "turn 1: $played ms of speech, RMS $rms after the question; whole run ${wall} ms wall"

# 2. The user interrupts the agent: barge-in cuts playback.
espeak-ng --stdout "Tell me a long story about dragons." | sox -t wav - -r 48000 -c 1 -b 16 "$dir/a.wav" pad 0.5 0
sox -n -r 48000 -c 1 -b 16 "$dir/gap.wav" trim 0 1.2
espeak-ng --stdout "Stop, wait a moment." | sox -t wav - -r 48000 -c 1 -b 16 "$dir/b.wav" pad 0 1.5
sox "$dir/a.wav" "$dir/gap.wav" "$dir/b.wav" "$dir/i.wav"
curl -fsS -XPOST "$root/speech/_sandbox/transcripts" -d '{"transcripts":["Tell me a long story about dragons.","Stop, wait a moment."]}' > /dev/null
"$bin" spaces join --topic "space rocks" "${reg[@]}" --input "$dir/i.wav" --output "$dir/out2.wav" \
  --reply "Once upon a time, in a land far away, there lived a great red dragon who loved to sing to the mountains every morning." \
  > "$dir/turn2.txt"
cat "$dir/turn2.txt"
grep -q "barge-in: playback cut" "$dir/turn2.txt"
grep -q "^turn 1 done (interrupted)" "$dir/turn2.txt"
grep -q 'turn 2: heard "Stop, wait a moment."' "$dir/turn2.txt"
cut_ms=$(sed -n 's/^played \([0-9]*\) ms of agent speech/\1/p' "$dir/turn2.txt")
dropped=$(sed -n 's/.*barge-in: playback cut, \([0-9]*\) ms dropped/\1/p' "$dir/turn2.txt")
[ "$dropped" -gt 1000 ] || { echo "barge-in dropped only $dropped ms"; exit 1; }
echo "turn 2: playback cut after $cut_ms ms, $dropped ms of queued speech dropped"
curl -fsS "$root/speech/_sandbox/stats"; echo
curl -fsS "$root/speech/_sandbox/stats" | has '"espeak":[1-9]'
echo "spaces e2e: ok"
