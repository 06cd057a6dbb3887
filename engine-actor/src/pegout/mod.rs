//! Peg-outs: the bridge contract's `RequestPegOut` logs in every committed block, scanned until
//! each block has been read (a failed receipts fetch is retried), kept in a [`PegOutLog`], and
//! delivered to subscribers who can resume from a block number ([`PegOutEvents`]).
//!
//! | file | what |
//! |---|---|
//! | `decode.rs` | [`PegOutRequested`], [`peg_outs_in_receipts`] |
//! | `log.rs` | [`PegOutLog`]: blocks still to scan, and the scanned blocks' peg-outs |
//! | `events.rs` | [`PegOutEvents`]: a subscription that misses nothing |

mod decode;
mod events;
mod log;

pub use decode::{
    DEFAULT_BRIDGE_ADDRESS, PegOutRequested, PegOutRule, PegOutRules, RequestPegOut,
    peg_outs_by_rule, peg_outs_in_receipts,
};
pub use events::PegOutEvents;
pub(crate) use log::PegOutLog;
