use thiserror::Error;

/// Why a record could not be decoded. Always names the field and the byte offset, so
/// that a log line about a bad frame says where it went wrong without a hex dump.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot decode {field} at offset {offset}: {kind}")]
pub struct DecodeError {
    pub field: &'static str,
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeErrorKind {
    #[error("need {needed} more bytes, {available} left")]
    Truncated { needed: usize, available: usize },
    #[error("length {0} is negative or larger than what is left of the frame")]
    BadLength(i64),
    #[error("string is not valid UTF-8")]
    BadUtf8,
    #[error("unknown value {0}")]
    UnknownValue(i64),
    #[error("{0} bytes left over after the record")]
    TrailingBytes(usize),
}

pub type DecodeResult<T> = Result<T, DecodeError>;
