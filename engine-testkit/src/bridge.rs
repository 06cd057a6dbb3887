//! The Alys peg-out bridge: its address, runtime code, ABI and signed test calls.
//!
//! [`bridge_runtime_code`] is the runtime bytecode of `contracts/Bridge.sol` (compiled by
//! `contracts/build.mjs`, committed as `contracts/Bridge.runtime.hex`); put it in a real
//! client's genesis at [`BRIDGE_ADDRESS`] with
//! [`GenesisOptions::with_contract`](crate::GenesisOptions::with_contract). The
//! [`MockExecutionLayer`](crate::MockExecutionLayer), which runs no EVM, synthesizes the same
//! log with [`request_peg_out_log`] for calls that [`decode_request_peg_out`] accepts.
//!
//! ```
//! use alloy_primitives::U256;
//! use engine_testkit::{DEV_PRIVATE_KEY, signed_peg_out};
//!
//! // 0.01 BTC: 1 sat = 1e10 wei.
//! let value = U256::from(1_000_000u64) * U256::from(10_000_000_000u64);
//! let (raw, hash) = signed_peg_out(DEV_PRIVATE_KEY, 263_634, 0, b"bcrt1qexample", value)?;
//! assert!(!raw.is_empty() && !hash.is_zero());
//! # Ok::<(), engine_testkit::TxError>(())
//! ```

use alloy_primitives::{Address, B256, Bytes, Log, TxKind, U256, address};
use alloy_sol_types::{SolCall, SolEvent};

use crate::tx::{TxError, signed_eip1559};

/// Where Alys deploys the bridge contract (`0xbBbB…BbB`).
pub const BRIDGE_ADDRESS: Address = address!("bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB");

/// Gas limit of [`signed_peg_out`]: a peg-out with a 34-byte address used 59 412 gas on
/// EthereumJS (most of it the value call that burns to 0x…dEaD), so this leaves ample room.
pub const PEG_OUT_GAS_LIMIT: u64 = 200_000;

/// The ABI of `Bridge.sol`, as Rust types (`requestPegOutCall`, `RequestPegOut`).
mod abi {
    #![allow(missing_docs)]
    alloy_sol_types::sol! {
        /// Burns `msg.value` and asks the federation to pay it to `_bitcoinAddress`.
        function requestPegOut(bytes calldata _bitcoinAddress) external payable;

        /// Emitted by `requestPegOut`: `_value` wei (1 sat = 1e10 wei) from `_evmAddress` to be
        /// paid to `_bitcoinAddress`.
        #[derive(Debug, PartialEq, Eq)]
        event RequestPegOut(address indexed _evmAddress, bytes _bitcoinAddress, uint256 _value);
    }
}

pub use abi::{RequestPegOut, requestPegOutCall};

const RUNTIME_HEX: &str = include_str!("../contracts/Bridge.runtime.hex");

/// Length of `hex` without trailing ASCII whitespace (an editor's final newline).
const fn trimmed_len(hex: &str) -> usize {
    let bytes = hex.as_bytes();
    let mut len = bytes.len();
    while len > 0 && bytes[len - 1].is_ascii_whitespace() {
        len -= 1;
    }
    len
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("contracts/Bridge.runtime.hex holds a non-hex character"),
    }
}

/// Decoded at compile time: a bad hex file is a build error, never a runtime panic.
const RUNTIME_CODE: [u8; trimmed_len(RUNTIME_HEX) / 2] = {
    let hex = RUNTIME_HEX.as_bytes();
    assert!(
        trimmed_len(RUNTIME_HEX).is_multiple_of(2),
        "contracts/Bridge.runtime.hex has an odd number of digits"
    );
    let mut code = [0u8; trimmed_len(RUNTIME_HEX) / 2];
    let mut i = 0;
    while i < code.len() {
        code[i] = (nibble(hex[2 * i]) << 4) | nibble(hex[2 * i + 1]);
        i += 1;
    }
    code
};

/// Runtime (deployed) bytecode of `contracts/Bridge.sol`, for a genesis alloc at
/// [`BRIDGE_ADDRESS`]. Not init code: it cannot be sent in a deployment transaction.
pub fn bridge_runtime_code() -> Bytes {
    Bytes::from_static(&RUNTIME_CODE)
}

