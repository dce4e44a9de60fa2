//! `history {room, after?, before?, limit?, cursor?}`: one page of the room's kept messages, to a
//! member of the room the room policy lets read them.

use async_trait::async_trait;

use super::{Action, ActionSpec};
use crate::protocol::spec::field::ROOM;
use crate::protocol::spec::{FieldSpec, Kind};
use crate::protocol::{ErrorCode, Frame, ParseError, cursor};
use crate::room::RoomName;
use crate::service::{Cx, Outcome, Step};
use crate::stream::{HISTORY_PAGE_MAX, ReadFrom, Seq};

const AFTER: FieldSpec = FieldSpec::optional(
    "after",
    Kind::Integer,
    "pages go up from the first message after this seq (default: from the oldest kept)",
);
const BEFORE: FieldSpec = FieldSpec::optional(
    "before",
    Kind::Integer,
    "pages go down from the last message before this seq; with after, pages go up from after and stop before it",
);
const LIMIT: FieldSpec = FieldSpec::optional(
    "limit",
    Kind::Integer,
    "messages in a page, 1 to 100 (default 50); a page also stops at the frame limit",
);
const CURSOR: FieldSpec = FieldSpec::optional(
    "cursor",
    Kind::Cursor,
    "the cursor of the previous history frame, for the next page (after and before are then ignored)",
);

/// Messages in a page when the request says nothing.
const DEFAULT_LIMIT: u64 = 50;

pub(super) const SPEC: ActionSpec = ActionSpec {
    name: "history",
    doc: "one page of the room's kept messages in seq order, to a member of the room (not_member) the room policy lets read it (forbidden); history_off when the service keeps none",
    fields: &[ROOM, AFTER, BEFORE, LIMIT, CURSOR],
    answer: crate::protocol::frames::HISTORY.name,
    metered: true,
    session: super::SessionNeed::Live,
    parse: |f| {
        let room = f.room(&ROOM)?;
        let limit = f.optional_integer(&LIMIT, HISTORY_PAGE_MAX as u64)?;
        if limit == Some(0) {
            return Err(ParseError::new(
                ErrorCode::InvalidField,
                "limit must be from 1 to 100",
            ));
        }
        let span = match f.optional_cursor(&CURSOR, &room)? {
            Some(position) => Span::from_position(&position).ok_or_else(|| {
                ParseError::new(
                    ErrorCode::InvalidField,
                    "cursor: not one this room's history frame could have sent",
                )
            })?,
            None => match (
                f.optional_integer(&AFTER, Seq::MAX)?,
                f.optional_integer(&BEFORE, Seq::MAX)?,
            ) {
                (Some(after), until) => Span {
                    from: ReadFrom::After(after),
                    until,
                },
                (None, Some(before)) => Span {
                    from: ReadFrom::Before(before),
                    until: None,
                },
                (None, None) => Span {
                    from: ReadFrom::Oldest,
                    until: None,
                },
            },
        };
        Ok(Box::new(History {
            room,
            span,
            limit: limit.unwrap_or(DEFAULT_LIMIT) as usize,
        }))
    },
};

/// Which part of the stream a request reads: where it starts, and, going up, the `seq` it stops
/// before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub from: ReadFrom,
    pub until: Option<Seq>,
}

impl Span {
    /// A cursor's position: `a{seq}` (upward after it), `a{seq}-{until}` (and stopping before
    /// `until`), `b{seq}` (downward before it).
    fn position(self) -> Option<String> {
        match (self.from, self.until) {
            (ReadFrom::After(seq), None) => Some(format!("a{seq}")),
            (ReadFrom::After(seq), Some(until)) => Some(format!("a{seq}-{until}")),
            (ReadFrom::Before(seq), _) => Some(format!("b{seq}")),
            (ReadFrom::Oldest, _) => None,
        }
    }

    fn from_position(position: &str) -> Option<Self> {
        let (direction, rest) = position.split_at_checked(1)?;
        match direction {
            "a" => {
                let (seq, until) = match rest.split_once('-') {
                    Some((seq, until)) => (seq, Some(until.parse().ok()?)),
                    None => (rest, None),
                };
                Some(Self {
                    from: ReadFrom::After(seq.parse().ok()?),
                    until,
                })
            }
            "b" => Some(Self {
                from: ReadFrom::Before(rest.parse().ok()?),
                until: None,
            }),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct History {
    pub room: RoomName,
    pub span: Span,
    pub limit: usize,
}

#[async_trait]
impl Action for History {
    /// The `history` frame is the answer (it carries the `requestId`), so no `ack` follows.
    async fn run(self: Box<Self>, cx: &Cx<'_>) -> Step<Outcome> {
        let History { room, span, limit } = *self;
        let log = cx.history_log(&room)?;
        cx.require_member(&room).await?;
        let page = cx
            .history_page(log, &room, span.from, span.until, limit)
            .await?;
        let next = page
            .next
            .and_then(|from| {
                Span {
                    from,
                    until: span.until,
                }
                .position()
            })
            .map(|position| cursor::encode(&room, &position));
        let frame = Frame::History {
            room: &room,
            messages: &page.messages,
            cursor: next.as_deref(),
            request_id: cx.request_id,
        };
        cx.reply(&frame).await;
        Ok(Outcome::Answered)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
