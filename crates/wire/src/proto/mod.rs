//! The records of the client protocol and the two frame kinds built from them.
//!
//! - [`records`]: one struct per jute record (handshake, headers, request and response
//!   bodies), each a [`crate::Record`].
//! - [`request`]: [`ClientRequest`] = header + [`Request`], [`decode_request`].
//! - [`response`]: [`ServerResponse`] = header + [`Response`], [`decode_response`],
//!   and the multi result layout.
//!
//! The handshake ([`ConnectRequest`]/[`ConnectResponse`]) has no header and is decoded
//! on its own with [`crate::Record::from_bytes`].

pub mod records;
pub mod request;
pub mod response;

pub use records::*;
pub use request::{ClientRequest, MultiRequest, Request, decode_request, decode_request_header};
pub use response::{MultiResponse, OpResult, Response, ServerResponse, decode_response};

#[cfg(test)]
mod tests;
