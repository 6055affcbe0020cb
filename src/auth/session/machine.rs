//! The auth session's operations and every transition between them, in one table.
//!
//! [`AuthSession::next`] reads the current operation and one input and names the side effect
//! to perform; `steps.rs` performs it and returns the operation it entered. The session
//! assigns its operation in one place only ([`AuthSession::feed`]).

use super::AuthSession;
use crate::auth::AuthHow;
use crate::io::{ApiError, RequestId, Secret, Ticket};
use serde_json::Value;

/// What to do once the host acknowledges a persist.
pub(super) enum Then {
    Register,
    Verify { challenge: String, how: AuthHow },
    Refresh,
    Adopt { jwt: Secret<String>, how: AuthHow },
}

/// The one auth operation in progress: two triggers can never run two at once.
pub(super) enum Op {
    Idle,
    Persisting { ticket: Ticket, then: Then },
    Register { req: RequestId },
    Challenge { req: RequestId },
    Verify { req: RequestId, how: AuthHow },
    Refresh { req: RequestId },
    /// Backing off after a transient failure.
    Waiting { until_ms: u64 },
    /// Needs the human (bad key, unknown agent…): nothing more happens until `login`.
    Failed,
}

/// What happens to the session.
pub(super) enum Input {
    /// `register`: save the new key, then register it.
    Register,
    /// A token is wanted now (none usable, a forced rotation, or the refresh timer is due).
    Obtain,
    /// The human asks again after a failure (`login`, `refresh`); `login` also forgets the
    /// failed attempts.
    Restart { forget_attempts: bool },
    /// The host acknowledged persist `ticket`.
    Persisted(Ticket),
    /// The answer to request `id` (a transport failure is an `Err`).
    Answer(RequestId, Result<(u16, Value), ApiError>),
    /// The clock reached `now_ms`.
    Timeout,
}

/// The side effect of a transition. Performing it (`steps.rs`) yields the next operation.
pub(super) enum Effect {
    /// Nothing to do: the operation stays as it is.
    Stay(Op),
    /// Clear a failure and stay idle (the caller may then ask for a token).
    Reset { forget_attempts: bool },
    /// The refresh timer fired: forget it, then obtain a token.
    RefreshDue,
    /// Obtain a token the way the credentials allow: register, refresh or challenge.
    Begin,
    /// Persist the credentials, then continue with `Then`.
    Persist(Then),
    /// Perform what a persisted step was waiting for.
    Continue(Then),
    /// Sign `challenge` and POST it to `/agents/verify`.
    SendVerify { challenge: String, how: AuthHow },
    /// The server registered us: record the id, tell the agent, save it, then verify.
    Registered { agent_id: String, challenge: String },
    /// A token pair arrived: save the refresh token, use the access token once acknowledged.
    StorePair { body: Value, how: AuthHow },
    /// The refresh token may be spent: forget it and re-authenticate with the key.
    Reauthenticate { reason: String },
    /// The challenge died (used or expired): ask for a fresh one, backing off after three.
    ChallengeAgain(ApiError),
    /// Back off and try again later.
    Retry(ApiError),
    /// Stop until the human acts.
    Fail(ApiError),
}

impl AuthSession {
    /// The transition table: the effect of `input` on operation `op`. Reads the session's
    /// other fields (timers, credentials) as guards; changes nothing.
    pub(super) fn next(&self, op: Op, input: Input, now_ms: u64) -> Effect {
        use Effect as E;
        match (op, input) {
            // Commands.
            (Op::Idle | Op::Failed, Input::Register) => E::Persist(Then::Register),
            (Op::Idle, Input::Obtain) => E::Begin,
            (Op::Failed, Input::Restart { forget_attempts }) => E::Reset { forget_attempts },
            // The clock.
            (Op::Waiting { until_ms }, Input::Timeout) if now_ms >= until_ms => E::Begin,
            (Op::Idle, Input::Timeout) if self.refresh_at_ms.is_some_and(|at| now_ms >= at) => E::RefreshDue,
            // The host stored what the operation waits for.
            (Op::Persisting { ticket, then }, Input::Persisted(acked)) if ticket == acked => E::Continue(then),
            // Answers to the operation's request.
            (Op::Register { req }, Input::Answer(id, answer)) if req == id => match answer {
                Ok((_, body)) => match (str_field(&body, "agentId"), str_field(&body, "challenge")) {
                    (Some(agent_id), Some(challenge)) => E::Registered { agent_id, challenge },
                    _ => E::Retry(ApiError::transport("register response lacks agentId or challenge")),
                },
                Err(e) if is_transient(&e) => E::Retry(e),
                Err(e) => E::Fail(e),
            },
            (Op::Challenge { req }, Input::Answer(id, answer)) if req == id => match answer {
                Ok((_, body)) => match str_field(&body, "challenge") {
                    Some(challenge) => E::SendVerify { challenge, how: AuthHow::Challenge },
                    None => E::Retry(ApiError::transport("challenge response lacks challenge")),
                },
                Err(e) if is_transient(&e) => E::Retry(e),
                Err(e) => E::Fail(e),
            },
            (Op::Verify { req, how }, Input::Answer(id, answer)) if req == id => match answer {
                Ok((_, body)) => E::StorePair { body, how },
                Err(e) if e.code_is("CHALLENGE_EXPIRED") => E::ChallengeAgain(e),
                Err(e) if is_transient(&e) => E::Retry(e),
                Err(e) => E::Fail(e),
            },
            (Op::Refresh { req }, Input::Answer(id, answer)) if req == id => match answer {
                Ok((_, body)) if str_field(&body, "token").is_some() && str_field(&body, "refreshToken").is_some() => {
                    E::StorePair { body, how: AuthHow::Refresh }
                }
                // Spent, revoked, expired, or unknown outcome: the refresh token may be gone.
                // Never send it again; the private key always works.
                Err(e) => E::Reauthenticate { reason: e.to_string() },
                Ok(_) => E::Reauthenticate { reason: "refresh response lacks token or refreshToken".to_owned() },
            },
            // Anything else (a stale answer or ticket, a command while busy) changes nothing.
            (op, _) => E::Stay(op),
        }
    }
}

