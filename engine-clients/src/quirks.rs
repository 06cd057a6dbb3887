//! Kind-specific behaviour of execution clients, in one table.

use engine_types::ClientKind;

/// What is special about a client implementation. Looked up once per session from the
/// detected [`ClientKind`]; handlers consult fields here instead of matching on the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quirks {
    /// `engine_getPayload` returns the best block so far *and stops the build*; an immediate
    /// call after forkchoiceUpdated returns the empty first block (Geth). Builds then leave the
    /// client `build_fill_ms` between the two calls (the writer's `build`).
    pub get_payload_stops_build: bool,
    /// `eth_getBlockReceipts` answers `null` for a block hash: ask by number (EthereumJS, and
    /// any client we could not identify).
    pub block_receipts_need_number: bool,
    /// `engine_newPayload` answers SYNCING when processing merely outlasts the client's own
    /// timeout, and keeps processing (Nethermind): the client asks again, a bounded number of
    /// times within the call's deadline, before reporting SYNCING.
    pub new_payload_syncing_when_slow: bool,
    /// The first `engine_newPayload` after the client starts takes seconds (Reth sizes its
    /// cross-block execution cache then): the client builds and sends a throwaway block at
    /// connect, and a first newPayload gets its full deadline, not the slot's.
    pub slow_first_new_payload: bool,
    /// A forkchoiceUpdated whose head is an ancestor of the canonical head is answered VALID
    /// but ignored: the head is not unwound (unless Reth runs with both
    /// `--engine.allow-unwind-canonical-header` and
    /// `--engine.always-process-payload-attributes-on-canonical-head`) and attributes start no
    /// build (unless it runs with the second). A revert checks
    /// the head moved and fails naming the flag; a build on an ancestor fails naming the other.
    pub ignores_forkchoice_to_ancestor: bool,
}

impl Quirks {
    /// No special behaviour.
    pub const NONE: Self = Self {
        get_payload_stops_build: false,
        block_receipts_need_number: false,
        new_payload_syncing_when_slow: false,
        slow_first_new_payload: false,
        ignores_forkchoice_to_ancestor: false,
    };

    /// Why a client with these quirks kept its head on a forkchoiceUpdated to an ancestor, and
    /// what changes it (`""` when the quirks do not explain it), for an error message.
    pub const fn unwind_hint(self) -> &'static str {
        if self.ignores_forkchoice_to_ancestor {
            "; Reth does not unwind its canonical chain to an ancestor unless it runs with both \
             --engine.allow-unwind-canonical-header and \
             --engine.always-process-payload-attributes-on-canonical-head"
        } else {
            ""
        }
    }

    /// Why a client with these quirks started no build on an ancestor of its head, and what
    /// changes it (`""` when the quirks do not explain it).
    pub const fn build_on_ancestor_hint(self) -> &'static str {
        if self.ignores_forkchoice_to_ancestor {
            "; Reth starts no build on an ancestor of its canonical head unless it runs with \
             --engine.always-process-payload-attributes-on-canonical-head"
        } else {
            ""
        }
    }

    /// The table.
    pub const fn for_kind(kind: ClientKind) -> Self {
        match kind {
            ClientKind::Geth => Self {
                get_payload_stops_build: true,
                ..Self::NONE
            },
            ClientKind::Reth => Self {
                slow_first_new_payload: true,
                ignores_forkchoice_to_ancestor: true,
                ..Self::NONE
            },
            ClientKind::Nethermind => Self {
                new_payload_syncing_when_slow: true,
                ..Self::NONE
            },
            ClientKind::EthereumJs => Self {
                block_receipts_need_number: true,
                ..Self::NONE
            },
            // An unidentified client gets the conservative receipt path (by number), which
            // every client serves.
            ClientKind::Unknown => Self {
                block_receipts_need_number: true,
                ..Self::NONE
            },
            ClientKind::Besu | ClientKind::Erigon => Self::NONE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(ClientKind::Geth, true, false, false)]
    #[case(ClientKind::Reth, false, false, false)]
    #[case(ClientKind::Nethermind, false, false, true)]
    #[case(ClientKind::EthereumJs, false, true, false)]
    #[case(ClientKind::Unknown, false, true, false)]
    fn table_rows(
        #[case] kind: ClientKind,
        #[case] stops_build: bool,
        #[case] receipts_by_number: bool,
        #[case] syncing_when_slow: bool,
    ) {
        let q = Quirks::for_kind(kind);
        assert_eq!(q.get_payload_stops_build, stops_build);
        assert_eq!(q.block_receipts_need_number, receipts_by_number);
        assert_eq!(q.new_payload_syncing_when_slow, syncing_when_slow);
    }
}
