//! The room policy a fresh deployment runs with: private inboxes, granted team rooms, the rest
//! open.

use domain::{RoomAccess, RoomName, RoomPolicy, Sender};

/// - A room without a `:` is open to every connection.
/// - `user:...` is a principal's private inbox ([`RoomName::inbox_of`]: `user:{principal}`, or
///   `user:x.{hash}` for a principal that is not a room name): only that principal's own
///   connections may enter and speak there (a backend can still publish to it).
/// - Any other `namespace:name` room is private: a connection needs a grant covering it, from its
///   token's `rooms` claim (`team-42:*`, or an exact name).
/// - A connection without a principal (authentication off) is under the open policy: with no
///   identity there is nobody to tell apart.
///
/// Joining and publishing follow the same rule; a fork that wants read-only rooms tells them apart
/// by `RoomAccess`.
pub struct DefaultRoomPolicy;

impl RoomPolicy for DefaultRoomPolicy {
    fn allows(&self, sender: &Sender, room: &RoomName, _access: RoomAccess) -> bool {
        let Some(principal) = &sender.principal else {
            return true;
        };
        if room.is_inbox() {
            return *room == RoomName::inbox_of(principal);
        }
        !room.as_str().contains(':') || sender.grants.cover(room)
    }
}

#[cfg(test)]
mod tests {
    use domain::{ConnectionId, Principal, RoomGrants};

    use super::*;

    fn sender(principal: Option<&str>, grants: &str) -> Sender {
        Sender::new(
            ConnectionId::parse("c").unwrap(),
            principal.map(|p| Principal::parse(p).unwrap()),
        )
        .with_grants(RoomGrants::decode(grants).unwrap())
    }

    fn allows(sender: &Sender, room: &str) -> bool {
        DefaultRoomPolicy.allows(sender, &RoomName::parse(room).unwrap(), RoomAccess::Join)
    }

    #[test]
    fn open_rooms_are_for_everyone_and_inboxes_for_their_owner_only() {
        let alice = sender(Some("alice"), "");
        let bob = sender(Some("bob"), "");
        assert!(allows(&alice, "lobby"));
        assert!(allows(&alice, "user:alice"));
        assert!(!allows(&bob, "user:alice"));
        assert!(!allows(&bob, "user:alice2"));
    }

    #[test]
    fn namespaced_rooms_need_a_grant_that_covers_them() {
        let member = sender(Some("alice"), "team-42:*");
        let outsider = sender(Some("bob"), "team-7:*");
        assert!(allows(&member, "team-42:general"));
        assert!(!allows(&outsider, "team-42:general"));
        assert!(!allows(&sender(Some("carol"), ""), "team-42:general"));
    }

    #[test]
    fn a_principal_that_is_no_room_name_enters_its_hashed_inbox_and_nobody_else_does() {
        let auth0 = sender(Some("auth0|64b1f0c2e4a9"), "");
        let mail = sender(Some("alice@example.com"), "user:*");
        let inbox = RoomName::inbox_of(&Principal::parse("auth0|64b1f0c2e4a9").unwrap());
        assert!(DefaultRoomPolicy.allows(&auth0, &inbox, RoomAccess::Join));
        assert!(!DefaultRoomPolicy.allows(&mail, &inbox, RoomAccess::Join));
    }

    #[test]
    fn a_grant_cannot_open_someone_elses_inbox() {
        assert!(!allows(&sender(Some("bob"), "user:*"), "user:alice"));
    }

    #[test]
    fn an_anonymous_connection_is_under_the_open_policy() {
        let anonymous = sender(None, "");
        assert!(allows(&anonymous, "team-42:general"));
        assert!(allows(&anonymous, "user:alice"));
    }
}
