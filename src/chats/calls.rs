//! The call queue: REST calls (the host's and the realtime session's) wait for a token and
//! the rate limiter, go out in per-bucket FIFO order, are retried once after a 401 that raced
//! a rotation, and end as an event or back in the realtime session.

use super::limiter::{Bucket, RateHeaders};
use super::{ChatsClient, ChatsCommand, ChatsEvent, realtime, rest};
use crate::auth::session::is_credential_rejection;
use crate::error::{Error, ErrorCode, Result};
use crate::io::{ApiError, CallEvent, CallId, RequestId, json_outcome, json_request};

pub(super) struct Call {
    method: http::Method,
    path: String,
    body: Option<serde_json::Value>,
    retried: bool,
    /// The request in flight and the token generation it carries.
    pub(super) in_flight: Option<(RequestId, u64)>,
    /// The typed command behind the call, if any: its result is parsed into `command_succeeded`.
    command: Option<ChatsCommand>,
    /// Rate-limit buckets the call draws from; the last one is the most specific.
    buckets: Vec<Bucket>,
    /// When the limiter admitted the attempt in flight (to refund it if it never arrives).
    admitted_at: Option<u64>,
    /// A `throttled` event was reported for the current wait.
    reported: bool,
    /// Made by the realtime session (backfill, pending poll): its result goes back there.
    purpose: Option<Purpose>,
}

#[derive(Debug, Clone)]
pub(super) enum Purpose {
    Backfill { channel: String, epoch: u64 },
    Pending,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Call({} {})", self.method, self.path)
    }
}

impl ChatsClient {
    pub(super) fn enqueue(
        &mut self,
        method: http::Method,
        path: String,
        body: Option<serde_json::Value>,
        command: Option<ChatsCommand>,
        buckets: Vec<Bucket>,
        now_ms: u64,
    ) -> Result<CallId> {
        if !self.session.is_registered() {
            return Err(Error::new(ErrorCode::NotRegistered, "no agent identity: register first or load credentials"));
        }
        let id = self.out.next_id();
        let call = Call { method, path, body, retried: false, in_flight: None, command, buckets, admitted_at: None, reported: false, purpose: None };
        self.calls.insert(id, Box::new(call));
        self.session.ensure(now_ms, &mut self.out);
        self.dispatch(now_ms);
        Ok(id)
    }

    pub(super) fn handle_result(&mut self, id: RequestId, result: std::result::Result<http::Response<Vec<u8>>, ApiError>, now_ms: u64) -> Result<()> {
        if self.session.owns_request(id) {
            self.session.handle_result(id, result, now_ms, &mut self.out);
        } else {
            let call_id = self
                .calls
                .iter()
                .find(|(_, c)| c.in_flight.is_some_and(|(req, _)| req == id))
                .map(|(k, _)| *k)
                .ok_or_else(|| Error::new(ErrorCode::UnknownId, format!("no request with id {id} is in flight")))?;
            self.on_call_result(call_id, result, now_ms);
        }
        self.dispatch(now_ms);
        Ok(())
    }

