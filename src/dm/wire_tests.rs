//! The DM client fed the answers PROTOCOL.md §2 records, one response at a time: statuses in
//! the main inbox, counts as strings, the retired requests route, our own messages told apart by
//! `sender.name`, and 5xx text withheld.

use super::*;
use crate::io::{CallEvent, Output, SansIo};
use serde_json::{Value, json};

const T0: u64 = 1_790_000_000_000;

fn client(agent_name: Option<&str>) -> DmClient {
    DmClient::new(DmConfig {
        api_base: Some("http://127.0.0.1/moltbook/api/v1".into()),
        api_key: Secret::new("moltbook_sk_wire".into()),
        seed: [7; 32],
        heartbeat: HeartbeatPolicy::default(),
        agent_name: agent_name.map(str::to_owned),
    })
    .unwrap()
}

/// Serve every request the client makes with `serve(path)` until it waits; returns the paths
/// asked and the events.
fn exchange(c: &mut DmClient, serve: &mut dyn FnMut(&str) -> (u16, Vec<u8>)) -> (Vec<String>, Vec<DmEvent>) {
    let (mut paths, mut events) = (vec![], vec![]);
    loop {
        match c.poll_output() {
            Output::Http { id, request, .. } => {
                let path = request.uri().path().trim_start_matches("/moltbook/api/v1").to_owned();
                let (status, body) = serve(&path);
                paths.push(path);
                c.handle_response(id, http::Response::builder().status(status).body(body).unwrap(), T0).unwrap();
            }
            Output::Event(e) => events.push(e),
            _ => return (paths, events),
        }
    }
}

/// Answer the one request due with `status` and `body`; returns its path and the events.
fn answer(c: &mut DmClient, status: u16, body: &[u8]) -> (String, Vec<DmEvent>) {
    let (paths, events) = exchange(c, &mut |_| (status, body.to_vec()));
    assert_eq!(paths.len(), 1, "one request: {paths:?}");
    (paths[0].clone(), events)
}

fn answer_json(c: &mut DmClient, body: Value) -> (String, Vec<DmEvent>) {
    answer(c, 200, &serde_json::to_vec(&body).unwrap())
}

/// The captured main inbox with one item per status.
fn listing(items: Vec<Value>) -> Value {
    json!({"success": true, "inbox": "main", "total_unread": "00", "conversations": {"count": items.len().to_string(), "items": items}})
}

fn item(id: &str, with: &str, status: Option<Value>, you_initiated: bool) -> Value {
    let mut v = json!({
        "conversation_id": id,
        "with_agent": {"id": format!("agent-{with}"), "name": with, "description": "d", "avatarUrl": null, "karma": 1,
            "followerCount": 0, "followingCount": 0, "isClaimed": true, "isActive": true,
            "createdAt": "2026-05-01T00:00:00.000Z", "lastActive": "2026-05-20T00:00:00.000Z", "deletedAt": null},
        "you_initiated": you_initiated,
    });
    if let Some(s) = status {
        v["status"] = s;
    }
    v
}

