//! The one error type of SDP parsing.

/// Why an SDP body was refused, with the 1-based line it was found on.
///
/// Absence errors (no `o=`, empty body) point at the line where the missing line was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("SDP line {line}: {reason}")]
pub struct SdpError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong with it.
    pub reason: SdpErrorReason,
}

/// The short reason carried by [`SdpError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpErrorReason {
    /// Nothing but whitespace.
    #[error("empty body")]
    Empty,
    /// The first line is not `v=0`.
    #[error("first line is not v=0")]
    MissingVersion,
    /// A second `v=` line.
    #[error("duplicate v= line")]
    DuplicateVersion,
    /// A line that is not `<letter>=<value>`.
    #[error("not a <type>=<value> line")]
    NotTypeValue,
    /// A line sipborder must read is not UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
    /// No `o=` line in the session part.
    #[error("missing o= line")]
    MissingOrigin,
    /// `o=` without its six fields, repeated, or inside a media section.
    #[error("malformed o= line")]
    BadOrigin,
    /// `c=` without nettype, addrtype and address.
    #[error("malformed c= line")]
    BadConnection,
    /// `m=` without media, port and proto.
    #[error("malformed m= line")]
    BadMedia,
    /// `m=` port (or port count) not a number in 0..=65535.
    #[error("bad m= port")]
    BadPort,
    /// `a=rtcp` with a bad port or a partial address.
    #[error("malformed a=rtcp")]
    BadRtcp,
    /// `a=rtpmap` that is not `<pt> <name>/<rate>[/<channels>]`.
    #[error("malformed a=rtpmap")]
    BadRtpmap,
}

impl SdpError {
    pub(crate) fn new(line: usize, reason: SdpErrorReason) -> Self {
        SdpError { line, reason }
    }
}
