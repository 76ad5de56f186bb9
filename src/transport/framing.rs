//! Sans-IO framing of SIP over stream transports (TCP, TLS).
//!
//! A stream carries messages back to back, so the only way to find where one ends is its
//! Content-Length (RFC 3261 §18.3), which is therefore mandatory there. Between messages a peer
//! may send RFC 5626 §3.5.1 keepalives: a double CRLF ("ping") that asks for a single CRLF ("pong").
//!
//! [`StreamFramer`] does no I/O: the connection task appends what it reads (ideally straight into
//! [`StreamFramer::read_buf`], so bytes are copied once, by the kernel) and pulls frames out.
//! Each message frame is split off the buffer as [`Bytes`] without copying.
//!
//! The framer reads only what framing needs (the end of the header section and Content-Length,
//! compact `l` included, names case-insensitive); everything else is the parser's job.

use bytes::{Buf, Bytes, BytesMut};

/// One unit read off a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Exactly one SIP message: header section plus Content-Length bytes of body.
    Message(Bytes),
    /// RFC 5626 keepalive ping (CRLF CRLF): answer with a single CRLF.
    Ping,
    /// RFC 5626 keepalive pong (a single CRLF between messages).
    Pong,
}

/// Why a stream could not be framed.
///
/// Errors that carry `head` hand over the message's header section so the caller can answer it
/// (e.g. `sip::parse::reject(&head, 400, "Missing Content-Length")`) before closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// No end of header section within the size limit. Fatal: close the connection.
    #[error("header section larger than {max} bytes")]
    HeaderTooLarge {
        /// The limit.
        max: usize,
    },
    /// A message without Content-Length, which streams require (RFC 3261 §18.3). Fatal: the end of
    /// the message cannot be known; answer 400 and close.
    #[error("message without Content-Length on a stream")]
    MissingContentLength {
        /// The message's header section.
        head: Bytes,
    },
    /// Content-Length not a number, or two that disagree. Fatal: answer 400 and close.
    #[error("invalid Content-Length on a stream")]
    BadContentLength {
        /// The message's header section.
        head: Bytes,
    },
    /// Header section plus body would exceed the size limit. Not fatal: the framer discards the
    /// body as it arrives and carries on with the next message, so the caller may answer 413 and
    /// keep the connection.
    #[error("message of {size} bytes exceeds the {max}-byte limit")]
    BodyTooLarge {
        /// Header section length plus Content-Length.
        size: u64,
        /// The limit.
        max: usize,
        /// The message's header section.
        head: Bytes,
    },
    /// A fatal error was already returned; the stream cannot be resynchronised.
    #[error("stream framing failed earlier")]
    Desynchronized,
}

impl FramingError {
    /// True when the connection must be closed (the stream position is lost).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, FramingError::BodyTooLarge { .. })
    }
}

/// Incremental framer for one stream connection.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    max: usize,
    /// Bytes at the front of `buf` already searched for the end of the header section, so a
    /// header section arriving in small pieces is not rescanned from the start each time.
    scanned: usize,
    /// Length of the message at the front of `buf` once its header section has been read.
    pending: Option<usize>,
    /// Body bytes of a refused message still to be discarded.
    skip: u64,
    failed: bool,
}

/// Smallest free space [`StreamFramer::read_buf`] offers, so one read can take a typical message.
const READ_RESERVE: usize = 4096;

