//! Length-prefixed framing and four-letter-word detection on the client port.

use thiserror::Error;

/// `jute.maxbuffer`'s default: the largest frame payload ZooKeeper accepts.
pub const DEFAULT_MAX_FRAME: usize = 0xfffff;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// ZooKeeper's "Len error": the connection must be closed, there is no way to
    /// resynchronise on the stream.
    #[error("frame length {len} is negative or larger than {max}")]
    BadLength { len: i32, max: usize },
}

/// Splits one frame off the front of `buf`.
///
/// `Ok(None)` means more bytes are needed; `Ok(Some((payload, consumed)))` gives the
/// payload and the number of bytes (prefix included) to drop from `buf`. A bad length is
/// reported as soon as the 4-byte prefix is in, without waiting for the payload.
///
/// Check for a four-letter word on the first 4 bytes of a connection *before* calling
/// this: read as a length, `ruok` is far larger than any sane maximum.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(prefix) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = i32::from_be_bytes(*prefix);
    let n = match usize::try_from(len) {
        Ok(n) if n <= max => n,
        _ => return Err(FrameError::BadLength { len, max }),
    };
    match buf.get(4..4 + n) {
        Some(payload) => Ok(Some((payload, 4 + n))),
        None => Ok(None),
    }
}

/// Appends `payload` with its 4-byte big-endian length prefix.
///
/// Payloads longer than `i32::MAX` cannot be framed; they are a caller bug (every
/// sane maximum is far below) and are written with a saturated length.
pub fn write_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = i32::try_from(payload.len()).unwrap_or(i32::MAX);
    out.reserve(4 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The four-letter words ZooKeeper recognises on the client port
/// (`FourLetterCommands`), sent raw instead of a length prefix by `nc`/`telnet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FourLetterWord {
    Ruok,
    Srvr,
    Stat,
    Mntr,
    Conf,
    Cons,
    Crst,
    Srst,
    Envi,
    Wchs,
    Wchc,
    Wchp,
    Dump,
    Isro,
    Dirs,
    Hash,
    Gtmk,
    /// Followed on the wire by an 8-byte big-endian trace mask.
    Stmk,
}

impl FourLetterWord {
    pub const ALL: [FourLetterWord; 18] = [
        FourLetterWord::Ruok,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
        FourLetterWord::Mntr,
        FourLetterWord::Conf,
        FourLetterWord::Cons,
        FourLetterWord::Crst,
        FourLetterWord::Srst,
        FourLetterWord::Envi,
        FourLetterWord::Wchs,
        FourLetterWord::Wchc,
        FourLetterWord::Wchp,
        FourLetterWord::Dump,
        FourLetterWord::Isro,
        FourLetterWord::Dirs,
        FourLetterWord::Hash,
        FourLetterWord::Gtmk,
        FourLetterWord::Stmk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FourLetterWord::Ruok => "ruok",
            FourLetterWord::Srvr => "srvr",
            FourLetterWord::Stat => "stat",
            FourLetterWord::Mntr => "mntr",
            FourLetterWord::Conf => "conf",
            FourLetterWord::Cons => "cons",
            FourLetterWord::Crst => "crst",
            FourLetterWord::Srst => "srst",
            FourLetterWord::Envi => "envi",
            FourLetterWord::Wchs => "wchs",
            FourLetterWord::Wchc => "wchc",
            FourLetterWord::Wchp => "wchp",
            FourLetterWord::Dump => "dump",
            FourLetterWord::Isro => "isro",
            FourLetterWord::Dirs => "dirs",
            FourLetterWord::Hash => "hash",
            FourLetterWord::Gtmk => "gtmk",
            FourLetterWord::Stmk => "stmk",
        }
    }
}

impl std::fmt::Display for FourLetterWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Recognises a four-letter word from the first 4 bytes of a connection. Exact,
/// lower-case bytes only, as ZooKeeper compares the 4 bytes as one int.
pub fn four_letter_word(first4: [u8; 4]) -> Option<FourLetterWord> {
    FourLetterWord::ALL
        .into_iter()
        .find(|w| w.as_str().as_bytes() == first4)
}