    fn on_call_result(&mut self, call_id: CallId, result: std::result::Result<http::Response<Vec<u8>>, ApiError>, now_ms: u64) {
        let call = self.calls.get_mut(&call_id).expect("call exists");
        let (_, generation) = call.in_flight.take().expect("call was in flight");
        let admitted_at = call.admitted_at.take();
        let primary = call.buckets.last().cloned().unwrap_or(Bucket::Api);
        match &result {
            Ok(response) => {
                let headers = RateHeaders::from_headers(response.headers());
                if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
                    // Requeue, never drop: the bucket stays closed until the server's reset.
                    let until_ms = self.limiter.rejected(&primary, headers, now_ms);
                    call.reported = true;
                    self.next_release = Some(self.next_release.map_or(until_ms, |t| t.min(until_ms)));
                    let waiting = self.calls.values().filter(|c| c.in_flight.is_none()).count();
                    self.out.event(ChatsEvent::Throttled { call_id, bucket: primary, until_ms, waiting, rejected: true });
                    return;
                }
                self.limiter.observe(&primary, headers, now_ms);
                if response.status().is_success() {
                    self.limiter.accepted(&primary);
                }
            }
            // It never reached the server: give the slots back.
            Err(_) => {
                if let Some(at) = admitted_at {
                    self.limiter.refund(&call.buckets, at);
                }
            }
        }
        let outcome = json_outcome(result, ApiError::from_moltchats);
        match outcome {
            Err(e) if is_credential_rejection(&e) && !call.retried => {
                // Raced a rotation (or the token expired): retry once with the next token.
                call.retried = true;
                self.session.reject_token(generation, now_ms, &mut self.out);
            }
            outcome => {
                let call = self.calls.remove(&call_id).expect("call exists");
                self.finish(call_id, call, outcome, now_ms);
            }
        }
    }

    /// Report a finished call: an event for the host, or back to the realtime session.
    fn finish(&mut self, call_id: CallId, call: Box<Call>, outcome: std::result::Result<(u16, serde_json::Value), ApiError>, now_ms: u64) {
        let typed = match (&call.command, outcome) {
            (None, Ok((status, body))) => return self.out.event(CallEvent::CallSucceeded { call_id, status, body }),
            (_, Err(error)) => Err(error),
            (Some(command), Ok((status, body))) => rest::parse_result(command, &body)
                .map(|result| (status, result, body))
                .map_err(|message| ApiError { status, code: None, message }),
        };
        match call.purpose {
            Some(Purpose::Backfill { channel, epoch }) => {
                let result = typed.map(|(_, r, _)| r).map_err(|e| e.to_string());
                self.with_realtime(now_ms, |rt, io| rt.on_history(&channel, epoch, result, now_ms, io));
            }
            Some(Purpose::Pending) => {
                let result = typed.map(|(_, r, _)| r).map_err(|e| e.to_string());
                self.with_realtime(now_ms, |rt, io| rt.on_pending(result, now_ms, io));
            }
            None => self.out.event(match typed {
                Ok((status, result, body)) => {
                    let command = call.command.expect("typed results come from commands");
                    ChatsEvent::CommandSucceeded { call_id, op: command.op(), status, untrusted: rest::untrusted_fields(&command), result: Box::new(result), body }
                }
                Err(error) => ChatsEvent::Call(CallEvent::CallFailed { call_id, error }),
            }),
        }
    }

    /// Run the realtime session with what it needs, then queue the REST calls it asked for
    /// and pass a rejected token on to the auth session.
    pub(super) fn with_realtime<R>(&mut self, now_ms: u64, f: impl FnOnce(&mut realtime::Realtime, &mut realtime::Io) -> R) -> R {
        let mut needs = Vec::new();
        let mut reject = None;
        let token = self.session.token(now_ms).map(|t| (&t.jwt, t.generation));
        let mut io = realtime::Io {
            out: &mut self.out,
            limiter: &mut self.limiter,
            token,
            agent_id: self.session.agent_id(),
            needs: &mut needs,
            reject_generation: &mut reject,
        };
        let r = f(&mut self.realtime, &mut io);
        if let Some(generation) = reject {
            self.session.reject_token(generation, now_ms, &mut self.out);
        }
        if self.realtime.needs_token() && self.session.token(now_ms).is_none() {
            self.session.ensure(now_ms, &mut self.out);
        }
        for need in needs {
            let (command, purpose) = match need {
                realtime::Need::History { channel, epoch, command } => (command, Purpose::Backfill { channel, epoch }),
                realtime::Need::Pending { command } => (command, Purpose::Pending),
            };
            let Ok(prepared) = command.request() else { continue };
            let mut buckets = vec![Bucket::Api];
            buckets.extend(prepared.buckets);
            let call_id = self.out.next_id();
            let call = Call {
                method: prepared.method,
                path: prepared.path,
                body: prepared.body,
                retried: false,
                in_flight: None,
                command: Some(command),
                buckets,
                admitted_at: None,
                reported: false,
                purpose: Some(purpose),
            };
            self.calls.insert(call_id, Box::new(call));
        }
        r
    }

    /// Let the realtime session act, then send every waiting call if a token is usable (or
    /// fail them if auth needs the human).
    pub(super) fn dispatch(&mut self, now_ms: u64) {
        self.dispatch_calls(now_ms);
        // After every step: positions and windows that moved are saved (one save at a time).
        self.save_resume(now_ms, false);
    }

    fn dispatch_calls(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        // Recomputed below; never left stale (a stale past deadline would make hosts spin).
        self.next_release = None;
        self.with_realtime(now_ms, |rt, io| rt.step(now_ms, io));
        if self.session.is_failed() {
            let waiting: Vec<CallId> = self.calls.iter().filter(|(_, c)| c.in_flight.is_none()).map(|(k, _)| *k).collect();
            for call_id in waiting {
                let call = self.calls.remove(&call_id).expect("listed above");
                let error = ApiError::transport("not authenticated: authentication failed (see auth_failed)");
                self.finish(call_id, call, Err(error), now_ms);
            }
            return;
        }
        // Nothing waits (the common case, e.g. per inbound frame): no token or base to copy.
        if self.calls.values().all(|c| c.in_flight.is_some()) {
            return;
        }
        let Some(token) = self.session.token(now_ms).cloned() else { return };
        let base = self.session.api_base().to_owned();
        let mut failed = Vec::new();
        // FIFO per bucket: once a bucket holds a call back, later calls on it wait too. Sends to
        // one channel go one at a time, so they arrive in order and a rejection is learnt from
        // before the next one leaves.
        let mut held: Vec<Bucket> = self
            .calls
            .values()
            .filter(|c| c.in_flight.is_some())
            .flat_map(|c| c.buckets.iter().filter(|b| matches!(b, Bucket::Channel(_))).cloned())
            .collect();
        let mut throttled = Vec::new();
        for (call_id, call) in self.calls.iter_mut().filter(|(_, c)| c.in_flight.is_none()) {
            if let Some(bucket) = call.buckets.iter().find(|b| held.contains(b)).cloned() {
                if !call.reported {
                    call.reported = true;
                    let until_ms = self.limiter.ready_at(&call.buckets, now_ms);
                    throttled.push((*call_id, bucket, until_ms));
                }
                continue;
            }
            if let Err(until_ms) = self.limiter.admit(&call.buckets, now_ms) {
                let bucket = call
                    .buckets
                    .iter()
                    .find(|b| self.limiter.ready_at(std::slice::from_ref(*b), now_ms) == until_ms)
                    .cloned()
                    .unwrap_or(Bucket::Api);
                for b in &call.buckets {
                    if self.limiter.ready_at(std::slice::from_ref(b), now_ms) > now_ms {
                        held.push(b.clone());
                    }
                }
                self.next_release = Some(self.next_release.map_or(until_ms, |t| t.min(until_ms)));
                if !call.reported {
                    call.reported = true;
                    throttled.push((*call_id, bucket, until_ms));
                }
                continue;
            }
            call.reported = false;
            call.admitted_at = Some(now_ms);
            held.extend(call.buckets.iter().filter(|b| matches!(b, Bucket::Channel(_))).cloned());
            let url = format!("{base}{}", call.path);
            match json_request(call.method.clone(), &url, Some(token.jwt.expose()), call.body.as_ref()) {
                Ok(request) => call.in_flight = Some((self.out.http(request), token.generation)),
                Err(e) => failed.push((*call_id, e)),
            }
        }
        let waiting = self.calls.values().filter(|c| c.in_flight.is_none()).count();
        for (call_id, bucket, until_ms) in throttled {
            self.out.event(ChatsEvent::Throttled { call_id, bucket, until_ms, waiting, rejected: false });
        }
        for (call_id, e) in failed {
            let call = self.calls.remove(&call_id).expect("listed above");
            self.finish(call_id, call, Err(ApiError::transport(e.message)), now_ms);
        }
    }
}
