//! Network framing: the protocol's messages and their bytes on a connection.
//!
//! A connection carries frames. A frame is a 4-byte little-endian body
//! length followed by the body; a body is a one-byte tag followed by the
//! message's fields as little-endian integers. Nodes only ever *send* on the
//! connections they dial and only ever *receive* on the ones they accept, so
//! a connection is one-way and needs no request/response pairing.
//!
//! # Invariants
//! * Decoding never panics and never allocates more than one frame's worth,
//!   whatever the peer sends: the length prefix is checked against
//!   [`MAX_BODY`] before any buffer grows, entry counts against
//!   [`MAX_ENTRIES`], and a body must be consumed exactly.
//! * `decode(encode(m)) == m` for every message with at most
//!   [`MAX_ENTRIES`] entries.

use commonware_runtime::{Error, Sink, Stream};
use thiserror::Error;

/// Most entries one `Append` may carry.
pub const MAX_ENTRIES: usize = 64;

/// Largest body a frame may carry: an `Append` with [`MAX_ENTRIES`] entries.
const MAX_BODY: usize = 1 + 5 * 8 + 4 + MAX_ENTRIES * 16;

const REQUEST_VOTE: u8 = 1;
const VOTE: u8 = 2;
const APPEND: u8 = 3;
const APPENDED: u8 = 4;

/// One slot of the replicated log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Term of the leader that created the entry.
    pub term: u64,
    /// The client's command (random, so different entries differ).
    pub value: u64,
}

/// A protocol message. Every message carries the sender's term and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A candidate asks for a vote.
    RequestVote {
        term: u64,
        candidate: u64,
        last_index: u64,
        last_term: u64,
    },
    /// The answer to `RequestVote`.
    Vote {
        term: u64,
        voter: u64,
        granted: bool,
    },
    /// The leader replicates `entries` after `prev_index` (also a heartbeat).
    Append {
        term: u64,
        leader: u64,
        prev_index: u64,
        prev_term: u64,
        commit: u64,
        entries: Vec<Entry>,
    },
    /// The answer to `Append`: on success `index` is the follower's last
    /// index known to match the leader; on failure, a hint where to retry.
    Appended {
        term: u64,
        follower: u64,
        success: bool,
        index: u64,
    },
}

/// Why a frame could not be read.
#[derive(Debug, Error)]
pub enum WireError {
    #[error("connection: {0}")]
    Connection(#[from] Error),
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("unknown message tag {0}")]
    Tag(u8),
    #[error("message truncated")]
    Truncated,
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    #[error("append carries {0} entries, more than the limit")]
    TooManyEntries(usize),
}

