//! Composition of clients: a parent that drives children (the bridge drives a chats client and
//! a gateway client) gives every child output an id from its own counter and routes the
//! inputs for that id back to the child. No child needs to know about the others, and no
//! id ranges are reserved.

use super::Output;
use std::collections::BTreeMap;

/// The parent's ids for its children's requests, tickets and connections. `K` names a child.
#[derive(Debug)]
pub struct Relabel<K> {
    /// parent id → (child, child id)
    ids: BTreeMap<u64, (K, u64)>,
}

impl<K> Default for Relabel<K> {
    fn default() -> Self {
        Self { ids: BTreeMap::new() }
    }
}

impl<K: Copy + PartialEq> Relabel<K> {
    /// The child's output with the parent's ids (`fresh` hands out the parent's next id).
    /// A send or close on a connection the parent no longer knows keeps the child's id.
    pub fn outgoing<E>(&mut self, child: K, output: Output<E>, fresh: impl FnOnce() -> u64) -> Output<E> {
        match output {
            Output::Http { id, request, stream } => Output::Http { id: self.assign(child, id, fresh), request, stream },
            Output::Persist { ticket, bytes } => Output::Persist { ticket: self.assign(child, ticket, fresh), bytes },
            Output::WsOpen { conn, url } => Output::WsOpen { conn: self.assign(child, conn, fresh), url },
            Output::WsSend { conn, text } => Output::WsSend { conn: self.parent_of(child, conn).unwrap_or(conn), text },
            Output::WsClose { conn, code, reason } => {
                // No input follows a close the client asked for.
                let parent = self.parent_of(child, conn).unwrap_or(conn);
                self.ids.remove(&parent);
                Output::WsClose { conn: parent, code, reason }
            }
            other => other,
        }
    }

    /// Which child an input for `id` belongs to, and its id there (the mapping stays: use it
    /// for body chunks and WebSocket frames).
    pub fn route(&self, id: u64) -> Option<(K, u64)> {
        self.ids.get(&id).copied()
    }

    /// As [`Self::route`], for the last input `id` will see (a response, an ack, a close).
    pub fn finish(&mut self, id: u64) -> Option<(K, u64)> {
        self.ids.remove(&id)
    }

    /// Ids still mapped (requests in flight, open connections): stays small.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no ids are mapped.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn assign(&mut self, child: K, id: u64, fresh: impl FnOnce() -> u64) -> u64 {
        let parent = fresh();
        self.ids.insert(parent, (child, id));
        parent
    }

    fn parent_of(&self, child: K, id: u64) -> Option<u64> {
        self.ids.iter().find(|(_, (k, c))| *k == child && *c == id).map(|(p, _)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_ids_never_collide_and_route_back() {
        let mut relabel = Relabel::default();
        let mut next = 0u64;
        let mut fresh = || {
            next += 1;
            next
        };
        let open = |conn| Output::<()>::WsOpen { conn, url: String::from("ws://x").into() };
        let a = relabel.outgoing('a', open(1), &mut fresh);
        let b = relabel.outgoing('b', open(1), &mut fresh);
        let (Output::WsOpen { conn: pa, .. }, Output::WsOpen { conn: pb, .. }) = (a, b) else { panic!("opens") };
        assert_ne!(pa, pb);
        assert_eq!(relabel.route(pa), Some(('a', 1)));
        assert_eq!(relabel.route(pb), Some(('b', 1)));
        let send = relabel.outgoing('b', Output::<()>::WsSend { conn: 1, text: "hi".into() }, &mut fresh);
        assert!(matches!(send, Output::WsSend { conn, .. } if conn == pb));
        let close = relabel.outgoing('a', Output::<()>::WsClose { conn: 1, code: 1000, reason: String::new() }, &mut fresh);
        assert!(matches!(close, Output::WsClose { conn, .. } if conn == pa));
        assert_eq!(relabel.route(pa), None, "a closed connection is forgotten");
        assert_eq!(relabel.finish(pb), Some(('b', 1)));
        assert!(relabel.is_empty());
    }
}
