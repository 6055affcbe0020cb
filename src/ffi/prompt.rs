//! `ml_prompt_*`: the C ABI of [`crate::gateway::prompt`], the one framing of other agents'
//! words for an agent (and the splitting and decision on its answers). Stateless: no handle.
//! The conventions of `ffi/mod.rs` apply (codes, NULL checks, panic boundary); strings come
//! back through the caller's buffer like every other string (`buf`, `cap`, `*needed`).
#![allow(clippy::missing_safety_doc)]

use super::boundary::{copy_out, enter, opt_str_arg, str_arg, write_out};
use crate::error::Error;
use crate::gateway::prompt::{self, Inbound};
use serde::Deserialize;
use std::ffi::c_char;

/// The JSON form of [`Inbound`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundJson {
    channel: String,
    #[serde(default)]
    dm: bool,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    content: String,
    #[serde(default)]
    late: bool,
}

/// The agent turn for one message from another agent: who and where, then the remote text
/// (and display name) fenced and marked untrusted. `message_json` is
/// `{"channel":"…","dm":false,"username":"…"|null,"display_name":"…"|null,"content":"…","late":false}`
/// (`dm`, `username`, `display_name`, `late` optional). Same buffer rules as `ml_chats_output_meta`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_prompt_message(message_json: *const c_char, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    enter("ml_prompt_message", || {
        let json = unsafe { str_arg(message_json, "message_json")? };
        let m: InboundJson = serde_json::from_str(json).map_err(|e| Error::invalid_argument(format!("message_json: {e}")))?;
        let text = prompt::message_prompt(&Inbound {
            channel: &m.channel,
            dm: m.dm,
            username: m.username.as_deref(),
            display_name: m.display_name.as_deref(),
            content: &m.content,
            late: m.late,
        });
        unsafe { copy_out(text.as_bytes(), buf, cap, needed) }
    })
}

/// The agent turn asking for a decision on friend request `request_id` from `from` (NULL:
/// unknown). Decide with `ml_prompt_decision` on the reply. Same buffer rules as above.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_prompt_friend(request_id: *const c_char, from: *const c_char, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    enter("ml_prompt_friend", || {
        let request_id = unsafe { str_arg(request_id, "request_id")? };
        let from = unsafe { opt_str_arg(from, "from")? };
        unsafe { copy_out(prompt::friend_prompt(request_id, from).as_bytes(), buf, cap, needed) }
    })
}

/// The agent's decision on a friend request from its reply's first word: `*decision` = 1
/// accept, 0 reject, -1 undecided (leave the request pending).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_prompt_decision(reply: *const c_char, decision: *mut i32) -> i32 {
    enter("ml_prompt_decision", || {
        let reply = unsafe { str_arg(reply, "reply")? };
        let value = match prompt::decision(reply) {
            Some(true) => 1,
            Some(false) => 0,
            None => -1,
        };
        unsafe { write_out(decision, value, "decision") }
    })
}

/// What to post for the agent's `reply`, as a JSON array of strings: `[]` for an empty reply
/// or `NO_REPLY`, else the trimmed reply split into parts of at most 4000 UTF-16 units
/// (preferring line, then word breaks). Same buffer rules as above.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_prompt_reply_parts(reply: *const c_char, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    enter("ml_prompt_reply_parts", || {
        let reply = unsafe { str_arg(reply, "reply")? };
        parts_out(&prompt::reply_parts(reply), buf, cap, needed)
    })
}

/// `text` split into parts of at most `max` UTF-16 units (a character wider than `max` goes
/// alone, breaking at a newline or space in the later half of a part), as a JSON array of strings;
/// whitespace at each break is trimmed and empty parts are dropped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_prompt_split(text: *const c_char, max: usize, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    enter("ml_prompt_split", || {
        let text = unsafe { str_arg(text, "text")? };
        parts_out(&prompt::split_message(text, max), buf, cap, needed)
    })
}

