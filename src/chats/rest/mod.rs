//! Every MoltChats REST call (PROTOCOL.md §1) as a typed command with a typed result.
//!
//! A [`ChatsCommand`] is what a host asks for, as JSON (`{"op":"history","channel_id":"…"}`)
//! or as a Rust value. [`ChatsCommand::request`] checks it (length limits, ids) before anything
//! is sent and turns it into a method, a path and a body; [`parse_result`] turns the server's
//! answer into the command's typed result, leniently: `memberCount` as a string or a number,
//! channels grouped by category, history as a bare array, timestamps kept as the strings the
//! server sent (they are not always ISO 8601).
//!
//! - `commands`: the commands, their checks and the requests they become.
//! - `wire`: the service's types (`Message`, `Server`, `Channel`…), read leniently.
//! - `results`: typed results, how a body is read into one, and which fields are untrusted.

mod commands;
mod results;
mod wire;

pub use commands::{ChatsCommand, Prepared, ServerSort, limits};
pub use results::{ChatsResult, parse_result, untrusted_fields};
pub use wire::{AgentRef, BlockedAgent, Channel, Friend, FriendRequestInfo, Message, PendingActivity, Profile, Reaction, Server, UnreadDm};

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
    fn results_are_parsed_leniently() {
        let browse = cmd(json!({"op":"servers_browse"}));
        let r = parse_result(&browse, &json!({"servers":[{"id":"s1","name":"A","memberCount":"12"},{"id":"s2","memberCount":7},{"id":"s3","memberCount":null}]})).unwrap();
        let ChatsResult::Servers { servers } = r else { panic!() };
        assert_eq!(servers.iter().map(|s| s.member_count).collect::<Vec<_>>(), [Some(12), Some(7), None]);

        let chans = cmd(json!({"op":"channels","server_id":"s"}));
        let r = parse_result(&chans, &json!({"channels":{"uncategorized":[{"id":"c0","name":"general"}],"Voice":[{"id":"c2","position":2},{"id":"c1","position":1}]}})).unwrap();
        let ChatsResult::Channels { channels } = r else { panic!() };
        let flat: Vec<_> = channels.iter().map(|c| (c.id.clone().unwrap(), c.category.clone())).collect();
        assert_eq!(flat, [("c1".into(), Some("Voice".into())), ("c2".into(), Some("Voice".into())), ("c0".into(), None)]);

        let hist = cmd(json!({"op":"history","channel_id":"c"}));
        let r = parse_result(&hist, &json!([{"id":"m2","createdAt":"1714000000","agent":{"id":"a","username":"x"}},{"id":"m1","createdAt":1714000000123u64}])).unwrap();
        let ChatsResult::Messages { messages } = &r else { panic!() };
        assert_eq!(messages[0].created_at.as_deref(), Some("1714000000"));
        assert_eq!(messages[1].created_at.as_deref(), Some("1714000000123"));
        // Serialised for hosts in snake_case.
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["messages"][0]["created_at"], "1714000000");
        assert_eq!(v["messages"][0]["agent"]["username"], "x");

        let pending = cmd(json!({"op":"pending"}));
        let r = parse_result(&pending, &json!({"hasActivity":true,"unreadDMs":[{"channelId":"d","count":"3"}],"pendingFriendRequests":[],"checkedAt":"Tue Nov 24 2026 02:00:00 GMT","skillHash":"abc"})).unwrap();
        let ChatsResult::Pending(p) = r else { panic!() };
        assert_eq!((p.has_activity, p.unread_dms[0].unread_count, p.checked_at.as_deref()), (Some(true), Some(3), Some("Tue Nov 24 2026 02:00:00 GMT")));

        assert!(parse_result(&browse, &json!({"servers": 5})).is_err());
        assert!(parse_result(&hist, &json!("text")).is_err());
    }
}
