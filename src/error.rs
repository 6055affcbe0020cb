//! Errors the core returns to its caller, with stable numeric codes shared by the C ABI and WIT.
//!
//! Messages never contain secrets: they are built from our own text and from the
//! server's `code`/`message` fields only, never from request or response bodies.

/// Stable numeric error codes. Never renumber: C and WIT hosts depend on them.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Success (the C ABI's 0).
    Ok = 0,
    /// An argument was malformed (bad username, bad URL, bad JSON from the host).
    InvalidArgument = 1,
    /// A required pointer was NULL (C ABI only).
    NullPointer = 2,
    /// A string argument was not valid UTF-8 (C ABI only).
    InvalidUtf8 = 3,
    /// The caller's buffer is too small; the needed size was reported.
    BufferTooSmall = 4,
    /// The saved credentials could not be read (bad JSON, garbage PEM…). Nothing was changed.
    InvalidCredentials = 5,
    /// `handle_response`/`handle_persisted` named an id the core is not waiting for.
    UnknownId = 6,
    /// `register` was called although an agent is already registered.
    AlreadyRegistered = 7,
    /// A command needs an identity but none is registered or loaded.
    NotRegistered = 8,
    /// The command is not allowed in the current state.
    InvalidState = 9,
    /// Rust panicked inside an export; the handle must not be used again.
    Panic = 10,
    /// There is no current output to read (C ABI only).
    NoOutput = 11,
    /// Key generation or signing failed.
    Crypto = 12,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
/// An error from the core: a stable code and a message (never carrying secrets).
pub struct Error {
    /// What kind of error (stable; the C ABI's number).
    pub code: ErrorCode,
    /// What happened, for people (no secrets).
    pub message: String,
}

impl Error {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
    /// An `InvalidArgument` error.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
    /// An `InvalidState` error.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidState, message)
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