/// The issue's bug: every conversation in the main listing became `approved`. Now each item's
/// `status` decides; a status this client does not know changes nothing.
#[test]
fn the_listing_status_decides_the_state() {
    let mut c = client(None);
    c.command(DmCommand::Conversations {}, T0).unwrap();
    let (_, events) = answer_json(&mut c, listing(vec![
        item("rej", "Rejecter", Some(json!("rejected")), true),
        item("rej2", "Rejected", Some(json!("rejected")), false),
        item("pend-out", "Asked", Some(json!("pending")), true),
        item("pend-in", "Asker", Some(json!("pending")), false),
        item("ok", "Friend", Some(json!("approved")), false),
        item("odd", "Oddity", Some(json!("archived")), true),
        item("null", "Nullity", Some(Value::Null), true),
        item("doc", "Documented", None, true),
    ]));
    let states: Vec<_> = ["rej", "rej2", "pend-out", "pend-in", "ok", "odd", "null", "doc"].iter().map(|id| c.state_of(id)).collect();
    let expected = {
        use ConvState::*;
        [Rejected, Rejected, Requested, AwaitingOwner, Approved, None, None, Approved]
    };
    assert_eq!(states, expected);
    let changed = events.iter().find_map(|e| match e {
        DmEvent::DmStateChanged { conversation_id, status, to, .. } if conversation_id == "rej" => Some((status.clone(), *to)),
        _ => None,
    });
    assert_eq!(changed, Some((Some("rejected".into()), ConvState::Rejected)), "the server's word is named");

    // An approved conversation later listed as rejected is rejected; a blocked one stays blocked.
    c.command(DmCommand::Conversations {}, T0).unwrap();
    answer_json(&mut c, listing(vec![item("ok", "Friend", Some(json!("REJECTED")), false)]));
    assert_eq!(c.state_of("ok"), ConvState::Rejected);

    // Sending in the rejected conversation is refused before anything is sent.
    let err = c.command(DmCommand::Send { conversation_id: "rej".into(), message: "hello?".into(), needs_human_input: false }, T0).unwrap_err();
    assert!(err.message.contains("rejected"), "{err}");
    // Sending in one whose status is unknown: the client looks again, then says why it refuses.
    c.command(DmCommand::Send { conversation_id: "odd".into(), message: "hello?".into(), needs_human_input: false }, T0).unwrap();
    let check = json!({"success": true, "has_activity": false, "requests": {"count": "0", "items": []}});
    let inbox = listing(vec![item("odd", "Oddity", Some(json!("archived")), true)]);
    let (paths, events) = exchange(&mut c, &mut |path| {
        let body = if path.ends_with("/check") { &check } else { &inbox };
        (200, serde_json::to_vec(body).unwrap())
    });
    assert_eq!(paths, ["/agents/dm/check", "/agents/dm/conversations"], "pending requests come from the check");
    let failed = events.iter().find_map(|e| match e {
        DmEvent::Call(CallEvent::CallFailed { error, .. }) => Some(error.clone()),
        _ => None,
    });
    let failed = failed.expect("refused");
    assert_eq!(failed.code.as_deref(), Some("UNKNOWN_CONVERSATION"));
    assert!(failed.message.contains("\"archived\""), "{failed}");
}

/// The captured scenario end to end: a rejected conversation, listed in the main inbox, is
/// never read as approved, on either side.
#[test]
fn a_human_rejection_listed_in_the_inbox_is_not_an_approval() {
    let sandbox = std::rc::Rc::new(moltlink_sandbox::Sandbox::default());
    let key_a = sandbox.moltbook_add_agent("AliceBot", "alice_x").unwrap();
    let key_b = sandbox.moltbook_add_agent("BensBot", "bensmith").unwrap();
    let serve = |c: &mut DmClient, now: u64| {
        let mut events = vec![];
        loop {
            match c.poll_output() {
                Output::Http { id, request, .. } => c.handle_response(id, sandbox.handle(*request, now), now).unwrap(),
                Output::Event(e) => events.push(e),
                _ => return events,
            }
        }
    };
    let open = |key: &str| {
        DmClient::new(DmConfig {
            api_base: Some("http://127.0.0.1/moltbook/api/v1".into()),
            api_key: Secret::new(key.into()),
            seed: [1; 32],
            heartbeat: HeartbeatPolicy::default(),
            agent_name: None,
        })
        .unwrap()
    };
    let (mut a, mut b) = (open(&key_a), open(&key_b));
    a.command(DmCommand::Request { to: Some("BensBot".into()), to_owner: None, message: "Hello from Alice, may we chat?".into() }, T0).unwrap();
    let events = serve(&mut a, T0);
    let cid = events.iter().find_map(|e| match e {
        DmEvent::Call(CallEvent::CallSucceeded { body, .. }) => parse::conversation_id(body),
        _ => None,
    }).unwrap();
    // B's human rejects in the dashboard; both sides list their inbox.
    sandbox.moltbook_owner_decide(&cid, false, false).unwrap();
    for c in [&mut a, &mut b] {
        c.command(DmCommand::Conversations {}, T0).unwrap();
        let events = serve(c, T0);
        let body = events.iter().find_map(|e| match e {
            DmEvent::Call(CallEvent::CallSucceeded { body, .. }) => Some(body.clone()),
            _ => None,
        }).unwrap();
        assert_eq!(body["conversations"]["items"][0]["status"], "rejected", "the captured server lists it");
        assert_eq!(c.state_of(&cid), ConvState::Rejected, "{body}");
    }
    assert!(a.command(DmCommand::Send { conversation_id: cid.clone(), message: "hi".into(), needs_human_input: false }, T0).is_err());
    // A may ask again (a rejection is not a block).
    a.command(DmCommand::Request { to: Some("BensBot".into()), to_owner: None, message: "Please reconsider, it matters".into() }, T0).unwrap();
    serve(&mut a, T0);
    assert_eq!(a.state_of(&cid), ConvState::Requested);
}

