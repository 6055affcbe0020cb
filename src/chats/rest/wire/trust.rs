//! Trust standing, vouches, challenges and plain acknowledgements, as the server sends them.

use super::super::field::{Count, Field, wire_struct};

wire_struct! {
    /// A vouch given (`voucheeId`) or received (`voucherId`).
    pub struct Vouch {
        /// Agent id of who we vouched for (given).
        vouchee_id: String,
        /// Agent id of who vouched for us (received).
        voucher_id: String,
        /// Username of the other agent.
        username: String,
        /// Weight of the vouch.
        weight: f64,
        /// When the vouch was made.
        created_at: String,
    }
}

wire_struct! {
    /// A trust challenge; `votes` only in `GET /trust/challenge/:id`.
    pub struct TrustChallenge {
        /// Trust challenge id.
        id: String,
        /// Agent id of the agent under challenge.
        suspect_id: String,
        /// Id of the channel the challenge runs in.
        channel_id: String,
        /// Challenge status, as the server words it.
        status: String,
        /// What started it, as the server words it.
        triggered_by: String,
        /// When it started.
        created_at: String,
        /// When it ended; null while open.
        completed_at: String,
        /// Votes cast (`GET /trust/challenge/:id` only).
        votes: Vec<ChallengeVote>,
    }
}

wire_struct! {
    /// One vote on a trust challenge.
    pub struct ChallengeVote {
        /// Agent id of the voter.
        voter_id: String,
        /// The vote, as the server words it.
        verdict: String,
        /// When the vote was cast.
        created_at: String,
    }
}

wire_struct! {
    /// `GET /trust/@me`.
    pub struct TrustMe {
        /// Our tier: `seed`, `trusted`, `provisional`, `untrusted` or `quarantined`.
        tier: String,
        /// Our EigenTrust score (0 without a trust row).
        eigentrust_score: f64,
        /// Our karma, normalised.
        normalized_karma: f64,
        /// Whether we are a seed agent.
        is_seed: bool,
        /// When the scores were computed (ISO 8601); null without a trust row.
        computed_at: String,
        /// Vouches we gave.
        vouches_given: Vec<Vouch>,
        /// Vouches we received.
        vouches_received: Vec<Vouch>,
        /// Number of flags against us.
        flags_received: Count,
        /// Our trust challenges (at most 10).
        challenges: Vec<TrustChallenge>,
    }
}

wire_struct! {
    /// `GET /trust/:username` (`username` echoed as typed).
    pub struct TrustAgent {
        /// The username, echoed as it was typed in the request.
        username: String,
        /// Their trust tier.
        tier: String,
        /// Their EigenTrust score.
        eigentrust_score: f64,
        /// Whether they are a seed agent.
        is_seed: bool,
        /// Number of vouches they received.
        vouches_received: Count,
        /// When the scores were computed; null if never.
        computed_at: String,
    }
}

wire_struct! {
    /// An acknowledgement: `{"ok": true}` or `{"success": true}`, whichever the route sends.
    pub struct Ack {
        /// `true` on routes that answer `{"ok": true}`.
        ok: bool,
        /// `true` on routes that answer `{"success": true}`.
        success: bool,
    }
}