impl StreamFramer {
    /// A framer refusing messages (header section plus body) over `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        StreamFramer {
            buf: BytesMut::with_capacity(READ_RESERVE),
            max: max_message_size,
            scanned: 0,
            pending: None,
            skip: 0,
            failed: false,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The buffer to read into directly (e.g. with tokio's `AsyncReadExt::read_buf`), which saves
    /// the copy [`push`](Self::push) makes. It has at least 4 KiB of spare capacity. Only append to
    /// it: the framer keeps offsets into what is already there.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        self.buf.reserve(READ_RESERVE);
        &mut self.buf
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    ///
    /// Call it in a loop after each read until it returns `Ok(None)`.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if self.failed {
            return Err(FramingError::Desynchronized);
        }
        if self.skip > 0 {
            let n = usize::try_from(self.skip).unwrap_or(usize::MAX).min(self.buf.len());
            self.buf.advance(n);
            self.skip -= n as u64;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        if let Some(total) = self.pending {
            return Ok(self.take_message(total));
        }

        match self.buf[..] {
            [] | [b'\r'] => return Ok(None),
            [b'\r', b'\n', b'\r', b'\n', ..] => {
                self.buf.advance(4);
                return Ok(Some(Frame::Ping));
            }
            // Might be the first three bytes of a ping.
            [b'\r', b'\n', b'\r'] => return Ok(None),
            // A lone CRLF is reported at once, even if a second one might follow in the next read:
            // a pinging client waiting for its pong must not be kept waiting for more data.
            [b'\r', b'\n', ..] => {
                self.buf.advance(2);
                return Ok(Some(Frame::Pong));
            }
            _ => {}
        }

        let Some(blank) = find_blank_line(&self.buf, self.scanned.saturating_sub(3)) else {
            self.scanned = self.buf.len();
            if self.buf.len() >= self.max {
                return Err(self.fatal(FramingError::HeaderTooLarge { max: self.max }));
            }
            return Ok(None);
        };
        self.scanned = 0;
        let head_len = blank + 4;
        if head_len > self.max {
            return Err(self.fatal(FramingError::HeaderTooLarge { max: self.max }));
        }
        let content_length = match content_length(&self.buf[..blank + 2]) {
            Ok(n) => n,
            Err(missing) => {
                let head = self.buf.split_to(head_len).freeze();
                let e = if missing {
                    FramingError::MissingContentLength { head }
                } else {
                    FramingError::BadContentLength { head }
                };
                return Err(self.fatal(e));
            }
        };
        let size = head_len as u64 + content_length;
        if size > self.max as u64 {
            let head = self.buf.split_to(head_len).freeze();
            self.skip = content_length;
            return Err(FramingError::BodyTooLarge { size, max: self.max, head });
        }
        // `size` is at most `max`, a usize.
        let total = size as usize;
        self.pending = Some(total);
        Ok(self.take_message(total))
    }

    fn take_message(&mut self, total: usize) -> Option<Frame> {
        if self.buf.len() < total {
            // Make room for the rest in one allocation instead of repeated growth.
            self.buf.reserve(total - self.buf.len());
            return None;
        }
        self.pending = None;
        Some(Frame::Message(self.buf.split_to(total).freeze()))
    }

    fn fatal(&mut self, e: FramingError) -> FramingError {
        self.failed = true;
        e
    }
}

