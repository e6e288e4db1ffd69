//! Property tests: every record, request frame and reply frame re-encodes to the bytes
//! it was decoded from, and decodes to the value it was encoded from.

mod common;

use common::*;
use proptest::prelude::*;
use rookery_wire::proto::*;
use rookery_wire::{Acl, Record, Stat, decode_request, decode_response, split_frame, write_frame};
use std::fmt::Debug;

fn check_record<R: Record + PartialEq + Debug>(value: &R) -> Result<(), TestCaseError> {
    let bytes = value.to_bytes();
    let back = R::from_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value);
    prop_assert_eq!(back.to_bytes(), bytes);
    Ok(())
}

/// Round-trips the record inside a request body on its own.
fn check_request_body(body: &Request) -> Result<(), TestCaseError> {
    match body {
        Request::Create(b) | Request::Create2(b) | Request::CreateContainer(b) => check_record(b),
        Request::CreateTtl(b) => check_record(b),
        Request::Delete(b) => check_record(b),
        Request::Exists(b) => check_record(b),
        Request::GetData(b) => check_record(b),
        Request::SetData(b) => check_record(b),
        Request::GetAcl(b) => check_record(b),
        Request::SetAcl(b) => check_record(b),
        Request::GetChildren(b) => check_record(b),
        Request::GetChildren2(b) => check_record(b),
        Request::Sync(b) => check_record(b),
        Request::Check(b) => check_record(b),
        Request::Multi(b) | Request::MultiRead(b) => {
            check_record(b)?;
            b.ops.iter().try_for_each(check_request_body)
        }
        Request::Reconfig(b) => check_record(b),
        Request::CheckWatches(b) => check_record(b),
        Request::RemoveWatches(b) => check_record(b),
        Request::Auth(b) => check_record(b),
        Request::SetWatches(b) => check_record(b),
        Request::SetWatches2(b) => check_record(b),
        Request::Sasl(b) => check_record(b),
        Request::GetEphemerals(b) => check_record(b),
        Request::GetAllChildrenNumber(b) => check_record(b),
        Request::AddWatch(b) => check_record(b),
        Request::DeleteContainer(b) => check_record(b),
        Request::Ping | Request::WhoAmI | Request::CloseSession | Request::Unknown { .. } => Ok(()),
    }
}

fn check_response_body(body: &Response) -> Result<(), TestCaseError> {
    match body {
        Response::Empty => Ok(()),
        Response::Notification(b) => check_record(b),
        Response::Create(b) => check_record(b),
        Response::Create2(b) => check_record(b),
        Response::Exists(b) => check_record(b),
        Response::GetData(b) | Response::Reconfig(b) => check_record(b),
        Response::SetData(b) => check_record(b),
        Response::GetAcl(b) => check_record(b),
        Response::SetAcl(b) => check_record(b),
        Response::GetChildren(b) => check_record(b),
        Response::GetChildren2(b) => check_record(b),
        Response::Sync(b) => check_record(b),
        Response::Multi(b) | Response::MultiRead(b) => {
            check_record(b)?;
            for r in &b.results {
                match r {
                    OpResult::Create(x) => check_record(x)?,
                    OpResult::Create2(x) => check_record(x)?,
                    OpResult::SetData(x) => check_record(x)?,
                    OpResult::GetData(x) => check_record(x)?,
                    OpResult::GetChildren(x) => check_record(x)?,
                    OpResult::Error(err) => check_record(&ErrorResponse { err: *err })?,
                    OpResult::Delete | OpResult::Check => {}
                }
            }
            Ok(())
        }
        Response::Sasl(b) => check_record(b),
        Response::GetEphemerals(b) => check_record(b),
        Response::GetAllChildrenNumber(b) => check_record(b),
        Response::WhoAmI(b) => {
            b.client_info.iter().try_for_each(check_record)?;
            check_record(b)
        }
        Response::AddWatch(b) => check_record(b),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_requests_round_trip(req in client_request()) {
        let bytes = req.encode();
        let back = decode_request(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &req);
        prop_assert_eq!(back.encode(), bytes);
        check_record(&req.header)?;
        check_request_body(&req.body)?;
    }

    #[test]
    fn server_responses_round_trip((op, rsp) in server_response()) {
        let bytes = rsp.encode();
        let back = decode_response(op, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &rsp);
        prop_assert_eq!(back.encode(), bytes);
        check_record(&rsp.header)?;
        check_response_body(&rsp.body)?;
    }

    #[test]
    fn handshake_round_trips(req in connect_request(), rsp in connect_response()) {
        check_record(&req)?;
        check_record(&rsp)?;
        // 16-byte passwords give exactly the sizes clients check.
        let req16 = ConnectRequest { passwd: vec![0; 16], ..req };
        prop_assert_eq!(req16.to_bytes().len(), if req16.read_only.is_some() { 45 } else { 44 });
        let rsp16 = ConnectResponse { passwd: vec![0; 16], ..rsp };
        prop_assert_eq!(rsp16.to_bytes().len(), if rsp16.read_only.is_some() { 37 } else { 36 });
    }

    #[test]
    fn small_records_round_trip(
        stat in stat(),
        acl in acls(),
        op_type in any::<i32>(),
        done in any::<bool>(),
        err in any::<i32>(),
    ) {
        check_record(&stat)?;
        prop_assert_eq!(stat.to_bytes().len(), Stat::WIRE_LEN);
        for a in &acl {
            check_record(a)?;
            check_record(&a.id)?;
        }
        check_record(&MultiHeader { op_type, done, err })?;
        check_record(&ErrorResponse { err })?;
        let _: Vec<Acl> = acl;
    }

    #[test]
    fn frames_round_trip(payloads in proptest::collection::vec(bytes(), 0..5), max in 24usize..64) {
        let mut stream = Vec::new();
        for p in &payloads {
            write_frame(p, &mut stream);
        }
        let mut rest = &stream[..];
        let mut got = Vec::new();
        while let Some((payload, used)) = split_frame(rest, max).map_err(|e| TestCaseError::fail(e.to_string()))? {
            got.push(payload.to_vec());
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(got, payloads);
    }
}
