//! The end-to-end scenario through the real CLI binary over real loopback HTTP:
//! the sandbox server runs in this process, each agent is a `moltlink dm …` process with its
//! own `MOLTBOOK_API_KEY`, and the owners act through the sandbox's admin HTTP routes.

use serde_json::Value;
use std::process::{Command, Output};

struct Cli<'a> {
    base: &'a str,
    key: &'a str,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_base(self.base, args)
    }

    fn run_with_base(&self, base: &str, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_moltlink"))
            .arg("dm")
            .args(args)
            .args(["--json", "--api-base", base])
            .env("MOLTBOOK_API_KEY", self.key)
            .env_remove("MOLTBOOK_API_BASE")
            .output()
            .expect("run moltlink");
        for stream in [&out.stdout, &out.stderr] {
            assert!(!String::from_utf8_lossy(stream).contains(self.key), "the API key was printed");
        }
        out
    }

    /// Events printed as JSON lines; panics unless the command succeeded.
    fn ok(&self, args: &[&str]) -> Vec<Value> {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        lines(&out)
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn result(events: &[Value]) -> &Value {
    &of_type(events, "call_succeeded").last().expect("a call_succeeded event")["body"]
}

fn admin(server: &moltlink_sandbox::Server, route: &str, body: Value) -> Value {
    let url = format!("http://{}{}{route}", server.addr(), moltlink_sandbox::moltbook::ADMIN_PREFIX);
    let mut response = ureq::post(&url).header("content-type", "application/json").send(body.to_string()).expect("admin route answers");
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).expect("admin JSON")
}

#[test]
fn two_agents_consent_talk_escalate_and_block_over_loopback() {
    let server = moltlink_sandbox::serve("127.0.0.1:0", Default::default()).unwrap();
    let base = server.base_urls().moltbook_api;
    let key_a = admin(&server, "/agents", serde_json::json!({"name": "AliceBot", "owner": "alice_x"}))["api_key"].as_str().unwrap().to_owned();
    let key_b = admin(&server, "/agents", serde_json::json!({"name": "BensBot", "owner": "bensmith"}))["api_key"].as_str().unwrap().to_owned();
    let a = Cli { base: &base, key: &key_a };
    let b = Cli { base: &base, key: &key_b };

    // Validation happens before any request.
    assert!(a.fails(&["request", "--to", "BensBot", "too short"]).contains("10-1000"));

    // A asks B's owner (by X handle, with '@').
    let events = a.ok(&["request", "--to-owner", "@bensmith", "Hi! My human wants to ask about the project."]);
    let cid = result(&events)["conversation_id"].as_str().unwrap().to_owned();

    // A's heartbeat sees nothing; B's sees the request and says "ask your human".
    let events = a.ok(&["check"]);
    assert!(of_type(&events, "dm_escalation").is_empty());
    assert_eq!(of_type(&events, "dm_checked")[0]["has_activity"], false);
    let events = b.ok(&["check"]);
    let esc = of_type(&events, "dm_escalation");
    assert_eq!(esc.len(), 1, "{events:?}");
    assert_eq!(esc[0]["reason"], "new_request");
    assert_eq!(esc[0]["conversation_id"], cid.as_str());
    assert_eq!(esc[0]["from"], "AliceBot");
    assert_eq!(esc[0]["text"]["untrusted_text"], "Hi! My human wants to ask about the project.");
    assert!(esc[0]["ask_human"].as_str().unwrap().contains("Ask your human"));

    // Before approval neither side can send.
    let err = a.fails(&["send", &cid, "hello?"]);
    assert!(err.contains("UNKNOWN_CONVERSATION") && err.contains("an unapproved request is not a conversation"), "{err}");
    let err = b.fails(&["send", &cid, "hello?"]);
    assert!(err.contains("ask your human to approve"), "{err}");

    // B's owner approves in the sandbox's dashboard.
    admin(&server, "/approve", serde_json::json!({"conversation_id": cid}));

    // Both exchange messages; B flags one for A's human.
    a.ok(&["send", &cid, "When is the meeting?"]);
    b.ok(&["send", &cid, "Question for your human: is 3pm OK?", "--needs-human"]);
    let events = b.ok(&["check"]);
    assert!(of_type(&events, "dm_escalation").is_empty(), "a routine message is not escalated: {events:?}");
    let events = a.ok(&["check"]);
    let esc = of_type(&events, "dm_escalation");
    assert_eq!(esc.len(), 1, "{events:?}");
    assert_eq!(esc[0]["reason"], "needs_human_input");
    assert_eq!(esc[0]["text"]["untrusted_text"], "Question for your human: is 3pm OK?");
    let stats = admin_stats(&server);
    assert_eq!(stats["read_calls"], 0, "checks never read a conversation");

    // Reading is explicit; the flagged message arrives marked.
    let events = a.ok(&["read", &cid]);
    let messages = of_type(&events, "dm_message");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["needs_human_input"], true);
    assert_eq!(messages[0]["from"], "BensBot");

    // B's owner blocks A: A's next request is refused with Moltbook's error and hint.
    admin(&server, "/block", serde_json::json!({"blocker": "BensBot", "blocked": "AliceBot"}));
    let err = a.fails(&["request", "--to", "BensBot", "Please let us talk again."]);
    assert!(err.contains("HTTP 403") && err.contains("blocked you") && err.contains("hint:"), "{err}");
}

fn admin_stats(server: &moltlink_sandbox::Server) -> Value {
    let url = format!("http://{}{}/stats", server.addr(), moltlink_sandbox::moltbook::ADMIN_PREFIX);
    serde_json::from_str(&ureq::get(&url).call().unwrap().body_mut().read_to_string().unwrap()).unwrap()
}

/// A base URL without `www.` never leaks the key: the bare host is refused before any
/// request, and a redirect (the sandbox's bare-host route answers 301) is reported, not followed.
#[test]
fn a_base_without_www_never_leaks_the_key() {
    let server = moltlink_sandbox::serve("127.0.0.1:0", Default::default()).unwrap();
    let key = server.sandbox().moltbook_add_agent("AliceBot", "alice_x").unwrap();
    let www = server.base_urls().moltbook_api;
    let a = Cli { base: &www, key: &key };

    let out = a.run_with_base("https://moltbook.com/api/v1", &["check"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bare host moltbook.com"));

    let bare = www.replace("/moltbook/api/v1", moltlink_sandbox::moltbook::BARE_PREFIX);
    let before = server.sandbox().moltbook_stats();
    let out = a.run_with_base(&bare, &["check"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("REDIRECT_REFUSED") && err.contains("not followed"), "{err}");
    let after = server.sandbox().moltbook_stats();
    assert_eq!(after.bare_requests, before.bare_requests + 1, "the bare route was asked once");
    assert_eq!(after.requests_with_key, before.requests_with_key, "the redirect target never saw the key");
}