fn is_transient(e: &ApiError) -> bool {
    e.status == 0 || e.status == 429 || e.status >= 500
}

/// A non-empty string field of an answer (bounded: a huge value is treated as missing).
pub(super) fn str_field(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(|v| v.as_str()).filter(|s| !s.is_empty() && s.len() <= 16 * 1024).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn session() -> AuthSession {
        AuthSession::new(None, None, [7; 32], Default::default()).unwrap()
    }

    fn error(status: u16, code: Option<&str>) -> ApiError {
        ApiError { status, code: code.map(str::to_owned), message: "m".into() }
    }

    /// One row per (operation, input) that moves the machine, and the stale inputs that must not.
    #[test]
    fn transitions() {
        let s = session();
        let ok = |body| Input::Answer(5, Ok((200, body)));
        let err = |status, code| Input::Answer(5, Err(error(status, code)));
        assert!(matches!(s.next(Op::Idle, Input::Obtain, 0), Effect::Begin));
        assert!(matches!(s.next(Op::Failed, Input::Obtain, 0), Effect::Stay(Op::Failed)));
        assert!(matches!(s.next(Op::Failed, Input::Register, 0), Effect::Persist(Then::Register)));
        assert!(matches!(s.next(Op::Register { req: 5 }, Input::Register, 0), Effect::Stay(Op::Register { req: 5 })));
        assert!(matches!(s.next(Op::Failed, Input::Restart { forget_attempts: true }, 0), Effect::Reset { forget_attempts: true }));
        assert!(matches!(s.next(Op::Idle, Input::Restart { forget_attempts: true }, 0), Effect::Stay(Op::Idle)));
        // The backoff ends at its deadline, not before.
        assert!(matches!(s.next(Op::Waiting { until_ms: 10 }, Input::Timeout, 9), Effect::Stay(Op::Waiting { until_ms: 10 })));
        assert!(matches!(s.next(Op::Waiting { until_ms: 10 }, Input::Timeout, 10), Effect::Begin));
        // Only the awaited ticket and request move the machine.
        let persisting = |ticket| Op::Persisting { ticket, then: Then::Refresh };
        assert!(matches!(s.next(persisting(3), Input::Persisted(3), 0), Effect::Continue(Then::Refresh)));
        assert!(matches!(s.next(persisting(3), Input::Persisted(2), 0), Effect::Stay(Op::Persisting { ticket: 3, .. })));
        assert!(matches!(s.next(Op::Challenge { req: 4 }, ok(json!({"challenge": "c"})), 0), Effect::Stay(Op::Challenge { req: 4 })));
        // Answers.
        assert!(matches!(s.next(Op::Register { req: 5 }, ok(json!({"agentId": "a", "challenge": "c"})), 0), Effect::Registered { .. }));
        assert!(matches!(s.next(Op::Register { req: 5 }, ok(json!({"agentId": "a"})), 0), Effect::Retry(_)));
        assert!(matches!(s.next(Op::Register { req: 5 }, err(409, None), 0), Effect::Fail(_)));
        assert!(matches!(s.next(Op::Challenge { req: 5 }, ok(json!({"challenge": "c"})), 0), Effect::SendVerify { how: AuthHow::Challenge, .. }));
        assert!(matches!(s.next(Op::Challenge { req: 5 }, err(503, None), 0), Effect::Retry(_)));
        assert!(matches!(s.next(Op::Verify { req: 5, how: AuthHow::Register }, ok(json!({})), 0), Effect::StorePair { how: AuthHow::Register, .. }));
        assert!(matches!(s.next(Op::Verify { req: 5, how: AuthHow::Challenge }, err(400, Some("CHALLENGE_EXPIRED")), 0), Effect::ChallengeAgain(_)));
        assert!(matches!(s.next(Op::Verify { req: 5, how: AuthHow::Challenge }, err(401, None), 0), Effect::Fail(_)));
        assert!(matches!(s.next(Op::Refresh { req: 5 }, ok(json!({"token": "t", "refreshToken": "r"})), 0), Effect::StorePair { how: AuthHow::Refresh, .. }));
        // A refresh that fails in any way, even transiently, never reuses the refresh token.
        assert!(matches!(s.next(Op::Refresh { req: 5 }, err(503, None), 0), Effect::Reauthenticate { .. }));
        assert!(matches!(s.next(Op::Refresh { req: 5 }, ok(json!({"token": "t"})), 0), Effect::Reauthenticate { .. }));
    }
}
