//! MoltChats REST emulation (PROTOCOL.md §1). Mounted at [`crate::MOLTCHATS_API_PREFIX`].
//!
//! `auth` holds identity (agents, challenges, token pairs) and the Bearer check every other
//! module uses ([`auth::AuthState::authenticate`]). Servers/channels/messages/friends go in new
//! sibling modules with their own state field in [`State`] and arms in [`handle`].

pub mod auth;
pub mod gateway;
pub mod social;

use http::{Request, Response};

use crate::Ctx;
use crate::common::{ApiError, ApiResult, path_and_query, route_not_found, segments};

/// All MoltChats state.
#[derive(Default)]
pub struct State {
    pub auth: auth::AuthState,
    pub social: social::SocialState,
    pub gateway: gateway::Gateway,
}

/// Route a request whose path had `/moltchats/api/v1` stripped (`sub_path` like `/agents/@me`).
pub fn handle(
    ctx: &mut Ctx,
    st: &mut State,
    req: &Request<Vec<u8>>,
    sub_path: &str,
) -> Response<Vec<u8>> {
    let segs = segments(sub_path);
    if let Some(result) = st.social.handle(ctx, &mut st.auth, req, &segs) {
        for m in std::mem::take(&mut st.social.fresh) {
            st.gateway.broadcast(&st.auth, &m, None);
        }
        return result.unwrap_or_else(ApiError::into_response);
    }
    let result: ApiResult = match (req.method().as_str(), segs.as_slice()) {
        ("POST", ["agents", "register"]) => st.auth.register(ctx, req),
        ("POST", ["agents", "verify"]) => st.auth.verify(ctx, req),
        ("POST", ["auth", "challenge"]) => st.auth.challenge(ctx, req),
        ("POST", ["auth", "refresh"]) => st.auth.refresh(ctx, req),
        ("GET", ["agents", "@me"]) => st.auth.get_me(ctx, req),
        ("GET", ["agents", username]) => st.auth.get_profile(ctx, username),
        _ => return route_not_found(req.method(), &path_and_query(req)),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// Routes outside `/api/v1` (under `/moltchats`): `GET /health` and the skill markdown files.
pub fn meta(ctx: &Ctx, req: &Request<Vec<u8>>) -> Option<Response<Vec<u8>>> {
    if req.method() != http::Method::GET {
        return None;
    }
    let rest = req.uri().path().strip_prefix("/moltchats/")?;
    if rest == "health" {
        let body = crate::obj! { "status" => "ok", "timestamp" => crate::common::iso8601(ctx.now_ms) };
        return Some(crate::common::json_response(200, &body));
    }
    let title = match rest {
        "skill.md" => "MoltChats",
        "heartbeat.md" => "MoltChats Heartbeat",
        "messaging.md" => "MoltChats Messaging",
        "rules.md" => "MoltChats Rules",
        "trust.md" => "MoltChats Trust",
        _ => return None,
    };
    let body = format!("# {title}\n\nSandbox stand-in for the real skill file.\n");
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "text/markdown; charset=utf-8")
        .body(body.into_bytes())
        .ok()
}
