//! A client's byte stream as the server reads it: 4lw detection on the first 4 bytes,
//! then the handshake frame, then request frames until the bytes run out or a frame is
//! bad. Nothing may panic, and every frame that decodes must re-encode to a frame that
//! decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rookery_wire::{
    ConnectRequest, Record, decode_request, decode_request_header, four_letter_word, split_frame,
};

/// Small enough that the fuzzer reaches the "frame too large" path often.
const MAX_FRAME: usize = 4096;

fuzz_target!(|data: &[u8]| {
    if let Some(first4) = data.first_chunk::<4>() {
        if four_letter_word(*first4).is_some() {
            return;
        }
    }
    let mut rest = data;
    let mut first = true;
    while let Ok(Some((payload, used))) = split_frame(rest, MAX_FRAME) {
        assert!(used == payload.len() + 4 && used <= rest.len());
        rest = &rest[used..];
        if first {
            first = false;
            if let Ok(req) = ConnectRequest::from_bytes(payload) {
                assert_eq!(
                    ConnectRequest::from_bytes(&req.to_bytes()).as_ref(),
                    Ok(&req)
                );
            }
            continue;
        }
        let _ = decode_request_header(payload);
        if let Ok(req) = decode_request(payload) {
            assert_eq!(decode_request(&req.encode()).as_ref(), Ok(&req));
        }
    }
});
