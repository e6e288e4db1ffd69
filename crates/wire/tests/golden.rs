//! Golden vectors: frames recorded from Apache ZooKeeper 3.8.0 talking to kazoo, zkCli.sh
//! and the C client (`cargo xtask golden record`), plus hand-built frames for what none
//! of those clients sends (`xtask/src/golden/handbuilt.rs`).
//!
//! Every frame listed in `tests/golden/manifest.tsv` must decode, agree with the manifest
//! on opcode, xid and err, and re-encode to exactly the recorded bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use rookery_wire::proto::{
    ConnectRequest, ConnectResponse, Request, Response, decode_request, decode_response,
};
use rookery_wire::{OpCode, Record};

const HEADER: &str = "file\tclient\tstep\tdirection\topcode\txid\terr";

/// Frames rookery-wire is known not to reproduce, with why. Each must still fail (so
/// a fix forces this list to shrink); everything else must pass. Empty since
/// deleteContainer's raw-path body (ZooKeeper reads `new String(request.request.array())`)
/// is decoded as raw bytes.
const KNOWN_MISMATCHES: &[(&str, &str)] = &[];

#[derive(Debug)]
struct Row {
    file: String,
    client: String,
    step: String,
    request: bool,
    /// `None` for the handshake (`connect`).
    opcode: Option<i32>,
    xid: Option<i32>,
    err: Option<i32>,
}

/// `ROOKERY_GOLDEN_DIR` points the test at a fresh recording (`cargo xtask golden record
/// --out <dir>`) before it replaces the committed one.
fn golden_dir() -> PathBuf {
    match std::env::var_os("ROOKERY_GOLDEN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden"),
    }
}

fn dash_or_int(field: &str, what: &str, line: usize) -> Option<i32> {
    if field == "-" {
        None
    } else {
        Some(
            field
                .parse()
                .unwrap_or_else(|_| panic!("manifest line {line}: bad {what} {field:?}")),
        )
    }
}

fn manifest() -> Vec<Row> {
    let path = golden_dir().join("manifest.tsv");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(HEADER), "manifest header");
    lines
        .enumerate()
        .map(|(i, line)| {
            let n = i + 2;
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(
                f.len(),
                7,
                "manifest line {n} has {} fields: {line:?}",
                f.len()
            );
            let request = match f[3] {
                "request" => true,
                "response" => false,
                other => panic!("manifest line {n}: bad direction {other:?}"),
            };
            let opcode = if f[4] == "connect" {
                None
            } else {
                Some(dash_or_int(f[4], "opcode", n).expect("opcode"))
            };
            Row {
                file: f[0].to_string(),
                client: f[1].to_string(),
                step: f[2].to_string(),
                request,
                opcode,
                xid: dash_or_int(f[5], "xid", n),
                err: dash_or_int(f[6], "err", n),
            }
        })
        .collect()
}

/// Where two encodings first differ, with a little context, for the failure message.
fn diff(original: &[u8], reencoded: &[u8]) -> String {
    let at = original
        .iter()
        .zip(reencoded)
        .position(|(a, b)| a != b)
        .unwrap_or(original.len().min(reencoded.len()));
    let window = |b: &[u8]| {
        let from = at.saturating_sub(4);
        let to = (at + 12).min(b.len());
        b.get(from..to)
            .unwrap_or_default()
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "re-encoding differs at byte {at} (original {} bytes, re-encoded {}): \
         original[{}..] = {} / re-encoded[{}..] = {}",
        original.len(),
        reencoded.len(),
        at.saturating_sub(4),
        window(original),
        at.saturating_sub(4),
        window(reencoded),
    )
}

fn short_debug(v: &impl std::fmt::Debug) -> String {
    let s = format!("{v:?}");
    if s.chars().count() > 400 {
        format!("{}…", s.chars().take(400).collect::<String>())
    } else {
        s
    }
}

