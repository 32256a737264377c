//! Counting gRPC messages in a body stream, as Istio's `istio_request_messages_total` and
//! `istio_response_messages_total` count them.
//!
//! Istio takes the counts from Envoy's `grpc_stats` filter (istio/proxy `istio_stats.cc` reads
//! its `GrpcStatsObject`), which counts length-prefixed messages with Envoy's gRPC frame
//! decoder (envoy `source/common/grpc/codec.cc`, `Decoder`): each message is a 1-byte flag, a
//! 4-byte big-endian length, then that many bytes, and may be split across DATA frames in any
//! way. This counter follows the same framing over the chunks a body yields.

/// Counts gRPC messages in a byte stream fed in chunks of any size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrpcFrameCounter {
    /// Messages whose header has been read.
    messages: u64,
    /// Header bytes of the next message read so far (0–4).
    header_len: u8,
    /// Length bytes of the header being read.
    length: [u8; 4],
    /// Payload bytes of the current message still to skip.
    remaining: u64,
}

impl GrpcFrameCounter {
    /// A counter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.remaining -= skip as u64;
                data = &data[skip..];
                continue;
            }
            // A whole header at once, the usual case.
            if self.header_len == 0
                && let [_flag, a, b, c, d, rest @ ..] = data
            {
                self.messages += 1;
                self.remaining = u64::from(u32::from_be_bytes([*a, *b, *c, *d]));
                data = rest;
                continue;
            }
            // A header split across chunks, byte by byte: the flag (index 0) or one of the
            // four length bytes.
            if self.header_len == 0 {
                self.messages += 1;
            } else {
                self.length[usize::from(self.header_len) - 1] = data[0];
            }
            data = &data[1..];
            self.header_len += 1;
            if self.header_len == 5 {
                self.header_len = 0;
                self.remaining = u64::from(u32::from_be_bytes(self.length));
            }
        }
    }

    /// Messages seen so far (a message counts once its first byte has arrived, as Envoy's
    /// decoder counts a frame when it starts decoding it).
    pub fn messages(&self) -> u64 {
        self.messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn counts_messages_however_the_stream_is_split() {
        let mut stream = Vec::new();
        for p in [&b"hello"[..], b"", &[7u8; 300][..]] {
            stream.extend(frame(p));
        }
        for chunk in [1, 2, 3, 5, 7, 64, stream.len()] {
            let mut c = GrpcFrameCounter::new();
            for part in stream.chunks(chunk) {
                c.feed(part);
            }
            assert_eq!(c.messages(), 3, "chunks of {chunk}");
        }
        let mut empty = GrpcFrameCounter::new();
        empty.feed(&[]);
        assert_eq!(empty.messages(), 0);
    }
}