/// What `telnet` sends when it closes (IAC IP IAC DO, `FourLetterCommands.telnetCloseCmd`):
/// ZooKeeper treats it as a command that just closes the connection.
pub const TELNET_CLOSE: [u8; 4] = [0xff, 0xf4, 0xff, 0xfd];

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(payload, &mut out);
        out
    }

    #[test]
    fn write_frame_prefixes_big_endian_length() {
        assert_eq!(framed(b"abc"), [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(framed(b""), [0, 0, 0, 0]);
    }

    #[test]
    fn partial_frames_need_more_bytes() {
        let bytes = framed(b"hello");
        for cut in 0..bytes.len() {
            assert_eq!(
                split_frame(&bytes[..cut], DEFAULT_MAX_FRAME),
                Ok(None),
                "cut {cut}"
            );
        }
        assert_eq!(
            split_frame(&bytes, DEFAULT_MAX_FRAME),
            Ok(Some((&b"hello"[..], 9)))
        );
    }

    #[test]
    fn back_to_back_frames_split_one_at_a_time() {
        let mut bytes = framed(b"one");
        write_frame(b"", &mut bytes);
        write_frame(b"three", &mut bytes);
        bytes.extend_from_slice(&[0, 0]); // start of a fourth
        let mut rest = &bytes[..];
        let mut got = Vec::new();
        while let Some((payload, used)) = split_frame(rest, DEFAULT_MAX_FRAME).unwrap() {
            got.push(payload.to_vec());
            rest = &rest[used..];
        }
        assert_eq!(got, [b"one".to_vec(), vec![], b"three".to_vec()]);
        assert_eq!(rest, [0, 0]);
    }

    #[test]
    fn lengths_over_max_or_negative_are_rejected_from_the_prefix_alone() {
        let max = 16;
        let at_max = framed(&[1u8; 16]);
        assert!(split_frame(&at_max, max).unwrap().is_some());
        let over = 17i32.to_be_bytes();
        assert_eq!(
            split_frame(&over, max),
            Err(FrameError::BadLength { len: 17, max })
        );
        let negative = (-1i32).to_be_bytes();
        assert_eq!(
            split_frame(&negative, DEFAULT_MAX_FRAME),
            Err(FrameError::BadLength {
                len: -1,
                max: DEFAULT_MAX_FRAME
            })
        );
        assert_eq!(
            split_frame(&i32::MIN.to_be_bytes(), usize::MAX),
            Err(FrameError::BadLength {
                len: i32::MIN,
                max: usize::MAX
            })
        );
        // A 4lw read as a length is far over jute.maxbuffer.
        assert!(split_frame(b"ruok", DEFAULT_MAX_FRAME).is_err());
    }

    #[test]
    fn four_letter_words_are_detected_exactly() {
        assert_eq!(four_letter_word(*b"ruok"), Some(FourLetterWord::Ruok));
        assert_eq!(four_letter_word(*b"stmk"), Some(FourLetterWord::Stmk));
        assert_eq!(four_letter_word(*b"isro"), Some(FourLetterWord::Isro));
        assert_eq!(four_letter_word(*b"RUOK"), None);
        assert_eq!(four_letter_word(*b"ruo "), None);
        assert_eq!(four_letter_word([0, 0, 0, 44]), None);
        assert_eq!(four_letter_word(TELNET_CLOSE), None);
        let mut seen = std::collections::BTreeSet::new();
        for w in FourLetterWord::ALL {
            let s = w.as_str();
            assert_eq!(s.len(), 4);
            assert!(seen.insert(s), "duplicate {s}");
            let first4: [u8; 4] = s.as_bytes().try_into().unwrap();
            assert_eq!(four_letter_word(first4), Some(w));
            assert_eq!(w.to_string(), s);
        }
        assert_eq!(seen.len(), 18);
    }
}
