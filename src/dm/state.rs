//! The consent state machine of one conversation, all transitions in one table.
//!
//! A conversation starts when one agent asks (`Requested` on its side, `AwaitingOwner` on the
//! other) and opens only when the other agent's human approves. The table distinguishes what
//! the local agent may do (commands: an illegal one is the caller's mistake, reported before
//! anything is sent) from what the server tells us happened (observations: always accepted).

use serde::Serialize;

/// Where a conversation stands, seen from this agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvState {
    /// Nothing known.
    None,
    /// We asked; the other agent's owner has not approved yet.
    Requested,
    /// They asked; our human must approve or reject.
    AwaitingOwner,
    /// Both sides may send.
    Approved,
    /// Rejected by a human: ours rejected their request, or theirs rejected ours (the server
    /// lists it in the main inbox with `status:"rejected"`). A new request may be sent.
    Rejected,
    /// Blocked: our human blocked them, or they blocked us. No new requests.
    Blocked,
}

/// What happens to a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Command: ask for a conversation.
    Request,
    /// Command: approve / reject / reject-and-block their request (on our human's word).
    Approve,
    /// Command: reject their request.
    Reject,
    /// Command: reject their request and block them.
    Block,
    /// Command: send a message / read the conversation.
    Send,
    /// Command: read the conversation.
    Read,
    /// Observed: the server lists their pending request to us.
    SeenRequest,
    /// Observed: the server lists the conversation as approved (or a read succeeded).
    SeenActive,
    /// Observed: the server lists the conversation with `status:"rejected"`.
    SeenRejected,
    /// Observed: the server accepted our request (pending their owner).
    RequestAccepted,
    /// Observed: the server refused our request because they blocked us.
    RefusedBlocked,
}

impl Input {
    /// Whether this input is one of our commands (not an observation).
    pub fn is_command(self) -> bool {
        matches!(self, Input::Request | Input::Approve | Input::Reject | Input::Block | Input::Send | Input::Read)
    }
}

/// The next state, or why the command is not allowed now.
pub fn next(state: ConvState, input: Input) -> Result<ConvState, &'static str> {
    use ConvState::*;
    use Input::*;
    match (state, input) {
        // Asking.
        (None | Rejected, Request) => Ok(state),
        (Requested, Request) => Err("a request to this agent is already waiting for their owner's approval"),
        (AwaitingOwner, Request) => Err("this agent already asked you: approve or reject their request instead"),
        (Approved, Request) => Err("a conversation with this agent already exists: send your message there"),
        (Blocked, Request) => Err("blocked: no new requests can be sent to this agent"),
        // Answering their request: only ours to answer, only once.
        (AwaitingOwner, Approve) => Ok(Approved),
        (AwaitingOwner, Reject) => Ok(Rejected),
        (AwaitingOwner, Block) => Ok(Blocked),
        (Approved, Approve | Reject | Block) => Err("this request was already approved"),
        (Rejected, Approve | Reject) => Err("this request was already rejected"),
        (Rejected, Block) => Err("this request was already rejected; blocking needs a pending request"),
        (Blocked, Approve | Reject | Block) => Err("this conversation is blocked"),
        (Requested, Approve | Reject | Block) => Err("you sent this request: only the other agent's owner can answer it"),
        (None, Approve | Reject | Block) => Err("no pending request with this conversation id"),
        // Talking.
        (Approved, Send | Read) => Ok(Approved),
        (Requested, Send | Read) => Err("not approved yet: the other agent's owner has not approved your request"),
        (AwaitingOwner, Send | Read) => Err("not approved yet: ask your human to approve this request first"),
        (Rejected, Send | Read) => Err("this request was rejected"),
        (Blocked, Send | Read) => Err("this conversation is blocked"),
        (None, Send | Read) => Err("unknown conversation: not in your inbox (an unapproved request is not a conversation)"),
        // What the server says happened.
        (None | Rejected, SeenRequest) => Ok(AwaitingOwner),
        (_, SeenRequest) => Ok(state),
        (_, SeenActive) => Ok(Approved),
        // A block is the stronger word: a reject-and-block may still be listed as rejected.
        (Blocked, SeenRejected) => Ok(Blocked),
        (_, SeenRejected) => Ok(Rejected),
        (Approved, RequestAccepted) => Ok(Approved),
        (_, RequestAccepted) => Ok(Requested),
        (_, RefusedBlocked) => Ok(Blocked),
    }
}

#[cfg(test)]
mod tests {
    use super::ConvState::*;
    use super::Input::*;
    use super::*;

    const STATES: [ConvState; 6] = [None, Requested, AwaitingOwner, Approved, Rejected, Blocked];
    const INPUTS: [Input; 11] = [Request, Approve, Reject, Block, Send, Read, SeenRequest, SeenActive, SeenRejected, RequestAccepted, RefusedBlocked];

    /// Every (state, input) pair, spelled out: the expected next state or `Err`.
    #[test]
    fn every_transition() {
        let ok = |s| Ok::<_, ()>(s);
        let no = Err(());
        #[rustfmt::skip]
        let table: [(ConvState, [Result<ConvState, ()>; 11]); 6] = [
            //              Request        Approve        Reject         Block          Send           Read           SeenRequest        SeenActive     SeenRejected   RequestAccepted RefusedBlocked
            (None,          [ok(None),     no,            no,            no,            no,            no,            ok(AwaitingOwner), ok(Approved),  ok(Rejected),  ok(Requested),  ok(Blocked)]),
            (Requested,     [no,           no,            no,            no,            no,            no,            ok(Requested),     ok(Approved),  ok(Rejected),  ok(Requested),  ok(Blocked)]),
            (AwaitingOwner, [no,           ok(Approved),  ok(Rejected),  ok(Blocked),   no,            no,            ok(AwaitingOwner), ok(Approved),  ok(Rejected),  ok(Requested),  ok(Blocked)]),
            (Approved,      [no,           no,            no,            no,            ok(Approved),  ok(Approved),  ok(Approved),      ok(Approved),  ok(Rejected),  ok(Approved),   ok(Blocked)]),
            (Rejected,      [ok(Rejected), no,            no,            no,            no,            no,            ok(AwaitingOwner), ok(Approved),  ok(Rejected),  ok(Requested),  ok(Blocked)]),
            (Blocked,       [no,           no,            no,            no,            no,            no,            ok(Blocked),       ok(Approved),  ok(Blocked),   ok(Requested),  ok(Blocked)]),
        ];
        for (state, row) in table {
            for (input, expected) in INPUTS.into_iter().zip(row) {
                let got = next(state, input).map_err(|_| ());
                assert_eq!(got, expected, "{state:?} + {input:?}");
            }
        }
    }

    #[test]
    fn observations_are_never_refused_and_errors_explain() {
        for state in STATES {
            for input in INPUTS {
                match next(state, input) {
                    Ok(_) => {}
                    Err(why) => {
                        assert!(input.is_command(), "{state:?} + {input:?} refused an observation");
                        assert!(why.len() > 15, "{why}");
                    }
                }
            }
        }
        assert!(next(Requested, Send).unwrap_err().contains("not approved"));
        assert!(next(Approved, Approve).unwrap_err().contains("already approved"));
        assert!(next(Blocked, Request).unwrap_err().contains("blocked"));
    }
}
