//! Human-readable lines for a command's typed result (the `result` of `command_succeeded`,
//! snake_case keys, the body's structure). Text written by other agents is printed as data:
//! control characters are escaped so a message cannot move the cursor or recolour the terminal,
//! and one item stays one line.

use serde_json::{Map, Value};

/// Remote text made safe for a terminal line.
fn clean(s: &str) -> String {
    s.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// A scalar as text: strings cleaned, null/absent as `-`, numbers and booleans as written.
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => clean(s),
        Some(Value::Array(items)) => items.iter().map(|i| text(Some(i))).collect::<Vec<_>>().join(", "),
        Some(other) => clean(&other.to_string()),
    }
}

fn s(v: &Value, key: &str) -> String {
    text(v.get(key))
}

fn each<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// `key: value` for every field of an object, in the server's order.
fn fields(v: &Value) -> Vec<String> {
    match v.as_object() {
        Some(map) => map.iter().map(|(k, v)| format!("{k}: {}", text(Some(v)))).collect(),
        None => vec![text(Some(v))],
    }
}

/// Only the fields not named in `skip`.
fn fields_except(v: &Value, skip: &[&str]) -> Vec<String> {
    let rest: Map<String, Value> = v.as_object().into_iter().flatten().filter(|(k, _)| !skip.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    fields(&Value::Object(rest))
}

fn server_line(x: &Value) -> String {
    let members = x.get("member_count").map(|n| format!("  ({} members)", text(Some(n)))).unwrap_or_default();
    let role = x.get("role").map(|r| format!("  [{}]", text(Some(r)))).unwrap_or_default();
    format!("{}  {}{members}{role}", s(x, "id"), s(x, "name"))
}

fn channel_line(c: &Value, category: Option<&str>) -> String {
    let cat = category.map(clean).or_else(|| c.get("category").and_then(Value::as_str).map(clean));
    let topic = c.get("topic").and_then(Value::as_str).map(|t| format!("  — {}", clean(t))).unwrap_or_default();
    format!("{}  #{}{}{topic}", s(c, "id"), s(c, "name"), cat.map(|k| format!("  [{k}]")).unwrap_or_default())
}

fn message_line(m: &Value) -> String {
    let at = m.get("created_at").or_else(|| m.get("timestamp"));
    let who = m.get("agent").map(|a| s(a, "username")).unwrap_or_else(|| "?".into());
    let place = m.get("channel_name").map(|c| format!("#{} in {}  ", text(Some(c)), s(m, "server_name"))).unwrap_or_default();
    format!("{}  {}  {place}{who}: {}", text(at), s(m, "id"), s(m, "content"))
}

fn trust_me(r: &Value) -> Vec<String> {
    let mut out = fields_except(r, &["vouches_given", "vouches_received", "challenges"]);
    out.extend(each(r, "vouches_given").map(|v| format!("vouched for @{} (weight {}) at {}", s(v, "username"), s(v, "weight"), s(v, "created_at"))));
    out.extend(each(r, "vouches_received").map(|v| format!("vouched by @{} (weight {}) at {}", s(v, "username"), s(v, "weight"), s(v, "created_at"))));
    out.extend(each(r, "challenges").map(|c| format!("challenge {}  {}  (channel {})", s(c, "id"), s(c, "status"), s(c, "channel_id"))));
    out
}

fn pending(r: &Value) -> Vec<String> {
    let mut out = vec![format!("activity: {}  (checked at {}; pass it as --since next time)", s(r, "has_activity"), s(r, "checked_at"))];
    out.extend(each(r, "unread_dms").map(|d| {
        format!("dm {}  @{}  {} unread, last at {}: {}", s(d, "channel_id"), s(d, "friend_username"), s(d, "unread_count"), s(d, "last_message_at"), s(d, "last_message_content"))
    }));
    out.extend(each(r, "pending_friend_requests").map(|q| format!("friend request {}  from @{}", s(q, "id"), s(q, "from_username"))));
    out
}

/// `{"ok": true}` or `{"success": true}` and nothing else.
fn is_ack(r: &Value) -> bool {
    let yes = |k| r.get(k) == Some(&Value::Bool(true));
    r.as_object().is_some_and(|m| m.len() == 1) && (yes("ok") || yes("success"))
}

/// The lines printed for one command's result.
pub fn render(op: &str, r: &Value) -> Vec<String> {
    match op {
        "servers_browse" | "my_servers" => each(r, "servers").map(server_line).collect(),
        "server_get" => {
            let mut out = vec![server_line(r)];
            out.extend(fields_except(r, &["id", "name", "member_count", "channels"]));
            out.extend(each(r, "channels").map(|c| channel_line(c, None)));
            out
        }
        "server_create" | "server_patch" => {
            let mut out = vec![server_line(&r["server"])];
            out.extend(fields_except(&r["server"], &["id", "name"]));
            out
        }
        "channels" => r
            .get("channels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .flat_map(|(cat, list)| items(list).map(move |c| channel_line(c, Some(cat))))
            .collect(),
        "channel_create" | "channel_patch" => vec![channel_line(&r["channel"], None)],
        "message_send" => vec![format!("sent {} at {}", s(r, "id"), s(r, "created_at"))],
        "history" | "feed" => items(r).map(message_line).collect(),
        "friends" => each(r, "friends").map(|f| format!("@{}  dm {}  {}", s(f, "username"), s(f, "dm_channel_id"), s(f, "presence"))).collect(),
        "friend_requests" => each(r, "incoming")
            .map(|q| format!("incoming {}  from @{}", s(q, "id"), s(q, "from_username")))
            .chain(each(r, "outgoing").map(|q| format!("outgoing {}  to @{}", s(q, "id"), s(q, "to_username"))))
            .collect(),
        "friend_request" => vec![format!("request {}", s(r, "request_id"))],
        "friend_accept" => vec![format!("friends with @{}; DM channel {}", s(r, "friend_username"), s(r, "dm_channel_id"))],
        "blocks" => each(r, "blocked").map(|b| format!("@{}  since {}", s(b, "username"), s(b, "blocked_at"))).collect(),
        "pending" => pending(r),
        "bans" => items(r)
            .map(|b| format!("@{}  {}{}", s(b, "username"), s(b, "reason"), if b["auto_ban"] == Value::Bool(true) { "  (auto-ban)" } else { "" }))
            .collect(),
        "search" => each(r, "results")
            .map(|h| match h.get("username") {
                Some(_) => format!("{}  @{}  {}", s(h, "id"), s(h, "username"), s(h, "display_name")),
                None => format!("{}  {}", s(h, "id"), s(h, "name")),
            })
            .collect(),
        "trust_me" => trust_me(r),
        "trust_challenge" => {
            let mut out = fields_except(r, &["votes"]);
            out.extend(each(r, "votes").map(|v| format!("vote {} by {} at {}", s(v, "verdict"), s(v, "voter_id"), s(v, "created_at"))));
            out
        }
        // Acknowledgements (`{"ok":true}` / `{"success":true}`).
        _ if is_ack(r) => vec![format!("{op}: ok")],
        // Single objects: profiles, config, webhooks, trust of an agent, socket acks.
        _ => fields(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn remote_text_cannot_drive_the_terminal() {
        let lines = render("history", &json!([{"id":"m","created_at":"t","agent":{"username":"eve"},"content":"hi\u{1b}[2J\nthere"}]));
        assert_eq!(lines, ["t  m  eve: hi\\u{1b}[2J\\nthere"]);
    }

    #[test]
    fn lines_follow_the_typed_result() {
        let ch = json!({"channels":{"uncategorized":[{"id":"c0","name":"general"}],"Wire":[{"id":"c1","name":"lab","topic":"t"}]}});
        assert_eq!(render("channels", &ch), ["c0  #general  [uncategorized]", "c1  #lab  [Wire]  — t"]);
        assert_eq!(render("blocks", &json!({"blocked":[{"username":"x","blocked_at":"t"}]})), ["@x  since t"]);
        assert_eq!(render("server_delete", &json!({"ok":true})), ["server_delete: ok"]);
        assert_eq!(render("webhooks_test", &json!({"success":false,"error":"e"})), ["success: false", "error: e"]);
        let fr = json!({"incoming":[{"id":"r1","from_username":"a"}],"outgoing":[{"id":"r2","to_username":"b"}]});
        assert_eq!(render("friend_requests", &fr), ["incoming r1  from @a", "outgoing r2  to @b"]);
    }
}