/// Index of the first CRLF CRLF at or after `from`.
fn find_blank_line(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let at = i + buf.get(i..)?.iter().position(|&b| b == b'\r')?;
        if buf.get(at + 1..at + 4) == Some(b"\n\r\n") {
            return Some(at);
        }
        i = at + 1;
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(b, b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
}

/// Content-Length of a header section (start line and header lines, each ending in CRLF).
/// `Err(true)` when absent, `Err(false)` when malformed or repeated with another value.
fn content_length(head: &[u8]) -> Result<u64, bool> {
    let mut found: Option<u64> = None;
    let mut lines = head.split(|&b| b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        let name_end = line.iter().position(|&b| !is_token(b)).unwrap_or(line.len());
        let name = &line[..name_end];
        if !(name.eq_ignore_ascii_case(b"Content-Length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let rest = &line[name_end..];
        let Some(colon) = rest.iter().position(|&b| b != b' ' && b != b'\t') else { continue };
        if rest[colon] != b':' {
            continue;
        }
        // The value may be folded onto continuation lines (RFC 3261 §7.3.1); only then copy.
        let mut value = std::borrow::Cow::Borrowed(&rest[colon + 1..]);
        while let Some(next) = lines.next_if(|l| matches!(l.first(), Some(b' ' | b'\t'))) {
            value.to_mut().extend_from_slice(next);
        }
        let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
        let start = value.iter().position(|b| !is_ws(b)).unwrap_or(value.len());
        let end = value.iter().rposition(|b| !is_ws(b)).map_or(start, |e| e + 1);
        let digits = value.get(start..end).unwrap_or_default();
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(false);
        }
        let n = digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        match found {
            Some(old) if old != n => return Err(false),
            _ => found = Some(n),
        }
    }
    found.ok_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 65536;

    fn vectors() -> Vec<(String, Vec<u8>)> {
        crate::sip::parse::vector_files()
            .into_iter()
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect()
    }

    /// Feeds `chunks` one at a time, draining frames after each.
    fn frames<'a>(f: &mut StreamFramer, chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Frame> {
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            while let Some(fr) = f.next_frame().unwrap() {
                out.push(fr);
            }
        }
        out
    }

    #[test]
    fn every_vector_split_at_every_offset() {
        for (name, v) in vectors() {
            for at in 0..=v.len() {
                let mut f = StreamFramer::new(MAX);
                let got = frames(&mut f, [&v[..at], &v[at..]]);
                assert_eq!(got, [Frame::Message(Bytes::from(v.clone()))], "{name} split at {at}");
                assert_eq!(f.buffered(), 0);
            }
            let mut f = StreamFramer::new(MAX);
            let got = frames(&mut f, v.chunks(1));
            assert_eq!(got, [Frame::Message(Bytes::from(v.clone()))], "{name} byte by byte");
        }
    }

    #[test]
    fn pipelined_vectors_and_keepalives() {
        let vs = vectors();
        let mut stream = Vec::new();
        let mut expect = Vec::new();
        for (i, (_, v)) in vs.iter().enumerate() {
            match i % 3 {
                0 => {
                    stream.extend_from_slice(b"\r\n\r\n");
                    expect.push(Frame::Ping);
                }
                1 => {
                    stream.extend_from_slice(b"\r\n");
                    expect.push(Frame::Pong);
                }
                _ => {}
            }
            stream.extend_from_slice(v);
            expect.push(Frame::Message(Bytes::from(v.clone())));
        }
        for size in [stream.len(), 4096, 1000, 97, 13] {
            let mut f = StreamFramer::new(MAX);
            assert_eq!(frames(&mut f, stream.chunks(size)), expect, "chunks of {size}");
        }
    }

    #[test]
    fn lync_content_length_mid_headers_all_caps() {
        let (_, v) = vectors().into_iter().find(|(n, _)| n.contains("011_avaya")).unwrap();
        let mut two = v.clone();
        two.extend_from_slice(&v);
        let mut f = StreamFramer::new(MAX);
        let got = frames(&mut f, [&two[..]]);
        assert_eq!(got, [Frame::Message(Bytes::from(v.clone())), Frame::Message(Bytes::from(v))]);
    }

    #[test]
    fn content_length_spellings() {
        for head in [
            "MESSAGE sip:a SIP/2.0\r\nl: 3\r\n\r\n",
            "MESSAGE sip:a SIP/2.0\r\nL:3\r\n\r\n",
            "MESSAGE sip:a SIP/2.0\r\ncontent-length  : 3 \r\n\r\n",
            "MESSAGE sip:a SIP/2.0\r\nContent-Length:\r\n 3\r\nX: y\r\n\r\n",
            "MESSAGE sip:a SIP/2.0\r\nContent-Length: 3\r\nl: 3\r\n\r\n",
            "MESSAGE sip:a SIP/2.0\r\nX-Content-Length: 9\r\nContent-Length: 3\r\n\r\n",
        ] {
            let mut f = StreamFramer::new(MAX);
            let m = format!("{head}abcOPTIONS");
            let got = frames(&mut f, [m.as_bytes()]);
            assert_eq!(got, [Frame::Message(Bytes::from(format!("{head}abc")))], "{head}");
            assert_eq!(f.buffered(), "OPTIONS".len());
        }
    }

    #[test]
    fn keepalives() {
        let mut f = StreamFramer::new(MAX);
        assert_eq!(frames(&mut f, [&b"\r\n\r\n\r\n\r\n"[..]]), [Frame::Ping, Frame::Ping]);
        assert_eq!(frames(&mut f, [&b"\r\n"[..]]), [Frame::Pong]);
        // A ping arriving a byte at a time.
        assert_eq!(frames(&mut f, [&b"\r"[..], b"\n", b"\r", b"\n"]), [Frame::Pong, Frame::Pong]);
        assert_eq!(frames(&mut f, [&b"\r\n\r"[..], b"\n"]), [Frame::Ping]);
        assert_eq!(frames(&mut f, [&b"\r\nSIP/2.0 200 OK\r\nl: 0\r\n\r\n"[..]]).len(), 2);
    }

    #[test]
    fn missing_content_length_hands_back_the_head() {
        let mut f = StreamFramer::new(MAX);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\nmore");
        match f.next_frame() {
            Err(e @ FramingError::MissingContentLength { .. }) => {
                assert!(e.is_fatal());
                let FramingError::MissingContentLength { head } = e else { unreachable!() };
                assert_eq!(&head[..], b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(f.next_frame(), Err(FramingError::Desynchronized));
    }

    #[test]
    fn bad_content_length() {
        for cl in ["abc", "", "-1", "1 2", "99999999999999999999", "3\r\nContent-Length: 4"] {
            let mut f = StreamFramer::new(MAX);
            f.push(format!("BYE sip:a SIP/2.0\r\nContent-Length: {cl}\r\n\r\n").as_bytes());
            assert!(matches!(f.next_frame(), Err(FramingError::BadContentLength { .. })), "{cl:?}");
        }
    }

    #[test]
    fn header_section_too_large() {
        let mut f = StreamFramer::new(64);
        f.push(&[b'a'; 63]);
        assert_eq!(f.next_frame(), Ok(None));
        f.push(b"a");
        assert_eq!(f.next_frame(), Err(FramingError::HeaderTooLarge { max: 64 }));
        let mut f = StreamFramer::new(20);
        f.push(b"BYE sip:a SIP/2.0\r\nl: 0\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::HeaderTooLarge { max: 20 }));
    }

    #[test]
    fn body_too_large_is_skipped_and_the_stream_goes_on() {
        let head = "MESSAGE sip:a SIP/2.0\r\nl: 100\r\n\r\n";
        let next = "BYE sip:a SIP/2.0\r\nl: 0\r\n\r\n";
        let mut f = StreamFramer::new(64);
        f.push(head.as_bytes());
        match f.next_frame() {
            Err(e @ FramingError::BodyTooLarge { .. }) => {
                assert!(!e.is_fatal());
                assert_eq!(
                    e,
                    FramingError::BodyTooLarge {
                        size: head.len() as u64 + 100,
                        max: 64,
                        head: Bytes::from(head)
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        let body = [b'x'; 100];
        let mut stream = body.to_vec();
        stream.extend_from_slice(next.as_bytes());
        assert_eq!(frames(&mut f, stream.chunks(7)), [Frame::Message(Bytes::from(next))]);
    }

    #[test]
    fn read_buf_avoids_the_copy() {
        let (_, v) = vectors().into_iter().next().unwrap();
        let mut f = StreamFramer::new(MAX);
        let buf = f.read_buf();
        assert!(buf.capacity() - buf.len() >= READ_RESERVE);
        buf.extend_from_slice(&v);
        assert_eq!(f.next_frame(), Ok(Some(Frame::Message(Bytes::from(v)))));
    }

    #[test]
    fn frames_parse() {
        use crate::sip::parse::{parse, Limits};
        let mut stream = Vec::new();
        for (_, v) in vectors() {
            stream.extend_from_slice(&v);
        }
        let mut f = StreamFramer::new(MAX);
        for fr in frames(&mut f, stream.chunks(333)) {
            let Frame::Message(m) = fr else { panic!() };
            parse(&m, &Limits::default()).unwrap();
        }
    }

    #[test]
    fn garbage_never_panics() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7);
        let alphabet = b"\r\n :lL0123456789Content-Length";
        for _ in 0..2000 {
            let len = rng.gen_range(0..200);
            let data: Vec<u8> =
                (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())]).collect();
            let mut f = StreamFramer::new(rng.gen_range(1..300));
            for c in data.chunks(rng.gen_range(1..50)) {
                f.push(c);
                for _ in 0..8 {
                    match f.next_frame() {
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
    }
}