/// Counts arrive as strings (`"0"`, `"00"`) and parse; the event keeps them as sent and leaves
/// out what the server did not send.
#[test]
fn string_counts_parse_and_are_kept_as_sent() {
    let mut c = client(None);
    c.command(DmCommand::Check {}, T0).unwrap();
    let captured = json!({
        "success": true, "has_activity": true, "summary": "1 pending request, 3 unread messages",
        "requests": {"count": "1", "items": [{"conversation_id": "c1", "from": {"name": "BensBot", "owner": {"x_handle": "bensmith", "x_name": "Ben"}}, "message_preview": "Hi! may we chat?", "created_at": "2026-05-28T00:00:00Z"}]},
        "messages": {"total_unread": "03", "conversations_with_unread": 1, "latest": []},
        "tip": "…",
    });
    let (_, events) = answer_json(&mut c, captured);
    let checked = events.iter().find(|e| matches!(e, DmEvent::DmChecked { .. })).unwrap();
    let DmEvent::DmChecked { pending_requests, total_unread, conversations_with_unread, summary, counts_as_sent, .. } = checked else { unreachable!() };
    assert_eq!((*pending_requests, *total_unread, *conversations_with_unread), (1, 3, Some(1)));
    assert_eq!(summary.as_deref(), Some("1 pending request, 3 unread messages"));
    assert_eq!((counts_as_sent.requests_count.clone(), counts_as_sent.total_unread.clone()), (Some(json!("1")), Some(json!("03"))));
    assert_eq!(counts_as_sent.conversations_with_unread, Some(json!(1)));
    assert_eq!(c.state_of("c1"), ConvState::AwaitingOwner);
    let escalation = serde_json::to_value(events.iter().find(|e| matches!(e, DmEvent::DmEscalation { .. })).unwrap()).unwrap();
    assert_eq!((escalation["from"].as_str(), escalation["from_owner"].as_str()), (Some("BensBot"), Some("bensmith")));

    // "00", and a check without the optional fields: nothing invented.
    c.command(DmCommand::Check {}, T0).unwrap();
    let (_, events) = answer_json(&mut c, json!({"success": true, "requests": {"count": "0"}, "messages": {"total_unread": "00"}}));
    let json = serde_json::to_value(events.iter().find(|e| matches!(e, DmEvent::DmChecked { .. })).unwrap()).unwrap();
    assert_eq!((json["pending_requests"].as_u64(), json["total_unread"].as_u64()), (Some(0), Some(0)));
    assert_eq!(json["counts_as_sent"], json!({"requests_count": "0", "total_unread": "00"}));
    for absent in ["summary", "conversations_with_unread"] {
        assert!(json.get(absent).is_none(), "{absent} was not sent: {json}");
    }
    assert_eq!(json["has_activity"], false);
}

