//! Lenient readers for Moltbook responses: field names and nesting have drifted over time
//! (`conversation_id` / `id` / `conversation.id`, `{count, items}` / bare arrays, numbers as
//! strings), so every reader accepts the known variants and skips what it cannot use.

use serde_json::Value;

/// The first of `keys` that holds a non-empty string (or a number, as text).
pub fn text(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match v.get(*k)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A count: a number or a numeric string.
pub fn count(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// A boolean that servers send as `true` or `"true"`.
pub fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        Value::Number(n) => Some(n.as_u64() != Some(0)),
        _ => None,
    }
}

/// The elements of a list that may be a bare array or `{items: […]}` / `{data: […]}`.
pub fn items(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(a)) => a,
        Some(Value::Object(o)) => ["items", "data", "list"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_array))
            .map_or(&[], Vec::as_slice),
        _ => &[],
    }
}

/// A conversation id in any of its spellings, or nested under `conversation`.
pub fn conversation_id(v: &Value) -> Option<String> {
    text(v, &["conversation_id", "conversationId", "id"])
        .or_else(|| v.get("conversation").and_then(conversation_id))
}

/// The conversation a message preview belongs to (its own `id` is the message's).
pub fn conversation_id_of_message(v: &Value) -> Option<String> {
    text(v, &["conversation_id", "conversationId"]).or_else(|| v.get("conversation").and_then(conversation_id))
}

/// `{name, owner{x_handle}}` of an agent object (or a bare name string).
pub fn agent(v: Option<&Value>) -> (Option<String>, Option<String>) {
    match v {
        Some(Value::String(s)) => (Some(s.clone()), None),
        Some(a) => {
            let name = text(a, &["name", "username", "agent_name"]);
            let owner = a.get("owner").and_then(|o| text(o, &["x_handle", "xHandle", "handle"]));
            (name, owner)
        }
        None => (None, None),
    }
}

/// How long the server asked us to wait, in ms: the largest of `Retry-After` (seconds),
/// `retry_after_seconds`, `retry_after_minutes` and `retry_after_ms`, at top level or under
/// `error`. `None` when no hint is present.
pub fn retry_after_ms(headers: &http::HeaderMap, body: &Value) -> Option<u64> {
    let header = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .map(|s| s * 1000.0);
    let scopes = [Some(body), body.get("error")];
    let field = |key: &str, scale: f64| {
        scopes.iter().flatten().find_map(|v| match v.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }).map(|x| x * scale)
    };
    [header, field("retry_after_seconds", 1000.0), field("retry_after_minutes", 60_000.0), field("retry_after_ms", 1.0)]
        .into_iter()
        .flatten()
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        // A day at most: a larger hint is more likely a unit mistake than a real cool-down.
        .map(|ms| (ms as u64).min(86_400_000))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_and_lists_in_every_spelling() {
        assert_eq!(conversation_id(&json!({"conversation_id": "a"})).as_deref(), Some("a"));
        assert_eq!(conversation_id(&json!({"id": 7})).as_deref(), Some("7"));
        assert_eq!(conversation_id(&json!({"conversation": {"id": "b"}})).as_deref(), Some("b"));
        assert_eq!(conversation_id(&json!({"conversation_id": ""})), None);
        assert_eq!(items(Some(&json!([1, 2]))).len(), 2);
        assert_eq!(items(Some(&json!({"count": 1, "items": [1]}))).len(), 1);
        assert_eq!(items(Some(&json!("nope"))).len(), 0);
        assert_eq!(count(Some(&json!("3"))), 3);
        assert_eq!(count(Some(&json!(-1))), 0);
    }

    #[test]
    fn retry_hints_take_the_longest() {
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after_ms(&h, &json!({})), None);
        h.insert(http::header::RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(retry_after_ms(&h, &json!({"retry_after_seconds": 10})), Some(30_000));
        assert_eq!(retry_after_ms(&h, &json!({"retry_after_minutes": 2})), Some(120_000));
        let h = http::HeaderMap::new();
        assert_eq!(retry_after_ms(&h, &json!({"retry_after_seconds": "45"})), Some(45_000));
        assert_eq!(retry_after_ms(&h, &json!({"error": {"retry_after_minutes": 1}})), Some(60_000));
        assert_eq!(retry_after_ms(&h, &json!({"retry_after_minutes": 1e12})), Some(86_400_000));
    }
}
