//! Answers from the server: redirects refused (they would drop the key), 429s turned into a
//! cool-down, Moltbook's error shape read, keys scrubbed, then each outcome routed by why its
//! request was sent.

use super::event::DmEvent;
use super::heartbeat::check_summary;
use super::registry::is_blocked;
use super::state::Input;
use super::{DmClient, DmCommand, Purpose, parse};
use crate::error::{Error, ErrorCode, Result};
use crate::io::{ApiError, CallEvent, CallId, RequestId, parse_json_body};
use serde_json::Value;

impl DmClient {
    pub(super) fn take(&mut self, id: RequestId) -> Result<Purpose> {
        self.in_flight
            .remove(&id)
            .ok_or_else(|| Error::new(ErrorCode::UnknownId, format!("no request with id {id} is in flight")))
    }

    /// A server message could in theory echo what we sent: never let the key through.
    pub(super) fn scrub(&self, mut error: ApiError) -> ApiError {
        let key = self.key.expose();
        if error.message.contains(key.as_str()) {
            error.message = error.message.replace(key.as_str(), "<redacted>");
        }
        error
    }

    /// Success body, or the error: redirects refused, 429s remembered, Moltbook's error shape
    /// (also inside a 200 with `success:false`).
    pub(super) fn outcome(&mut self, response: http::Response<Vec<u8>>, now_ms: u64) -> std::result::Result<(u16, Value), ApiError> {
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            let to = response
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.parse::<http::Uri>().ok())
                .and_then(|u| u.host().map(str::to_owned))
                .map_or_else(String::new, |h| format!(" to {h}"));
            return Err(ApiError {
                status,
                code: Some("REDIRECT_REFUSED".into()),
                message: format!(
                    "the server answered with a redirect{to}; it was not followed because the request carries the API key. Use https://www.moltbook.com/api/v1 (with www.)"
                ),
            });
        }
        if status == 429 {
            let body = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
            let hint = parse::retry_after_ms(response.headers(), &body);
            let wait = hint.unwrap_or(self.policy.default_cooldown_ms);
            self.cooldown_until = self.cooldown_until.max(now_ms + wait);
            self.out.event(DmEvent::DmRateLimited { retry_at_ms: self.cooldown_until, retry_after_ms: wait });
        }
        let result = if response.status().is_success() {
            parse_json_body(&response).and_then(|body| {
                if parse::flag(body.get("success")) == Some(false) {
                    Err(server_error(status, response.body()))
                } else {
                    Ok((status, body))
                }
            })
        } else {
            Err(server_error(status, response.body()))
        };
        result.map_err(|e| self.scrub(e))
    }

    pub(super) fn finish(&mut self, purpose: Purpose, outcome: std::result::Result<(u16, Value), ApiError>, now_ms: u64) {
        match purpose {
            Purpose::Check { call, sync } => {
                let heartbeat = call.is_none() && !sync;
                let active = match &outcome {
                    Ok((_, body)) => self.on_check(body, heartbeat, now_ms),
                    Err(_) => false,
                };
                if sync {
                    // A look before judging a parked command: its outcome is that command's.
                } else if call.is_none() {
                    self.reschedule(active, now_ms);
                    if matches!(&outcome, Err(e) if e.status == 401) {
                        self.heartbeat = None;
                    }
                    let next_check_at_ms = self.next_deadline();
                    let event = match &outcome {
                        Ok((_, body)) => check_summary(body, next_check_at_ms),
                        Err(error) => DmEvent::DmHeartbeatFailed { error: error.clone(), next_check_at_ms },
                    };
                    self.out.event(event);
                } else if let Ok((_, body)) = &outcome {
                    self.out.event(check_summary(body, self.next_deadline()));
                }
                self.report(call, outcome);
                self.sync_done(sync, now_ms);
            }
            Purpose::Requests { call, sync } => {
                if let Ok((_, body)) = &outcome {
                    self.on_request_lists(body);
                }
                self.report(call, outcome);
                self.sync_done(sync, now_ms);
            }
            Purpose::List { call, sync } => {
                if let Ok((_, body)) = &outcome {
                    self.on_listing(body);
                }
                if call.is_none() && !sync {
                    self.listing = false;
                }
                self.report(call, outcome);
                self.sync_done(sync, now_ms);
            }
            Purpose::Command(call_id, command) => {
                match (&command, &outcome) {
                    (DmCommand::Request { to, to_owner, .. }, Ok((_, body))) => self.on_requested(to.as_deref(), to_owner.as_deref(), body),
                    (DmCommand::Request { to, to_owner, .. }, Err(e)) if is_blocked(e) => {
                        let i = self.conv_for_peer(to.as_deref(), to_owner.as_deref(), None);
                        self.apply(i, Input::RefusedBlocked);
                    }
                    (DmCommand::Send { conversation_id, .. } | DmCommand::Read { conversation_id }, Err(e)) if is_blocked(e) => {
                        self.apply_id(conversation_id, Input::RefusedBlocked)
                    }
                    (DmCommand::Approve { conversation_id }, Ok(_)) => self.apply_id(conversation_id, Input::Approve),
                    (DmCommand::Reject { conversation_id, block }, Ok(_)) => {
                        self.apply_id(conversation_id, if *block { Input::Block } else { Input::Reject })
                    }
                    (DmCommand::Read { conversation_id }, Ok((_, body))) => self.on_read(conversation_id, body),
                    _ => {}
                }
                self.report(Some(call_id), outcome);
            }
        }
    }

    fn report(&mut self, call: Option<CallId>, outcome: std::result::Result<(u16, Value), ApiError>) {
        let Some(call_id) = call else { return };
        self.out.event(match outcome {
            Ok((status, body)) => CallEvent::CallSucceeded { call_id, status, body },
            Err(error) => CallEvent::CallFailed { call_id, error },
        });
    }

    fn sync_done(&mut self, sync: bool, now_ms: u64) {
        if sync && self.syncs_in_flight > 0 {
            self.syncs_in_flight -= 1;
            if self.syncs_in_flight == 0 {
                self.settle_parked(now_ms);
            }
        }
    }
}

/// An error answer: Moltbook's `{success:false, error, hint}`, or the framework envelope
/// `{statusCode, message, error:"Not Found"}` (captured for retired routes), whose `message`
/// says more than its reason phrase. A 5xx keeps its status and code but not its text: a
/// server error's message can carry raw SQL and parameters.
pub(super) fn server_error(status: u16, body: &[u8]) -> ApiError {
    let mut error = ApiError::from_moltbook(status, body);
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if status >= 500 {
        error.message = format!("the server failed (HTTP {status}); its error text is withheld");
    } else if value.get("statusCode").is_some()
        && let Some(message) = value.get("message").and_then(Value::as_str).filter(|m| !m.is_empty())
    {
        error.message = message.chars().take(512).collect();
    }
    error
}