/// Whether a reply body is the record ZooKeeper answers `op` with (an error reply, or
/// an op without a reply record, has no body).
fn body_fits(op: i32, err: i32, body: &Response) -> bool {
    use OpCode as O;
    let Some(op) = OpCode::from_i32(op) else {
        return err != 0 && *body == Response::Empty;
    };
    match body {
        Response::Empty => {
            err != 0
                || matches!(
                    op,
                    O::Delete
                        | O::DeleteContainer
                        | O::Ping
                        | O::CheckWatches
                        | O::RemoveWatches
                        | O::Auth
                        | O::SetWatches
                        | O::SetWatches2
                        | O::CloseSession
                        | O::Check
                )
        }
        Response::Notification(_) => op == O::Notification,
        Response::Create(_) => op == O::Create,
        Response::Create2(_) => matches!(op, O::Create2 | O::CreateContainer | O::CreateTtl),
        Response::Exists(_) => op == O::Exists,
        Response::GetData(_) => op == O::GetData,
        Response::SetData(_) => matches!(op, O::SetData | O::Check),
        Response::GetAcl(_) => op == O::GetAcl,
        Response::SetAcl(_) => op == O::SetAcl,
        Response::GetChildren(_) => op == O::GetChildren,
        Response::GetChildren2(_) => op == O::GetChildren2,
        Response::Sync(_) => op == O::Sync,
        Response::Multi(_) => op == O::Multi,
        Response::MultiRead(_) => op == O::MultiRead,
        Response::Reconfig(_) => op == O::Reconfig,
        Response::Sasl(_) => op == O::Sasl,
        Response::GetEphemerals(_) => op == O::GetEphemerals,
        Response::GetAllChildrenNumber(_) => op == O::GetAllChildrenNumber,
        Response::WhoAmI(_) => op == O::WhoAmI,
        Response::AddWatch(_) => op == O::AddWatch,
    }
}

/// Decodes one frame, checks it against its manifest row, re-encodes it, and returns
/// the opcode the decoder itself saw (or an explanation of what went wrong).
fn check(row: &Row, bytes: &[u8]) -> Result<Option<i32>, String> {
    let Some(op) = row.opcode else {
        let (decoded, reencoded) = if row.request {
            let r =
                ConnectRequest::from_bytes(bytes).map_err(|e| format!("ConnectRequest: {e}"))?;
            (short_debug(&r), r.to_bytes())
        } else {
            let r =
                ConnectResponse::from_bytes(bytes).map_err(|e| format!("ConnectResponse: {e}"))?;
            (short_debug(&r), r.to_bytes())
        };
        if reencoded != bytes {
            return Err(format!("{}; decoded {decoded}", diff(bytes, &reencoded)));
        }
        return Ok(None);
    };
    if row.request {
        let r = decode_request(bytes).map_err(|e| format!("decode_request: {e}"))?;
        let decoded = short_debug(&r);
        if Some(r.header.xid) != row.xid || r.header.op != op {
            return Err(format!(
                "header (xid {}, op {}) disagrees with the manifest (xid {:?}, op {op}); decoded {decoded}",
                r.header.xid, r.header.op, row.xid
            ));
        }
        if r.body.op_code() != op {
            return Err(format!(
                "body decoded as op {} for header op {op}: {decoded}",
                r.body.op_code()
            ));
        }
        // Only opcodes no client may send stay raw: unknown ones, and createSession.
        let may_be_raw = OpCode::from_i32(op).is_none_or(|c| c == OpCode::CreateSession);
        if matches!(r.body, Request::Unknown { .. }) && !may_be_raw {
            return Err(format!("body not understood: {decoded}"));
        }
        let reencoded = r.encode();
        if reencoded != bytes {
            return Err(format!("{}; decoded {decoded}", diff(bytes, &reencoded)));
        }
        Ok(Some(r.body.op_code()))
    } else {
        // A reply to an opcode ZooKeeper does not know (Unimplemented) is a bare header,
        // which any opcode without a reply body decodes.
        let code = OpCode::from_i32(op).unwrap_or(OpCode::Error);
        let r =
            decode_response(code, bytes).map_err(|e| format!("decode_response({code}): {e}"))?;
        let decoded = short_debug(&r);
        if Some(r.header.xid) != row.xid || Some(r.header.err) != row.err {
            return Err(format!(
                "header (xid {}, err {}) disagrees with the manifest (xid {:?}, err {:?}); decoded {decoded}",
                r.header.xid, r.header.err, row.xid, row.err
            ));
        }
        if !body_fits(op, r.header.err, &r.body) {
            return Err(format!("body does not fit op {op}: {decoded}"));
        }
        let reencoded = r.encode();
        if reencoded != bytes {
            return Err(format!("{}; decoded {decoded}", diff(bytes, &reencoded)));
        }
        Ok(Some(op))
    }
}

