//! Hostile input: arbitrary and mutated bytes go through every decoder. None may panic,
//! and anything that does decode must re-encode to something that decodes to the same
//! value (decoding is lenient only where ZooKeeper is: booleans, multi header fields).

mod common;

use common::*;
use proptest::prelude::*;
use rookery_wire::proto::*;
use rookery_wire::{
    DEFAULT_MAX_FRAME, OpCode, Record, decode_request, decode_request_header, decode_response,
    four_letter_word, split_frame,
};

fn request_is_stable(bytes: &[u8]) -> Result<(), TestCaseError> {
    let _ = decode_request_header(bytes);
    if let Ok(req) = decode_request(bytes) {
        let again = decode_request(&req.encode());
        prop_assert_eq!(again.as_ref(), Ok(&req));
    }
    Ok(())
}

fn responses_are_stable(bytes: &[u8]) -> Result<(), TestCaseError> {
    for op in OpCode::ALL {
        if let Ok(rsp) = decode_response(*op, bytes) {
            let again = decode_response(*op, &rsp.encode());
            prop_assert_eq!(again.as_ref(), Ok(&rsp));
        }
    }
    Ok(())
}

fn record_is_stable<R: Record + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    if let Ok(v) = R::from_bytes(bytes) {
        let again = R::from_bytes(&v.to_bytes());
        prop_assert_eq!(again.as_ref(), Ok(&v));
    }
    Ok(())
}

fn everything(bytes: &[u8]) -> Result<(), TestCaseError> {
    request_is_stable(bytes)?;
    responses_are_stable(bytes)?;
    record_is_stable::<ConnectRequest>(bytes)?;
    record_is_stable::<ConnectResponse>(bytes)?;
    record_is_stable::<MultiRequest>(bytes)?;
    record_is_stable::<MultiResponse>(bytes)?;
    record_is_stable::<SetWatches2>(bytes)?;
    record_is_stable::<CreateTtlRequest>(bytes)?;
    record_is_stable::<GetAclResponse>(bytes)?;
    record_is_stable::<WhoAmIResponse>(bytes)?;
    for max in [0, 8, 64, DEFAULT_MAX_FRAME, usize::MAX] {
        if let Ok(Some((payload, used))) = split_frame(bytes, max) {
            prop_assert!(payload.len() <= max);
            prop_assert_eq!(used, payload.len() + 4);
            prop_assert!(used <= bytes.len());
        }
    }
    if let Some(first4) = bytes.first_chunk::<4>() {
        let _ = four_letter_word(*first4);
    }
    Ok(())
}

/// Arbitrary bytes mostly fail at the header; these start from valid frames and break
/// them, so the decoders' deeper paths (multi loops, vectors, strings) see bad input.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for &(at, v) in edits {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = v;
        }
    }
    let keep = bytes.len().saturating_sub(cut % 3);
    bytes.truncate(keep);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        everything(&bytes)?;
    }

    #[test]
    fn arbitrary_bytes_after_a_plausible_header_never_panic(
        xid in prop_oneof![Just(1i32), Just(-1), Just(-2), Just(-4), Just(-8)],
        op in proptest::sample::select(OpCode::ALL.to_vec()),
        tail in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let mut req = xid.to_be_bytes().to_vec();
        req.extend(op.as_i32().to_be_bytes());
        req.extend(&tail);
        everything(&req)?;
        let mut rsp = xid.to_be_bytes().to_vec();
        rsp.extend(7i64.to_be_bytes());
        rsp.extend(0i32.to_be_bytes());
        rsp.extend(&tail);
        everything(&rsp)?;
    }

    #[test]
    fn mutated_requests_never_panic(
        req in client_request(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        everything(&mutate(req.encode(), &edits, cut))?;
    }

    #[test]
    fn mutated_responses_never_panic(
        (_op, rsp) in server_response(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        everything(&mutate(rsp.encode(), &edits, cut))?;
    }
}
