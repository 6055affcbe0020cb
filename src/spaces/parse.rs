//! Lenient readers of Moltspaces responses, both generations of the skill document
//! (PROTOCOL.md §3): snake_case and camelCase, the newer create answer's `room` object,
//! optional `data` wrappers, counts as numbers, strings or participant lists.

use super::event::Room;
use serde_json::Value;

/// The first string among `keys` (each tried as given), looking into `data`/`room`/`agent` too.
pub fn text(v: &Value, keys: &[&str]) -> Option<String> {
    for obj in [Some(v), v.get("data"), v.get("room"), v.get("agent")].into_iter().flatten() {
        for key in keys {
            if let Some(s) = obj.get(*key).and_then(Value::as_str).filter(|s| !s.is_empty()) {
                return Some(s.to_owned());
            }
        }
    }
    None
}

/// A count: a number, a numeric string or a list's length; `None` when absent or unreadable.
fn count(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Array(a) => Some(a.len() as u64),
        _ => None,
    }
}

/// `{rooms:[…]}` (or `data.rooms`, or a bare array). Rooms without a name are skipped.
pub fn rooms(body: &Value) -> Vec<Room> {
    let list = body
        .get("rooms")
        .or_else(|| body.get("data").and_then(|d| d.get("rooms").or(Some(d))))
        .unwrap_or(body);
    let Some(items) = list.as_array() else { return Vec::new() };
    items
        .iter()
        .filter_map(|r| {
            let room_name = ["room_name", "roomName", "name"].iter().find_map(|k| r.get(*k)?.as_str().map(str::to_owned))?;
            let get = |keys: &[&str]| keys.iter().find_map(|k| r.get(*k)?.as_str().map(str::to_owned));
            let participants = ["participant_count", "participantCount", "participants"].iter().find_map(|k| r.get(*k));
            Some(Room {
                room_name,
                topic: get(&["topic"]),
                url: get(&["url", "room_url", "roomUrl"]),
                created_at: get(&["created_at", "createdAt"]),
                participant_count: count(participants),
            })
        })
        .collect()
}

/// The liveliest room (most participants; the first listed on a tie, and when the server
/// sends no counts, as the newer generation does).
pub fn liveliest(rooms: &[Room]) -> Option<&Room> {
    rooms.iter().rev().max_by_key(|r| r.participant_count.unwrap_or(0))
}

/// `{room_url, token, room_name}` in either case; the name falls back to the URL's last segment.
pub fn ticket_parts(body: &Value) -> Option<(String, String, String)> {
    let url = text(body, &["room_url", "roomUrl", "url"])?;
    let token = text(body, &["token", "meeting_token", "meetingToken"])?;
    let name = text(body, &["room_name", "roomName", "name"])
        .or_else(|| url.trim_end_matches('/').rsplit('/').next().map(str::to_owned).filter(|s| !s.is_empty()))?;
    Some((url, token, name))
}

/// What a registration answer carries: `{agent:{api_key, agent_id, name, claim_url?}}`.
#[derive(Debug, PartialEq, Eq)]
pub struct Registration {
    /// The new agent's API key.
    pub api_key: String,
    /// The new agent's id.
    pub agent_id: String,
    /// Its name, if echoed.
    pub name: Option<String>,
    /// Where its human claims it, if given.
    pub claim_url: Option<String>,
}

