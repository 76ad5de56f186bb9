//! A TCP byte stream through the framer, in chunks, and every frame through the parser.
//!
//! The first byte picks the chunk size (low 6 bits + 1), whether bytes go through `push` or
//! straight into `read_buf` (bit 6), and the size limit (bit 7: 512 bytes, else 4096).
//!
//! Properties beyond "never panics": a frame never exceeds the limit; while the stream is
//! healthy the framer never holds more than the limit (a peer cannot make it buffer without
//! bound); after a fatal error it only ever says `Desynchronized`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipborder::sip::parse::{parse, reject, Limits};
use sipborder::transport::framing::{Frame, FramingError, StreamFramer};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, stream)) = data.split_first() else { return };
    let chunk = usize::from(knobs & 0x3f) + 1;
    let direct = knobs & 0x40 != 0;
    let max = if knobs & 0x80 != 0 { 512 } else { 4096 };
    let limits = Limits { max_message_size: max, ..Limits::default() };
    let mut framer = StreamFramer::new(max);
    for piece in stream.chunks(chunk) {
        if direct {
            framer.read_buf().extend_from_slice(piece);
        } else {
            framer.push(piece);
        }
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    assert!(m.len() <= max, "frame of {} bytes over the {max}-byte limit", m.len());
                    let _ = parse(&m, &limits);
                }
                Ok(Some(Frame::Ping | Frame::Pong)) => {}
                Ok(None) => break,
                Err(e) => {
                    if let FramingError::MissingContentLength { head }
                    | FramingError::BadContentLength { head }
                    | FramingError::BodyTooLarge { head, .. } = &e
                    {
                        let _ = reject(head, 400, "Bad Framing");
                    }
                    if e.is_fatal() {
                        for _ in 0..3 {
                            assert_eq!(framer.next_frame(), Err(FramingError::Desynchronized));
                        }
                        return;
                    }
                }
            }
        }
        assert!(framer.buffered() <= max, "framer holds {} bytes, limit {max}", framer.buffered());
    }
});
