//! How the realtime session paces itself and what it keeps.

/// Timing of the realtime session (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealtimeConfig {
    /// Send a ping after this long without sending anything (server idle timeout: 360 s).
    pub ping_interval_ms: u64,
    /// No frame at all for this long: the connection is dead, reconnect.
    pub silence_ms: u64,
    /// No ack for this long: treat the connection as broken (the send goes to limbo).
    pub ack_timeout_ms: u64,
    /// First reconnect delay; doubles up to `backoff_cap_ms`.
    pub backoff_base_ms: u64,
    /// Longest reconnect delay.
    pub backoff_cap_ms: u64,
    /// A connection open this long resets the backoff.
    pub stable_after_ms: u64,
    /// Poll `/agents/@me/pending` at most this far apart while connected and idle (friend
    /// requests and DMs are not pushed over the socket today). `None` disables polling.
    pub pending_poll_ms: Option<u64>,
    /// ... and this often while something may be pending: after connecting, after a poll that
    /// found activity, after the agent asked someone for something. The endpoint allows 10
    /// calls a minute; each idle poll doubles the gap up to `pending_poll_ms`.
    pub pending_poll_min_ms: u64,
    /// History page size used for backfill (1-100).
    pub page: u32,
    /// Bytes per channel for the ids of delivered messages, kept to deliver each once (8
    /// bytes an id: a hash, no string; the oldest are forgotten first).
    pub dedupe_bytes: usize,
    /// After a restart, deliver at most this many of the messages posted meanwhile per channel
    /// (the newest; the rest is reported as `backlog_skipped`). `None`: no bound.
    pub backlog_max_messages: Option<u32>,
    /// ... and none older than this.
    pub backlog_max_age_ms: Option<u64>,
    /// The host confirms each delivered message once it has handled it
    /// ([`crate::ChatsClient::confirm_delivered`]): saved positions advance only to confirmed
    /// messages, so one whose handling a crash cut short is delivered again after the restart.
    pub confirm_deliveries: bool,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            ping_interval_ms: 60_000,
            silence_ms: 150_000,
            ack_timeout_ms: 20_000,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 60_000,
            stable_after_ms: 30_000,
            pending_poll_ms: Some(60_000),
            pending_poll_min_ms: 6_000,
            page: 100,
            dedupe_bytes: 2048,
            backlog_max_messages: Some(200),
            backlog_max_age_ms: Some(24 * 3_600_000),
            confirm_deliveries: false,
        }
    }
}
