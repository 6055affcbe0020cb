/*
 * A real C host for the voice pipeline: reads raw 16-bit mono speech (48 kHz) from a file,
 * feeds 20 ms frames through ml_audio_capture (with Opus), loops the packets back through
 * ml_audio_push_packet, plays ml_audio_playback frames, and checks the VAD events and the
 * utterance WAV. Caller-owned buffers only.
 *
 *   audio <speech.s16>      exits 0 when every check passed
 */
#include "moltlink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond, ...) do { if (!(cond)) { fprintf(stderr, "FAIL: " __VA_ARGS__); fputc('\n', stderr); failures++; } } while (0)

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: audio <speech.s16>\n"); return 2; }
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    /* One second of silence, the speech, one second of silence. */
    size_t cap = 48000 * 30, len = 48000;
    int16_t *mic = calloc(cap, sizeof *mic);
    len += fread(mic + len, sizeof *mic, cap - len - 48000, f);
    fclose(f);
    len += 48000;

    MlAudio *a = NULL;
    CHECK(ml_audio_new("{\"device\":{\"rate\":48000,\"channels\":1}}", &a) == ML_OK, "ml_audio_new");
    CHECK(ml_audio_new("{\"device\":{\"rate\":1000}}", &(MlAudio *){NULL}) == ML_INVALID_ARGUMENT, "bad rate refused");
    size_t n = 0;
    CHECK(ml_audio_frame_samples(a, &n) == ML_OK && n == 960, "frame samples %zu", n);

    /* 11 025 Hz: 20 ms is not a whole number of samples, so frames alternate 220/221 and
       ml_audio_next_frame_samples says which comes next; 50 frames are one second each way. */
    {
        MlAudio *odd = NULL;
        CHECK(ml_audio_new("{\"device\":{\"rate\":11025,\"channels\":1}}", &odd) == ML_OK, "11025 Hz");
        int16_t frame[221] = {0}, spk[221];
        size_t captured = 0, played = 0, c = 0, p = 0, shorter = 0;
        for (int f = 0; f < 50; f++) {
            CHECK(ml_audio_next_frame_samples(odd, &c, &p) == ML_OK && (c == 220 || c == 221), "next %zu", c);
            CHECK(ml_audio_capture(odd, frame, c, NULL, 0, NULL) == ML_OK, "capture %zu", c);
            CHECK(ml_audio_playback(odd, spk, p) == ML_OK, "playback %zu", p);
            captured += c; played += p; shorter += c == 220;
        }
        CHECK(captured == 11025 && played == 11025 && shorter > 0, "one second: %zu captured, %zu played", captured, played);
        CHECK(ml_audio_next_frame_samples(odd, NULL, &p) == ML_NULL_POINTER, "NULL refused");
        ml_audio_free(odd);
    }

    uint8_t packet[1275];
    int16_t out[960];
    char event[256];
    int started = 0, stopped = 0;
    long first_start_ms = -1;
    for (size_t i = 0; i + n <= len; i += n) {
        size_t plen = 0;
        CHECK(ml_audio_capture(a, mic + i, n, packet, sizeof packet, &plen) == ML_OK && plen > 0, "capture");
        CHECK(ml_audio_push_packet(a, 1, (uint16_t)(i / n), packet, plen, (uint64_t)(i / n) * 20) == ML_OK, "push");
        CHECK(ml_audio_playback(a, out, n) == ML_OK, "playback");
        for (;;) {
            size_t needed = 0;
            CHECK(ml_audio_poll_event(a, (uint8_t *)event, sizeof event, &needed) == ML_OK, "poll");
            if (needed == 0) break;
            printf("event %s\n", event);
            if (strstr(event, "\"speech-started\"")) {
                if (first_start_ms < 0) first_start_ms = atol(strstr(event, "\"at_ms\":") + 8);
                started++;
            }
            if (strstr(event, "\"speech-stopped\"")) stopped++;
        }
    }
    CHECK(started >= 1 && stopped == started, "speech events: %d started, %d stopped", started, stopped);
    CHECK(first_start_ms >= 900 && first_start_ms <= 1200, "speech starts near 1 s: %ld ms", first_start_ms);

    size_t samples = 0, wav_len = 0;
    CHECK(ml_audio_utterance(a, NULL, 0, &samples) == ML_BUFFER_TOO_SMALL && samples > 8000, "utterance size %zu", samples);
    int16_t *utt = malloc(samples * sizeof *utt);
    CHECK(ml_audio_utterance(a, utt, samples, &samples) == ML_OK, "utterance");
    CHECK(ml_audio_utterance_wav(a, NULL, 0, &wav_len) == ML_BUFFER_TOO_SMALL && wav_len == 44 + 2 * samples, "wav size");
    uint8_t *wav = malloc(wav_len);
    CHECK(ml_audio_utterance_wav(a, wav, wav_len, &wav_len) == ML_OK && memcmp(wav, "RIFF", 4) == 0, "wav bytes");
    CHECK(ml_audio_capture(a, mic, 7, NULL, 0, NULL) == ML_INVALID_ARGUMENT, "short frame refused");
    CHECK(ml_audio_capture(NULL, mic, n, NULL, 0, NULL) == ML_NULL_POINTER, "NULL handle refused");

    free(wav);
    free(utt);
    free(mic);
    ml_audio_free(a);
    printf("C audio host: %s (%d utterances)\n", failures ? "FAILED" : "ok", stopped);
    return failures ? 1 : 0;
}