/// `name` (NULL: unknown) reduced to the characters usernames use, for labels a host shows
/// outside the fence. Same buffer rules as above.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ml_prompt_plain_name(name: *const c_char, buf: *mut u8, cap: usize, needed: *mut usize) -> i32 {
    enter("ml_prompt_plain_name", || {
        let name = unsafe { opt_str_arg(name, "name")? };
        unsafe { copy_out(prompt::plain_name(name).as_bytes(), buf, cap, needed) }
    })
}

fn parts_out(parts: &[String], buf: *mut u8, cap: usize, needed: *mut usize) -> crate::error::Result<()> {
    let json = serde_json::to_string(parts).map_err(|e| Error::invalid_argument(e.to_string()))?;
    unsafe { copy_out(json.as_bytes(), buf, cap, needed) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::prompt::fixture;
    use std::ffi::CString;
    use std::ptr::{null, null_mut};

    /// Call a string-returning export twice: size query, then into an exact buffer.
    fn string(call: impl Fn(*mut u8, usize, *mut usize) -> i32) -> String {
        let mut needed = 0;
        let rc = call(null_mut(), 0, &mut needed);
        assert!(rc == super::super::ML_BUFFER_TOO_SMALL || (rc == 0 && needed == 0), "size query: {rc}");
        let mut buf = vec![0u8; needed + 1];
        assert_eq!(call(buf.as_mut_ptr(), buf.len(), &mut needed), 0);
        assert_eq!(buf[needed], 0, "NUL-terminated");
        String::from_utf8(buf[..needed].to_vec()).unwrap()
    }

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    /// The C ABI produces the committed golden outputs byte for byte.
    #[test]
    fn c_abi_matches_the_golden_file() {
        let cases = fixture::cases();
        let golden = fixture::golden(
            &cases,
            |m| {
                let mut m = m.clone();
                let obj = m.as_object_mut().unwrap();
                obj.remove("name");
                obj.remove("forbidden_outside");
                let json = c(&m.to_string());
                string(|b, cap, n| unsafe { ml_prompt_message(json.as_ptr(), b, cap, n) })
            },
            |id, from| {
                let (id, from) = (c(id), from.map(c));
                string(|b, cap, n| unsafe { ml_prompt_friend(id.as_ptr(), from.as_ref().map_or(null(), |f| f.as_ptr()), b, cap, n) })
            },
            |reply| {
                let reply = c(reply);
                let mut d = 7;
                assert_eq!(unsafe { ml_prompt_decision(reply.as_ptr(), &mut d) }, 0);
                match d {
                    1 => Some(true),
                    0 => Some(false),
                    _ => None,
                }
            },
            |reply| {
                let reply = c(reply);
                serde_json::from_str(&string(|b, cap, n| unsafe { ml_prompt_reply_parts(reply.as_ptr(), b, cap, n) })).unwrap()
            },
        );
        assert!(golden == fixture::expected(), "the C ABI differs from host-tests/bridge-prompt/expected.json");
    }

    #[test]
    fn bad_arguments_are_codes() {
        let mut needed = 0;
        let mut d = 0;
        assert_eq!(unsafe { ml_prompt_message(null(), null_mut(), 0, &mut needed) }, super::super::ML_NULL_POINTER);
        let bad = c(r#"{"channel":"c","content":"x","extra":1}"#);
        assert_eq!(unsafe { ml_prompt_message(bad.as_ptr(), null_mut(), 0, &mut needed) }, super::super::ML_INVALID_ARGUMENT);
        assert_eq!(unsafe { ml_prompt_decision(null(), &mut d) }, super::super::ML_NULL_POINTER);
        let yes = c("yes");
        assert_eq!(unsafe { ml_prompt_decision(yes.as_ptr(), null_mut()) }, super::super::ML_NULL_POINTER);
        let text = c("😀😀");
        let parts = string(|b, cap, n| unsafe { ml_prompt_split(text.as_ptr(), 1, b, cap, n) });
        assert_eq!(parts, r#"["😀","😀"]"#);
    }
}
