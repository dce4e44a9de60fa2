//! Cursors: where a paged answer (`members`) continues, bound to the room that produced it. A
//! cursor is opaque to clients; this one is the room and the position in hex, so one of another
//! room, or a string no room produced, is refused with `invalid_field` rather than answered with
//! whatever page it happens to point at.

use crate::room::RoomName;

/// The cursor for continuing after `position` in `room`.
pub fn encode(room: &RoomName, position: &str) -> String {
    let text = format!("{room}\n{position}");
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The position `cursor` continues after, if `room` could have produced it.
pub fn decode(room: &RoomName, cursor: &str) -> Option<String> {
    if !cursor.len().is_multiple_of(2) || !cursor.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Vec<u8> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16).ok())
        .collect::<Option<_>>()?;
    let text = String::from_utf8(bytes).ok()?;
    let (from_room, position) = text.split_once('\n')?;
    (from_room == room.as_str()).then(|| position.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::room;

    #[test]
    fn a_cursor_reads_back_in_its_room_and_nowhere_else() {
        let cursor = encode(&room("lobby"), "L0SM9cOFvHcCIhw=");
        assert_eq!(
            decode(&room("lobby"), &cursor).as_deref(),
            Some("L0SM9cOFvHcCIhw=")
        );
        assert_eq!(decode(&room("lobby2"), &cursor), None);
        for garbage in ["garbage!", "abc", "zz", "", "6c6f626279"] {
            assert_eq!(decode(&room("lobby"), garbage), None, "{garbage}");
        }
    }
}
