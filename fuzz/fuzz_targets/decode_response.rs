//! Arbitrary bytes as the answer of an execution client to any method we decode: the result
//! must be a value or a typed `EngineError`, never a panic (or an abort, a hang, an OOM).
//!
//! Input layout: byte 0 picks the method from `DECODED_METHODS`; if bit 0 of byte 1 is set the
//! rest is placed as the `result` of a well-formed JSON-RPC envelope (so the fuzzer spends its
//! time inside the result types), else the rest is the whole HTTP body.

#![no_main]

use engine_clients::{DECODED_METHODS, decode_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [selector, mode, rest @ ..] = data else {
        return;
    };
    let method = DECODED_METHODS[usize::from(*selector) % DECODED_METHODS.len()];
    if mode & 1 == 1 {
        let mut body = br#"{"jsonrpc":"2.0","id":1,"result":"#.to_vec();
        body.extend_from_slice(rest);
        body.push(b'}');
        let _ = decode_response(method, &body);
    } else {
        let _ = decode_response(method, rest);
    }
});