/// ABI-encoded call of `requestPegOut(bitcoin_address)`.
pub fn request_peg_out_calldata(bitcoin_address: &[u8]) -> Bytes {
    requestPegOutCall {
        _bitcoinAddress: Bytes::copy_from_slice(bitcoin_address),
    }
    .abi_encode()
    .into()
}

/// A signed EIP-1559 call of `requestPegOut(bitcoin_address)` on [`BRIDGE_ADDRESS`] carrying
/// `value_wei` (1 sat = 1e10 wei; Alys ignores requests under 1 000 000 sat), with gas limit
/// [`PEG_OUT_GAS_LIMIT`]. Returns the raw bytes for `eth_sendRawTransaction` and the hash.
pub fn signed_peg_out(
    private_key_hex: &str,
    chain_id: u64,
    nonce: u64,
    bitcoin_address: &[u8],
    value_wei: U256,
) -> Result<(Bytes, B256), TxError> {
    signed_eip1559(
        private_key_hex,
        chain_id,
        nonce,
        TxKind::Call(BRIDGE_ADDRESS),
        value_wei,
        request_peg_out_calldata(bitcoin_address),
        PEG_OUT_GAS_LIMIT,
    )
}

/// The `_bitcoinAddress` argument of a `requestPegOut` call, or `None` where the compiled
/// contract reverts: calldata shorter than a selector, another selector, or arguments its ABI
/// decoder rejects.
///
/// Mirrors what solc 0.8.28 emits for a `bytes calldata` parameter rather than a strict
/// decoder, so the mock reverts exactly when the contract does: the head must be 32 bytes,
/// the offset and the length must fit 64 bits, the length word must start more than 31 bytes
/// before the end, and the bytes must end within the calldata. Trailing bytes, non-canonical
/// offsets and dirty padding are accepted, as solc accepts them.
pub fn decode_request_peg_out(calldata: &[u8]) -> Option<&[u8]> {
    let (selector, _) = calldata.split_first_chunk::<4>()?;
    if *selector != requestPegOutCall::SELECTOR {
        return None;
    }
    let size = calldata.len() as u128;
    let word = |at: u128| -> Option<u128> {
        // Words are only read where solc's checks put them inside the calldata.
        let at = usize::try_from(at).ok()?;
        let bytes = calldata.get(at..at.checked_add(32)?)?;
        let value = U256::from_be_slice(bytes);
        // solc reverts on offsets and lengths above 2^64 - 1.
        (value <= U256::from(u64::MAX)).then(|| value.to::<u128>())
    };
    if size - 4 < 32 {
        return None;
    }
    let position = 4 + word(4)?;
    if position + 31 >= size {
        return None;
    }
    let length = word(position)?;
    let start = position + 32;
    if start + length > size {
        return None;
    }
    calldata.get(usize::try_from(start).ok()?..usize::try_from(start + length).ok()?)
}

/// The log `Bridge.sol` at `bridge` emits for a peg-out: topics `[RequestPegOut signature,
/// sender left-padded]`, data `abi.encode(bitcoin_address, value_wei)`.
pub fn request_peg_out_log(
    bridge: Address,
    sender: Address,
    bitcoin_address: &[u8],
    value_wei: U256,
) -> Log {
    let event = RequestPegOut {
        _evmAddress: sender,
        _bitcoinAddress: Bytes::copy_from_slice(bitcoin_address),
        _value: value_wei,
    };
    Log {
        address: bridge,
        data: event.encode_log_data(),
    }
}

/// Runtime code of a contract that forwards every call (its calldata and value) to `target`
/// and reverts when that call fails: a peg-out made through another contract (a wallet, a
/// forwarder), so the transaction's `to` is not the bridge although the bridge emits the log.
pub fn forwarder_runtime_code(target: Address) -> Bytes {
    let mut code = vec![
        0x36, 0x60, 0x00, 0x60, 0x00, 0x37, // CALLDATACOPY(0, 0, CALLDATASIZE)
        0x60, 0x00, 0x60, 0x00, // retSize 0, retOffset 0
        0x36, 0x60, 0x00, // argsSize CALLDATASIZE, argsOffset 0
        0x34, // value CALLVALUE
        0x73, // PUSH20 target
    ];
    code.extend_from_slice(target.as_slice());
    code.extend_from_slice(&[
        0x5a, 0xf1, // GAS, CALL
        0x15, 0x60, 0x2a, 0x57, // ISZERO, PUSH1 revert, JUMPI
        0x00, // STOP
        0x5b, 0x60, 0x00, 0x60, 0x00, 0xfd, // JUMPDEST, REVERT(0, 0)
    ]);
    Bytes::from(code)
}