/// `{agent:{api_key, agent_id, name, claim_url?}}` in either case.
pub fn registration(body: &Value) -> Option<Registration> {
    Some(Registration {
        api_key: text(body, &["api_key", "apiKey"])?,
        agent_id: text(body, &["agent_id", "agentId", "id"])?,
        name: text(body, &["name"]),
        claim_url: text(body, &["claim_url", "claimUrl"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rooms_in_both_cases_and_liveliest() {
        let body = json!({"rooms":[
            {"room_name":"a","topic":"t","participant_count":1},
            {"roomName":"b","createdAt":"x","participantCount":"4"},
            {"name":"c","participants":[1,2]},
            {"topic":"nameless"}
        ]});
        let rooms = rooms(&body);
        assert_eq!(rooms.iter().map(|r| (r.room_name.as_str(), r.participant_count)).collect::<Vec<_>>(), [("a", Some(1)), ("b", Some(4)), ("c", Some(2))]);
        assert_eq!(liveliest(&rooms).unwrap().room_name, "b");
        assert_eq!(rooms[1].created_at.as_deref(), Some("x"));
        assert!(super::rooms(&json!({"error":"x"})).is_empty());
    }

    #[test]
    fn tickets_and_registrations() {
        let t = ticket_parts(&json!({"roomUrl":"https://x.daily.co/r-1","token":"t"})).unwrap();
        assert_eq!(t, ("https://x.daily.co/r-1".into(), "t".into(), "r-1".into()));
        assert!(ticket_parts(&json!({"room_url":"u"})).is_none());
        let r = registration(&json!({"success":true,"agent":{"apiKey":"k","agentId":"i","name":"n"}})).unwrap();
        assert_eq!((r.api_key.as_str(), r.agent_id.as_str(), r.name.as_deref(), r.claim_url), ("k", "i", Some("n"), None));
    }

    /// Every documented answer of both generations (PROTOCOL.md §3), exactly as the skill
    /// documents spell them.
    #[test]
    fn both_generations_of_every_answer() {
        // Search: older with topic and count, newer with url and no count.
        let older = rooms(&json!({"rooms":[{"room_name":"web3-builders-001","topic":"web3 builders","created_at":"2026-02-01T00:00:00Z","participant_count":3}]}));
        assert_eq!(older[0].participant_count, Some(3));
        assert_eq!(older[0].topic.as_deref(), Some("web3 builders"));
        let newer = rooms(&json!({"search_term":"web3","count":2,"rooms":[
            {"room_name":"web3-a","url":"https://x.daily.co/web3-a","created_at":"2026-02-01T00:00:00Z"},
            {"room_name":"web3-b","url":"https://x.daily.co/web3-b","created_at":"2026-02-02T00:00:00Z"}]}));
        assert_eq!((newer[0].participant_count, newer[0].url.as_deref()), (None, Some("https://x.daily.co/web3-a")));
        assert_eq!(liveliest(&newer).unwrap().room_name, "web3-a", "no counts: the first listed");
        let json = serde_json::to_value(&newer[0]).unwrap();
        assert!(json.get("participant_count").is_none() && json.get("topic").is_none(), "absent stays absent: {json}");
        // Token: older snake_case, newer camelCase.
        let t = ("https://x.daily.co/r-1".to_owned(), "tok".to_owned(), "r-1".to_owned());
        assert_eq!(ticket_parts(&json!({"room_url":"https://x.daily.co/r-1","token":"tok","room_name":"r-1"})).unwrap(), t);
        assert_eq!(ticket_parts(&json!({"token":"tok","roomName":"r-1","roomUrl":"https://x.daily.co/r-1"})).unwrap(), t);
        // Create: older flat, newer with the room object beside token and room_url.
        let newer_create = json!({"room":{"title":"R one","room_name":"r-1","room_url":"https://x.daily.co/r-1","created_at":"2026-02-03T00:00:00Z"},"token":"tok","room_url":"https://x.daily.co/r-1"});
        assert_eq!(ticket_parts(&newer_create).unwrap(), t);
        // Register: older without, newer with a claim URL.
        let older_reg = registration(&json!({"success":true,"agent":{"api_key":"moltspaces_x","agent_id":"molt-agent-a","name":"N"},"important":"save"})).unwrap();
        assert_eq!(older_reg.claim_url, None);
        let newer_reg = registration(&json!({"success":true,"agent":{"api_key":"moltspaces_x","agent_id":"molt-agent-a","name":"N","claim_url":"https://moltspaces.com/claim/1"},"important":"save"})).unwrap();
        assert_eq!(newer_reg.claim_url.as_deref(), Some("https://moltspaces.com/claim/1"));
    }
}
