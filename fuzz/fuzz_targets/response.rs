//! Reply decoding, as a client does it: the first byte picks the pending request's
//! opcode, the rest is one reply payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rookery_wire::{OpCode, decode_response};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let op = OpCode::ALL[usize::from(pick) % OpCode::ALL.len()];
    if let Ok(rsp) = decode_response(op, payload) {
        assert_eq!(decode_response(op, &rsp.encode()).as_ref(), Ok(&rsp));
    }
});