/// No `is_from_me`: our own messages are those whose `sender.name` is our name.
#[test]
fn our_messages_are_known_by_sender_name() {
    let read = json!({"success": true, "messages": [
        {"id": "m1", "sender": {"name": "AliceBot"}, "content": "from me", "created_at": "2026-05-28T00:00:00Z"},
        {"id": "m2", "sender": {"name": "BensBot"}, "content": "from Ben", "needs_human_input": false, "created_at": "2026-05-28T00:01:00Z"},
        {"id": "m3", "sender": {"name": "alicebot"}, "content": "from me, case folded"},
    ]});
    let delivered = |c: &mut DmClient| -> Vec<(String, Value)> {
        c.command(DmCommand::Read { conversation_id: "c1".into() }, T0).unwrap();
        let (_, events) = answer_json(c, read.clone());
        events.iter().filter_map(|e| match e {
            DmEvent::DmMessage { text, .. } => Some((text.untrusted_text.clone(), serde_json::to_value(e).unwrap())),
            _ => None,
        }).collect()
    };
    // Known name; the conversation known as approved (so the read is sent at once).
    let mut c = client(Some("AliceBot"));
    c.command(DmCommand::Conversations {}, T0).unwrap();
    answer_json(&mut c, listing(vec![item("c1", "BensBot", Some(json!("approved")), true)]));
    let got = delivered(&mut c);
    assert_eq!(got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["from Ben"]);
    assert_eq!(got[0].1["from"], "BensBot");
    // Unknown name: the peer from the listing tells us apart (and teaches us our name).
    let mut c = client(None);
    c.command(DmCommand::Conversations {}, T0).unwrap();
    answer_json(&mut c, listing(vec![item("c1", "BensBot", Some(json!("approved")), true)]));
    assert_eq!(delivered(&mut c).iter().map(|g| g.0.as_str()).collect::<Vec<_>>(), ["from Ben"]);
    // A message without an id or a time: those keys are absent from the event, not null.
    let mut c = client(Some("AliceBot"));
    c.command(DmCommand::Conversations {}, T0).unwrap();
    answer_json(&mut c, listing(vec![item("c1", "BensBot", Some(json!("approved")), true)]));
    c.command(DmCommand::Read { conversation_id: "c1".into() }, T0).unwrap();
    let (_, events) = answer_json(&mut c, json!({"messages": [{"sender": {"name": "BensBot"}, "content": "bare"}]}));
    let json = serde_json::to_value(events.iter().find(|e| matches!(e, DmEvent::DmMessage { .. })).unwrap()).unwrap();
    assert!(json.get("message_id").is_none() && json.get("created_at").is_none(), "{json}");
}

/// The retired route's framework 404 is reported with its message; 5xx text (raw SQL here)
/// never reaches an event, only status and code.
#[test]
fn framework_404_and_withheld_5xx_text() {
    let mut c = client(None);
    c.command(DmCommand::Requests {}, T0).unwrap();
    let body = br#"{"statusCode":404,"message":"Cannot GET /api/v1/agents/dm/requests","timestamp":"2026-05-28T10:00:00.000Z","path":"/api/v1/agents/dm/requests","error":"Not Found"}"#;
    let (path, events) = answer(&mut c, 404, body);
    assert_eq!(path, "/agents/dm/requests");
    assert!(matches!(&events[..], [DmEvent::Call(CallEvent::CallFailed { error, .. })] if error.status == 404 && error.message == "Cannot GET /api/v1/agents/dm/requests"), "{events:?}");

    let sql = br#"{"success":false,"error":"duplicate key value violates unique constraint: INSERT INTO dm_messages (conversation_id, body) VALUES ($1, $2)","code":"DB_ERROR"}"#;
    c.command(DmCommand::Check {}, T0).unwrap();
    let (_, events) = answer(&mut c, 500, sql);
    let DmEvent::Call(CallEvent::CallFailed { error, .. }) = &events[0] else { panic!("{events:?}") };
    assert_eq!((error.status, error.code.as_deref()), (500, Some("DB_ERROR")));
    assert!(!error.message.contains("INSERT") && error.message.contains("withheld"), "{error}");
    c.start_heartbeat(T0);
    let (_, events) = exchange(&mut c, &mut |_| (503, sql.to_vec()));
    let json = serde_json::to_string(&events).unwrap();
    assert!(json.contains("dm_heartbeat_failed") && !json.contains("INSERT"), "{json}");
}

/// The documented requests route, while it existed: incoming requests await our human, outgoing
/// ones are ours.
#[test]
fn the_requests_route_shape_while_it_existed() {
    let mut c = client(None);
    c.command(DmCommand::Requests {}, T0).unwrap();
    let (_, events) = answer_json(&mut c, json!({
        "success": true, "inbox": "other",
        "incoming": {"count": "1", "description": "…", "requests": [{"conversation_id": "in1", "from": {"name": "Asker"}, "message_preview": "May we talk?"}]},
        "outgoing": {"count": "1", "description": "…", "requests": [{"conversation_id": "out1", "to": {"name": "Target"}}]},
    }));
    assert_eq!((c.state_of("in1"), c.state_of("out1")), (ConvState::AwaitingOwner, ConvState::Requested));
    assert!(events.iter().any(|e| matches!(e, DmEvent::DmEscalation { reason: EscalationReason::NewRequest, .. })));
}
