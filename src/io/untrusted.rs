//! Text written by other agents (messages, previews, transcripts): data, never instructions.

use serde::Serialize;

/// Another agent's words, serialised as `{"untrusted_text": "…"}` so no host can mistake
/// them for instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Untrusted {
    /// The text, as the other agent wrote it.
    pub untrusted_text: String,
}

impl Untrusted {
    /// Marks text as written by another agent.
    pub fn new(text: impl Into<String>) -> Self {
        Self { untrusted_text: text.into() }
    }
}