impl Message {
    /// Replaces `out` with this message's frame (length prefix and body).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&[0; 4]);
        match self {
            Message::RequestVote {
                term,
                candidate,
                last_index,
                last_term,
            } => {
                out.push(REQUEST_VOTE);
                for field in [term, candidate, last_index, last_term] {
                    out.extend_from_slice(&field.to_le_bytes());
                }
            }
            Message::Vote {
                term,
                voter,
                granted,
            } => {
                out.push(VOTE);
                out.extend_from_slice(&term.to_le_bytes());
                out.extend_from_slice(&voter.to_le_bytes());
                out.push(u8::from(*granted));
            }
            Message::Append {
                term,
                leader,
                prev_index,
                prev_term,
                commit,
                entries,
            } => {
                out.push(APPEND);
                for field in [term, leader, prev_index, prev_term, commit] {
                    out.extend_from_slice(&field.to_le_bytes());
                }
                out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
                for entry in entries {
                    out.extend_from_slice(&entry.term.to_le_bytes());
                    out.extend_from_slice(&entry.value.to_le_bytes());
                }
            }
            Message::Appended {
                term,
                follower,
                success,
                index,
            } => {
                out.push(APPENDED);
                out.extend_from_slice(&term.to_le_bytes());
                out.extend_from_slice(&follower.to_le_bytes());
                out.push(u8::from(*success));
                out.extend_from_slice(&index.to_le_bytes());
            }
        }
        let body = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&body.to_le_bytes());
    }

    /// Parses one frame body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut reader = Reader { bytes: body };
        let message = match reader.u8()? {
            REQUEST_VOTE => Message::RequestVote {
                term: reader.u64()?,
                candidate: reader.u64()?,
                last_index: reader.u64()?,
                last_term: reader.u64()?,
            },
            VOTE => Message::Vote {
                term: reader.u64()?,
                voter: reader.u64()?,
                granted: reader.u8()? != 0,
            },
            APPEND => {
                let term = reader.u64()?;
                let leader = reader.u64()?;
                let prev_index = reader.u64()?;
                let prev_term = reader.u64()?;
                let commit = reader.u64()?;
                let count = reader.u32()? as usize;
                if count > MAX_ENTRIES {
                    return Err(WireError::TooManyEntries(count));
                }
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    entries.push(Entry {
                        term: reader.u64()?,
                        value: reader.u64()?,
                    });
                }
                Message::Append {
                    term,
                    leader,
                    prev_index,
                    prev_term,
                    commit,
                    entries,
                }
            }
            APPENDED => Message::Appended {
                term: reader.u64()?,
                follower: reader.u64()?,
                success: reader.u8()? != 0,
                index: reader.u64()?,
            },
            tag => return Err(WireError::Tag(tag)),
        };
        match reader.bytes.len() {
            0 => Ok(message),
            trailing => Err(WireError::Trailing(trailing)),
        }
    }
}

/// Sends `message` as one frame, using `buf` as scratch space.
pub async fn send<Si: Sink>(
    sink: &mut Si,
    message: &Message,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    message.encode(buf);
    sink.send(buf).await
}

/// Receives one frame and decodes it, using `buf` as scratch space.
pub async fn recv<St: Stream>(stream: &mut St, buf: &mut Vec<u8>) -> Result<Message, WireError> {
    let mut prefix = [0; 4];
    stream.recv(&mut prefix).await?;
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_BODY {
        return Err(WireError::TooLarge(len));
    }
    buf.resize(len, 0);
    stream.recv(buf).await?;
    Message::decode(buf)
}

/// A cursor over a body that fails, rather than panics, when it runs out.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .bytes
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated)?;
        self.bytes = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::RequestVote {
                term: 3,
                candidate: 1,
                last_index: 9,
                last_term: 2,
            },
            Message::Vote {
                term: 3,
                voter: 4,
                granted: true,
            },
            Message::Append {
                term: 5,
                leader: 0,
                prev_index: 7,
                prev_term: 4,
                commit: 6,
                entries: (0..MAX_ENTRIES as u64)
                    .map(|i| Entry { term: 5, value: i })
                    .collect(),
            },
            Message::Appended {
                term: 5,
                follower: 2,
                success: false,
                index: 3,
            },
        ]
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        for message in samples() {
            message.encode(&mut buf);
            let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
            assert_eq!(len, buf.len() - 4);
            assert!(len <= MAX_BODY);
            assert_eq!(Message::decode(&buf[4..]).unwrap(), message);
        }
    }

    #[test]
    fn every_truncation_and_extension_is_an_error() {
        let mut buf = Vec::new();
        for message in samples() {
            message.encode(&mut buf);
            let body = &buf[4..];
            for cut in 0..body.len() {
                assert!(Message::decode(&body[..cut]).is_err());
            }
            let mut longer = body.to_vec();
            longer.push(0);
            assert!(matches!(
                Message::decode(&longer),
                Err(WireError::Trailing(1))
            ));
        }
    }

    #[test]
    fn hostile_counts_and_tags_are_rejected() {
        let mut body = vec![APPEND];
        body.extend_from_slice(&[0; 40]);
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Message::decode(&body),
            Err(WireError::TooManyEntries(_))
        ));
        assert!(matches!(Message::decode(&[99]), Err(WireError::Tag(99))));
    }
}