/// Init code whose constructor emits `RequestPegOut(msg.sender, bitcoin_address, value)` and
/// deploys nothing: a contract creation that looks like a peg-out but burnt nothing (the hole
/// in the legacy rule). `bitcoin_address` is at most 64 bytes.
pub fn peg_out_event_init_code(bitcoin_address: &[u8], value: U256) -> anyhow::Result<Bytes> {
    anyhow::ensure!(
        bitcoin_address.len() <= 64,
        "a bitcoin address of {} bytes; at most 64 fit",
        bitcoin_address.len()
    );
    let mut padded = [0u8; 64];
    padded[..bitcoin_address.len()].copy_from_slice(bitcoin_address);
    let mut code = Vec::new();
    let mut mstore_word = |word: &[u8; 32], at: u8| {
        code.push(0x7f); // PUSH32
        code.extend_from_slice(word);
        code.extend_from_slice(&[0x60, at, 0x52]); // PUSH1 at, MSTORE
    };
    let mut word = [0u8; 32];
    word[31] = 0x40; // offset of the bytes
    mstore_word(&word, 0x00);
    mstore_word(&value.to_be_bytes::<32>(), 0x20);
    let mut len = [0u8; 32];
    len[31] = bitcoin_address.len() as u8;
    mstore_word(&len, 0x40);
    let (first, second) = padded.split_at(32);
    mstore_word(first.try_into().unwrap_or(&[0u8; 32]), 0x60);
    mstore_word(second.try_into().unwrap_or(&[0u8; 32]), 0x80);
    code.push(0x33); // CALLER: topic1
    code.push(0x7f); // PUSH32 topic0
    code.extend_from_slice(RequestPegOut::SIGNATURE_HASH.as_slice());
    code.extend_from_slice(&[0x60, 0xa0, 0x60, 0x00, 0xa2, 0x00]); // LOG2(0, 160, t0, t1), STOP
    Ok(Bytes::from(code))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::{path::Path, process::Command};

    use alloy_primitives::{b256, hex};

    use super::*;

    #[test]
    fn runtime_code_decodes_from_the_committed_hex() {
        let code = bridge_runtime_code();
        let hex_file = RUNTIME_HEX.trim_end();
        assert_eq!(code.len() * 2, hex_file.len());
        assert_eq!(hex::encode(&code), hex_file.to_ascii_lowercase());
        // Runtime code (no constructor) starting with the free-memory-pointer setup, with the
        // dispatcher's selector and the event's signature hash in it.
        assert!(code.starts_with(&hex!("6080604052")), "{code}");
        let contains = |needle: &[u8]| code.windows(needle.len()).any(|w| w == needle);
        assert!(contains(&requestPegOutCall::SELECTOR));
        assert!(contains(RequestPegOut::SIGNATURE_HASH.as_slice()));
    }

    #[test]
    fn abi_matches_alys() {
        assert_eq!(requestPegOutCall::SIGNATURE, "requestPegOut(bytes)");
        assert_eq!(requestPegOutCall::SELECTOR, hex!("9911dc74"));
        assert_eq!(
            RequestPegOut::SIGNATURE,
            "RequestPegOut(address,bytes,uint256)"
        );
        assert_eq!(
            RequestPegOut::SIGNATURE_HASH,
            b256!("aa1c6070bc915de33c0fbc36ecf77b1e4fc1ebce832b2da62b6fe25f5a7dd5b0")
        );
    }

    /// The committed hex must be what `build.mjs` makes of `Bridge.sol` now. Skipped (with the
    /// reason printed) where node or solc is missing, except under `CI=true`, where `just setup`
    /// has installed them and a missing compiler is a broken setup.
    #[test]
    fn committed_runtime_hex_equals_a_fresh_compile() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/build.mjs");
        let output = match Command::new("node").arg(&script).arg("--stdout").output() {
            Ok(output) => output,
            Err(e) if !ci => {
                println!("SKIPPED: cannot run node ({e}); install Node.js and run `just setup`");
                return;
            }
            Err(e) => panic!("CI=true but node cannot run: {e}"),
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.code() == Some(3) {
            assert!(!ci, "CI=true but solc is not installed: {stderr}");
            println!("SKIPPED: {stderr}");
            return;
        }
        assert!(output.status.success(), "build.mjs failed: {stderr}");
        let fresh = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            fresh,
            RUNTIME_HEX.trim_end(),
            "contracts/Bridge.runtime.hex is stale: run `node engine-testkit/contracts/build.mjs`"
        );
    }

    #[test]
    fn encoded_calldata_decodes_back() {
        let btc = b"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
        let calldata = request_peg_out_calldata(btc);
        assert_eq!(decode_request_peg_out(&calldata), Some(&btc[..]));
        assert_eq!(
            decode_request_peg_out(&request_peg_out_calldata(b"")),
            Some(&b""[..])
        );
    }

    #[test]
    fn decoder_rejects_what_solc_rejects() {
        let good = request_peg_out_calldata(b"tb1qxyz").to_vec();
        // Too short for a selector, other selector, selector only, head cut short.
        assert_eq!(decode_request_peg_out(&good[..3]), None);
        let mut other = good.clone();
        other[0] ^= 1;
        assert_eq!(decode_request_peg_out(&other), None);
        assert_eq!(decode_request_peg_out(&good[..4]), None);
        assert_eq!(decode_request_peg_out(&good[..35]), None);
        // Offset past the end, offset above 2^64 - 1.
        let mut far = good.clone();
        far[35] = 0xff;
        assert_eq!(decode_request_peg_out(&far), None);
        let mut huge = good.clone();
        huge[4 + 23] = 1;
        assert_eq!(decode_request_peg_out(&huge), None);
        // Length running past the end (the bytes are shorter than the padded word here).
        let mut long = good.clone();
        long[4 + 63] = 33;
        assert_eq!(decode_request_peg_out(&long), None);
        // Cut inside the bytes.
        assert_eq!(decode_request_peg_out(&good[..4 + 64 + 3]), None);
    }

    #[test]
    fn decoder_accepts_what_solc_accepts() {
        let good = request_peg_out_calldata(b"tb1qxyz").to_vec();
        // Unpadded tail: solc only needs the bytes themselves inside the calldata.
        assert_eq!(
            decode_request_peg_out(&good[..4 + 64 + 7]),
            Some(&b"tb1qxyz"[..])
        );
        // Trailing garbage and dirty padding.
        let mut dirty = good.clone();
        *dirty.last_mut().unwrap() = 0xee;
        dirty.extend_from_slice(&[0xab; 5]);
        assert_eq!(decode_request_peg_out(&dirty), Some(&b"tb1qxyz"[..]));
        // A non-canonical offset (0x40, with a gap word) is followed.
        let mut gap = good[..4].to_vec();
        gap.extend_from_slice(&U256::from(64u64).to_be_bytes::<32>());
        gap.extend_from_slice(&[0x77; 32]);
        gap.extend_from_slice(&good[36..]);
        assert_eq!(decode_request_peg_out(&gap), Some(&b"tb1qxyz"[..]));
    }

    #[test]
    fn peg_out_log_round_trips_through_the_event() {
        let sender = Address::repeat_byte(0x42);
        let value = U256::from(2_000_000u64) * U256::from(10_000_000_000u64);
        let log = request_peg_out_log(BRIDGE_ADDRESS, sender, b"bcrt1q", value);
        assert_eq!(log.address, BRIDGE_ADDRESS);
        assert_eq!(log.topics()[0], RequestPegOut::SIGNATURE_HASH);
        assert_eq!(log.topics()[1], sender.into_word());
        let decoded = RequestPegOut::decode_log(&log).unwrap();
        assert_eq!(decoded._evmAddress, sender);
        assert_eq!(decoded._bitcoinAddress.as_ref(), b"bcrt1q");
        assert_eq!(decoded._value, value);
        // (bytes, uint256): offset 0x40, value, length, one padded word.
        assert_eq!(log.data.data.len(), 4 * 32);
    }
}