fn op_label(op: Option<i32>) -> String {
    match op {
        None => "connect".to_string(),
        Some(o) => match OpCode::from_i32(o) {
            Some(c) => format!("{o}:{c}"),
            None => format!("{o}:?"),
        },
    }
}

#[test]
fn every_golden_frame_round_trips_byte_for_byte() {
    let rows = manifest();
    assert!(rows.len() > 100, "only {} golden frames", rows.len());
    let dir = golden_dir();

    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    // client -> direction -> opcode (as decoded) -> frame count
    let mut covered: BTreeMap<&str, BTreeMap<&str, BTreeMap<Option<i32>, usize>>> = BTreeMap::new();
    let mut claimed: BTreeSet<(bool, Option<i32>)> = BTreeSet::new();
    let mut seen: BTreeSet<(bool, Option<i32>)> = BTreeSet::new();
    let mut errors: BTreeSet<i32> = BTreeSet::new();
    for row in &rows {
        claimed.insert((row.request, row.opcode));
        let path = dir.join(&row.file);
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match check(row, &bytes) {
            Ok(op) => {
                seen.insert((row.request, op));
                let direction = if row.request { "request" } else { "response" };
                *covered
                    .entry(row.client.as_str())
                    .or_default()
                    .entry(direction)
                    .or_default()
                    .entry(op)
                    .or_default() += 1;
                if let Some(e) = row.err {
                    errors.insert(e);
                }
            }
            Err(msg) => {
                failures.insert(row.file.clone(), format!("[{}] {msg}", row.step));
            }
        }
    }

    let mut summary = String::new();
    let _ = writeln!(summary, "golden coverage ({} frames):", rows.len());
    for (client, dirs) in &covered {
        for (direction, ops) in dirs {
            let frames: usize = ops.values().sum();
            let list: Vec<String> = ops
                .iter()
                .map(|(op, n)| format!("{}x{n}", op_label(*op)))
                .collect();
            let _ = writeln!(
                summary,
                "  {client:9} {direction:8} {frames:3} frames: {}",
                list.join(" ")
            );
        }
    }
    let _ = writeln!(summary, "  reply err codes seen: {errors:?}");
    println!("{summary}");

    let mut unexpected = Vec::new();
    for (file, msg) in &failures {
        if KNOWN_MISMATCHES.iter().any(|(f, _)| f == file) {
            println!("known mismatch {file}: {msg}");
        } else {
            unexpected.push(format!("{file}: {msg}"));
        }
    }
    let fixed: Vec<&str> = KNOWN_MISMATCHES
        .iter()
        .map(|(f, _)| *f)
        .filter(|f| !failures.contains_key(*f))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} golden frame(s) do not round-trip:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "these known mismatches pass now; remove them from KNOWN_MISMATCHES: {fixed:?}"
    );
    // What the decoder saw is what the manifest claims (known mismatches excepted).
    let failed_claims: BTreeSet<(bool, Option<i32>)> = rows
        .iter()
        .filter(|r| failures.contains_key(&r.file))
        .map(|r| (r.request, r.opcode))
        .collect();
    let missing: Vec<_> = claimed
        .difference(&seen)
        .filter(|c| !failed_claims.contains(c))
        .collect();
    assert!(
        missing.is_empty(),
        "opcodes claimed but not decoded: {missing:?}"
    );
}

#[test]
fn golden_frames_cover_every_opcode() {
    let rows = manifest();
    let ops: BTreeSet<i32> = rows.iter().filter_map(|r| r.opcode).collect();
    let missing: Vec<OpCode> = OpCode::ALL
        .iter()
        .copied()
        // -1 is only a result type inside multi replies, never a frame's opcode.
        .filter(|op| *op != OpCode::Error && !ops.contains(&op.as_i32()))
        .collect();
    assert!(missing.is_empty(), "no golden frame for {missing:?}");
    for client in ["kazoo", "zkcli", "cli_mt", "handbuilt"] {
        assert!(
            rows.iter().any(|r| r.client == client),
            "no golden frames from {client}"
        );
    }
    // Both handshake directions, from every recorded client.
    for client in ["kazoo", "zkcli", "cli_mt"] {
        for request in [true, false] {
            assert!(
                rows.iter()
                    .any(|r| r.client == client && r.request == request && r.opcode.is_none()),
                "{client}: no handshake frame (request={request})"
            );
        }
    }
}
