//! Test hooks (cargo feature `test-hooks`): make a child panic in its handler, or kill it
//! mid-handler. Not part of the production API.

use ractor::ActorCell;

use super::ChildKind;
use crate::{engine::EngineMsg, poller::TickMsg, session::SessionMsg, writer::WriterMsg};

/// How to break a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sabotage {
    /// A message that panics in the handler (processed after the messages before it).
    Panic,
    /// ractor's kill signal: the handler running now is dropped.
    Kill,
}

pub(crate) fn sabotage(cell: &ActorCell, kind: ChildKind, how: Sabotage) {
    if how == Sabotage::Kill {
        cell.kill();
        return;
    }
    let _ = match kind {
        ChildKind::Engine => cell.send_message(EngineMsg::Crash).map_err(drop),
        ChildKind::Writer => cell.send_message(WriterMsg::Crash).map_err(drop),
        ChildKind::Session(_) => cell.send_message(SessionMsg::Crash).map_err(drop),
        ChildKind::HealthPoller | ChildKind::CacheJanitor => {
            cell.send_message(TickMsg::Crash).map_err(drop)
        }
    };
}
