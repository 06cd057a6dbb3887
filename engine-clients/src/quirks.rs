//! Kind-specific behaviour of execution clients, in one table.

use engine_types::ClientKind;

/// What is special about a client implementation. Looked up once per session from the
/// detected [`ClientKind`]; handlers consult fields here instead of matching on the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// `engine_getPayload` returns the best block so far *and stops the build*; an immediate
    /// call after forkchoiceUpdated can return an empty or early block (Geth).
    pub get_payload_stops_build: bool,
    /// `engine_getPayload` waits for the build in progress (Reth since 2025).
    pub get_payload_waits_for_build: bool,
    /// `eth_getBlockReceipts` answers `null` for a block hash: ask by number (EthereumJS, and
    /// any client we could not identify).
    pub block_receipts_need_number: bool,
    /// `engine_newPayload` answers SYNCING when processing is merely slow (Nethermind).
    pub new_payload_syncing_when_slow: bool,
    /// Does not refuse a wrong method version with -38005 (EthereumJS): the engine must
    /// choose versions itself (it always does; this records why that matters). EthereumJS
    /// also answers -32602, not -38003, to attributes whose timestamp is not after the head.
    pub accepts_wrong_method_version: bool,
    /// forkchoiceUpdated with attributes on a canonical ancestor may answer VALID without a
    /// payload id (Reth).
    pub may_omit_payload_id_on_ancestor: bool,
    /// Largest withdrawal count the client is known to take in one payload (`None`: no limit).
    pub max_withdrawals: Option<usize>,
}

impl Quirks {
    /// No special behaviour.
    pub const NONE: Self = Self {
        get_payload_stops_build: false,
        get_payload_waits_for_build: false,
        block_receipts_need_number: false,
        new_payload_syncing_when_slow: false,
        accepts_wrong_method_version: false,
        may_omit_payload_id_on_ancestor: false,
        max_withdrawals: None,
    };

    /// The table.
    pub const fn for_kind(kind: ClientKind) -> Self {
        match kind {
            ClientKind::Geth => Self {
                get_payload_stops_build: true,
                ..Self::NONE
            },
            ClientKind::Reth => Self {
                get_payload_waits_for_build: true,
                may_omit_payload_id_on_ancestor: true,
                ..Self::NONE
            },
            ClientKind::Nethermind => Self {
                new_payload_syncing_when_slow: true,
                ..Self::NONE
            },
            ClientKind::EthereumJs => Self {
                block_receipts_need_number: true,
                accepts_wrong_method_version: true,
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
