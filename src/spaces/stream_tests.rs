//! Streaming speech end to end over real sockets: the sandbox server streams the text-to-speech
//! answer with chunked transfer, a paced chunk at a time; a host reads it as it arrives, hands
//! each chunk to the client and plays it through the audio pipeline on a 20 ms frame clock.

use super::*;
use crate::audio::{AudioConfig, AudioEvent, AudioPipeline};
use crate::io::{Output, SansIo};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What the socket thread reports: a body chunk, the end of the body.
enum Body {
    Chunk(Vec<u8>, Instant),
    End(u16),
}

/// Perform `request` over a plain TCP socket (HTTP/1.1), sending each chunk of the chunked
/// body to `tx` the moment it is read.
fn fetch_streamed(request: http::Request<Vec<u8>>, tx: mpsc::Sender<Body>) -> std::io::Result<()> {
    let uri = request.uri().clone();
    let host = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let mut sock = TcpStream::connect(&host)?;
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n", request.method(), uri.path_and_query().map_or("/", |p| p.as_str()), request.body().len());
    for (name, value) in request.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes())?;
    sock.write_all(request.body())?;
    let mut r = BufReader::new(sock);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        chunked |= line.to_ascii_lowercase().starts_with("transfer-encoding: chunked");
    }
    assert!(chunked, "the speech answer streams with chunked transfer encoding");
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let mut chunk = vec![0; size + 2];
        r.read_exact(&mut chunk)?;
        chunk.truncate(size);
        let _ = tx.send(Body::Chunk(chunk, Instant::now()));
    }
    let _ = tx.send(Body::End(status));
    Ok(())
}

#[test]
fn streamed_speech_plays_within_a_frame_of_its_first_chunk() {
    let gap_ms = 60;
    let server = moltlink_sandbox::serve("127.0.0.1:0", Default::default()).unwrap();
    server.sandbox().with_state(|s| {
        s.speech.no_espeak = true;
        s.speech.pacing = Some(moltlink_sandbox::speech::Paced { chunk_bytes: 4_800, gap_ms });
    });
    let urls = server.base_urls();
    let env = format!(
        "MOLTSPACES_API_BASE={}\nOPENAI_API_BASE={}\nELEVENLABS_API_BASE={}\nOPENAI_API_KEY=sk-test\nELEVENLABS_API_KEY=xi-test\n",
        urls.moltspaces_api, urls.openai_api, urls.elevenlabs_api
    );
    let mut client = SpacesClient::from_env(env.as_bytes(), None).unwrap();
    let mut pipeline = AudioPipeline::new(AudioConfig::default()).unwrap();
    client.command(SpacesCommand::Reply { text: "Good morning, the weather is sunny and warm today.".into() }, now_ms()).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut tts_id = None;
    let mut out = vec![0i16; pipeline.frame_samples()];
    let mut first_chunk: Option<(Instant, u32)> = None; // arrival, frame it was handed in
    let mut last_chunk = None;
    let mut first_audible: Option<(Instant, u32)> = None;
    let mut chunks = 0;
    let mut done = None;
    let start = Instant::now();
    for frame in 0..1500u32 {
        // The frame clock: one 20 ms tick per frame.
        let tick = start + Duration::from_millis(20 * frame as u64);
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
        // Network → client.
        while let Ok(body) = rx.try_recv() {
            let id = tts_id.expect("a request is under way");
            match body {
                Body::Chunk(bytes, at) => {
                    chunks += 1;
                    first_chunk.get_or_insert((at, frame));
                    last_chunk = Some(at);
                    client.handle_body_chunk(id, &bytes, now_ms()).unwrap();
                }
                Body::End(status) => {
                    let response = http::Response::builder().status(status).body(Vec::new()).unwrap();
                    client.handle_response(id, response, now_ms()).unwrap();
                }
            }
        }
        // Client → host: requests, audio.
        loop {
            match client.poll_output() {
                Output::Http { id, request, stream } => {
                    assert!(stream, "speech is requested as a stream");
                    tts_id = Some(id);
                    let tx = tx.clone();
                    std::thread::spawn(move || fetch_streamed(*request, tx));
                }
                Output::Event(SpacesEvent::SpacesAudio { .. }) => pipeline.push_tts(&client.take_audio()),
                Output::Event(SpacesEvent::SpacesTurnDone { latency, error, .. }) => done = Some((latency, error)),
                Output::Event(_) => {}
                _ => break,
            }
        }
        // One speaker frame, and its events back to the client.
        pipeline.process_playback(&mut out).unwrap();
        if first_audible.is_none() && out.iter().any(|&s| s != 0) {
            first_audible = Some((Instant::now(), frame));
        }
        while let Some(event) = pipeline.poll_event() {
            let command = match event {
                AudioEvent::PlaybackStarted { .. } => SpacesCommand::PlaybackStarted {},
                AudioEvent::PlaybackFinished { .. } => SpacesCommand::PlaybackFinished {},
                _ => continue,
            };
            client.command(command, now_ms()).unwrap();
        }
        if done.is_some() {
            break;
        }
    }
    let (latency, error) = done.expect("the turn finished");
    assert_eq!(error, None);
    let ((first_at, first_frame), (audible_at, audible_frame)) = (first_chunk.unwrap(), first_audible.unwrap());
    let last_at = last_chunk.unwrap();
    assert!(chunks >= 10, "the answer came in {chunks} chunks");
    // The chunk is handed in at the first tick after it arrives and plays in that very frame.
    assert_eq!(audible_frame, first_frame, "the first chunk plays in the frame it is handed in");
    let heard_after = audible_at.duration_since(first_at);
    assert!(heard_after < Duration::from_millis(45), "first audio {heard_after:?} after the first chunk arrived");
    let before_last = last_at.duration_since(audible_at);
    assert!(before_last > Duration::from_millis(gap_ms * (chunks - 3)), "first audio only {before_last:?} before the last chunk");
    // The latencies say the same.
    let (byte, audio, total) = (latency.tts_first_byte_ms.unwrap(), latency.tts_first_audio_ms.unwrap(), latency.tts_total_ms.unwrap());
    assert!(byte >= gap_ms && audio >= byte && audio <= byte + 45, "first byte {byte} ms, first audio {audio} ms");
    assert!(total >= audio + gap_ms * (chunks - 3), "total {total} ms vs first audio {audio} ms over {chunks} chunks");
    eprintln!(
        "streamed speech: {chunks} chunks every {gap_ms} ms; first byte {byte} ms, first audio {audio} ms \
         ({heard_after:?} after the first chunk arrived), whole answer {total} ms, first audio {before_last:?} before the last chunk"
    );
    server.shutdown();
}
