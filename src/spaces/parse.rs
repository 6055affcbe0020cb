//! Lenient readers of Moltspaces responses: snake_case and camelCase, optional `data`/`room`
//! wrappers, counts as numbers, strings or participant lists.

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

fn count(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)).unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        Some(Value::Array(a)) => a.len() as u64,
        _ => 0,
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
                created_at: get(&["created_at", "createdAt"]),
                participant_count: count(participants),
            })
        })
        .collect()
}

/// The liveliest room (most participants; the first listed on a tie).
pub fn liveliest(rooms: &[Room]) -> Option<&Room> {
    rooms.iter().rev().max_by_key(|r| r.participant_count)
}

/// `{room_url, token, room_name}` in either case; the name falls back to the URL's last segment.
pub fn ticket_parts(body: &Value) -> Option<(String, String, String)> {
    let url = text(body, &["room_url", "roomUrl", "url"])?;
    let token = text(body, &["token", "meeting_token", "meetingToken"])?;
    let name = text(body, &["room_name", "roomName", "name"])
        .or_else(|| url.trim_end_matches('/').rsplit('/').next().map(str::to_owned).filter(|s| !s.is_empty()))?;
    Some((url, token, name))
}

/// `{agent:{api_key, agent_id, name}}` in either case.
pub fn registration(body: &Value) -> Option<(String, String, Option<String>)> {
    let key = text(body, &["api_key", "apiKey"])?;
    let id = text(body, &["agent_id", "agentId", "id"])?;
    Some((key, id, text(body, &["name"])))
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
        assert_eq!(rooms.iter().map(|r| (r.room_name.as_str(), r.participant_count)).collect::<Vec<_>>(), [("a", 1), ("b", 4), ("c", 2)]);
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
        assert_eq!(r, ("k".into(), "i".into(), Some("n".into())));
    }
}
