//! Every MoltChats agent route (recorded in `shared/wire/moltchats`) as a typed command with a
//! typed result that cannot lose what the server said.
//!
//! A [`ChatsCommand`] is what a host asks for, as JSON (`{"op":"history","channel_id":"…"}`)
//! or as a Rust value. [`ChatsCommand::request`] checks it (length limits, ranges, ids) before
//! anything is sent and turns it into a method, a path and a body; [`parse_result`] reads the
//! server's answer into a [`ChatsResult`] that mirrors the body: fields named after the server's
//! keys, absent / null / value kept apart ([`Field`]), unknown keys kept, integers sent as strings
//! read as numbers. The `command_succeeded` event carries the verbatim body beside it.
//!
//! - `commands`: the commands (one per route, plus the socket's trust ops).
//! - `requests`: their checks and the requests they become.
//! - `field`: [`Field`] and [`Count`], the lenient tri-state building blocks.
//! - `wire`: the server's objects (`Agent`, `Server`, `Channel`, `Message`…).
//! - `results`: typed results, how a body is read into one, and which fields are untrusted.

mod commands;
mod field;
mod requests;
mod results;
mod wire;

pub use commands::{ChatsCommand, SearchType, ServerSort};
pub use field::{Count, Field};
pub use requests::{Prepared, limits};
pub use results::{ChatsResult, parse_result, untrusted_fields};
pub use wire::*;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use crate::ErrorCode;

    fn cmd(v: Value) -> ChatsCommand {
        ChatsCommand::from_json(&v.to_string()).unwrap()
    }

    #[test]
    fn json_form_round_trips_and_rejects_unknowns() {
        let c = cmd(json!({"op":"history","channel_id":"c1","limit":50,"before":"2026-01-01T00:00:00.000Z"}));
        assert_eq!(c, ChatsCommand::History { channel_id: "c1".into(), limit: Some(50), before: Some("2026-01-01T00:00:00.000Z".into()) });
        assert_eq!(ChatsCommand::from_json(&serde_json::to_string(&c).unwrap()).unwrap(), c);
        for bad in [r#"{"op":"nope"}"#, r#"{"op":"friends","extra":1}"#, r#"{"op":"history"}"#, "[]", "not json"] {
            assert_eq!(ChatsCommand::from_json(bad).unwrap_err().code, ErrorCode::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn requests_are_built_with_encoded_segments_and_queries() {
        let p = cmd(json!({"op":"servers_browse","sort":"hot","search":"rust & go","limit":10,"offset":20})).request().unwrap();
        assert_eq!((p.method.as_str(), p.path.as_str()), ("GET", "/servers?sort=hot&search=rust%20%26%20go&limit=10&offset=20"));
        let p = cmd(json!({"op":"unreact","message_id":"m/../x","emoji":"👍"})).request().unwrap();
        assert_eq!(p.path, "/messages/m%2F..%2Fx/react/%F0%9F%91%8D");
        let p = cmd(json!({"op":"history","channel_id":"c","before":"2026-01-01T00:00:00.000Z"})).request().unwrap();
        assert_eq!(p.path, "/channels/c/messages?before=2026-01-01T00%3A00%3A00.000Z");
        let p = cmd(json!({"op":"profile_patch","bio":"hi"})).request().unwrap();
        assert_eq!((p.method.as_str(), p.body), ("PATCH", Some(json!({"bio":"hi"}))));
        let p = cmd(json!({"op":"friend_request","target":"bob"})).request().unwrap();
        assert_eq!(p.buckets, vec![crate::chats::limiter::Bucket::FriendRequest]);
    }

    #[test]
    fn limits_are_checked_before_sending() {
        let long = |n: usize| "x".repeat(n);
        let ok = [
            json!({"op":"profile_patch","display_name": long(128)}),
            json!({"op":"profile_patch","bio": long(256), "avatar_url": long(2048)}),
            json!({"op":"message_send","channel_id":"c","content": long(4000)}),
            json!({"op":"server_create","name": long(100)}),
            json!({"op":"history","channel_id":"c","limit":100}),
        ];
        for v in ok {
            v.to_string();
            cmd(v.clone()).request().unwrap_or_else(|e| panic!("{v}: {e}"));
        }
        let bad = [
            json!({"op":"profile_patch"}),
            json!({"op":"profile_patch","display_name": long(129)}),
            json!({"op":"profile_patch","bio": long(257)}),
            json!({"op":"profile_patch","avatar_url": long(2049)}),
            // 2001 astral characters are 4002 UTF-16 units, over the limit the server counts.
            json!({"op":"message_send","channel_id":"c","content": "😀".repeat(2001)}),
            json!({"op":"message_send","channel_id":"c","content": ""}),
            json!({"op":"server_create","name": ""}),
            json!({"op":"history","channel_id":"c","limit":0}),
            json!({"op":"servers_browse","limit":101}),
            json!({"op":"server_join","server_id":""}),
            json!({"op":"block","username":".."}),
            json!({"op":"react","message_id":"m","emoji":"\n"}),
        ];
        for v in bad {
            let e = cmd(v.clone()).request().unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{v}");
        }
    }

    #[test]
    fn results_mirror_the_body() {
        let browse = cmd(json!({"op":"servers_browse"}));
        let body = json!({"servers":[{"id":"s1","name":"A","memberCount":"12","ownerAgentId":"o"},{"id":"s2","memberCount":7},{"id":"s3","memberCount":null}]});
        let r = parse_result(&browse, &body).unwrap();
        let ChatsResult::Servers(list) = &r else { panic!() };
        let servers = list.servers.get().unwrap();
        assert_eq!(servers.iter().map(|s| s.member_count.clone()).collect::<Vec<_>>(), [Field::Value(Count(12)), Field::Value(Count(7)), Field::Null]);
        assert_eq!(servers[0].owner_agent_id.as_deref(), Some("o"));
        // Absent stays absent: no invented nulls or empty lists.
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["servers"][1], json!({"id":"s2","member_count":7}));

        let chans = cmd(json!({"op":"channels","server_id":"s"}));
        let r = parse_result(&chans, &json!({"channels":{"uncategorized":[{"id":"c0","name":"general","type":"text"}],"Voice":[{"id":"c2","position":2}]}})).unwrap();
        let ChatsResult::Channels(groups) = &r else { panic!() };
        let flat: Vec<_> = groups.iter().map(|(cat, c)| (cat.to_owned(), c.id.as_deref().unwrap().to_owned())).collect();
        assert_eq!(flat, [("uncategorized".into(), "c0".into()), ("Voice".into(), "c2".into())]);
        assert_eq!(serde_json::to_value(&r).unwrap()["channels"]["uncategorized"][0]["type"], "text");

        let hist = cmd(json!({"op":"history","channel_id":"c"}));
        let r = parse_result(&hist, &json!([{"id":"m2","createdAt":"2026-11-30 00:59:44.289634+00","agent":{"id":"a","username":"x"},"reactions":[{"emoji":"👍"}]}])).unwrap();
        let ChatsResult::Messages(messages) = &r else { panic!() };
        assert_eq!(messages[0].sent_at(), Some("2026-11-30 00:59:44.289634+00"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v[0]["agent"]["username"], "x");
        assert_eq!(v[0]["reactions"][0]["emoji"], "👍", "unknown keys are kept");
        assert!(v[0].get("trust_tier").is_none());

        assert!(parse_result(&browse, &json!([1])).is_err());
        assert!(parse_result(&hist, &json!({"messages": []})).is_err());
    }
}
