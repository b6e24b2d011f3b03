//! The worker's UDP socket: batched receive (recvmmsg, GRO) and batched send (GSO) through
//! `quinn-udp`.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams read per receive call.
pub(crate) const RECV_BATCH: usize = 32;
const RECV_SLOT: usize = 2048;
/// Socket buffers: large enough that a burst of keyframes to many subscribers is absorbed.
const SOCKET_BUFFER: usize = 8 * 1024 * 1024;

pub(crate) struct Udp {
    pub sock: UdpSocket,
    state: UdpSocketState,
    pub local: SocketAddr,
    gro: usize,
    tx: TxBatch,
    max_segments: usize,
}

/// Datagrams queued for the next flush, in one contiguous buffer.
#[derive(Default)]
struct TxBatch {
    buf: Vec<u8>,
    /// Destination, source address, offset and length.
    items: Vec<(SocketAddr, IpAddr, usize, usize)>,
}

/// What one flush did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Flushed {
    pub packets: u64,
    pub bytes: u64,
    pub dropped: u64,
    pub syscalls: u64,
}

impl Udp {
    pub fn bind(addr: SocketAddr) -> io::Result<Udp> {
        let std_sock = std::net::UdpSocket::bind(addr)?;
        std_sock.set_nonblocking(true)?;
        let state = UdpSocketState::new((&std_sock).into())?;
        // Best effort: the kernel caps these at net.core.{w,r}mem_max.
        let _ = state.set_send_buffer_size((&std_sock).into(), SOCKET_BUFFER);
        let _ = state.set_recv_buffer_size((&std_sock).into(), SOCKET_BUFFER);
        let local = std_sock.local_addr()?;
        let sock = UdpSocket::from_std(std_sock)?;
        let gro = state.gro_segments().max(1);
        let max_segments = state.max_gso_segments().clamp(1, 64);
        Ok(Udp {
            sock,
            state,
            local,
            gro,
            tx: TxBatch::default(),
            max_segments,
        })
    }

    /// Reads one batch of datagrams without blocking into `rx`, described by `metas`.
    /// Returns how many entries of `metas` were filled, or `WouldBlock`.
    pub fn recv_batch(&self, rx: &mut [u8], metas: &mut [RecvMeta]) -> io::Result<usize> {
        let slot = rx.len() / metas.len();
        let mut iovs: Vec<IoSliceMut<'_>> = rx.chunks_mut(slot).map(IoSliceMut::new).collect();
        self.sock.try_io(Interest::READABLE, || {
            self.state.recv((&self.sock).into(), &mut iovs, metas)
        })
    }

    /// A receive buffer and metadata array sized for [`Udp::recv_batch`] on this socket.
    pub fn recv_buffers(&self) -> (Vec<u8>, Vec<RecvMeta>) {
        (
            vec![0; RECV_BATCH * RECV_SLOT * self.gro],
            vec![RecvMeta::default(); RECV_BATCH],
        )
    }

    /// Queues one datagram.
    /// Queues one datagram. `src` is the local address it must leave from (it matters
    /// when the socket is bound to all interfaces and several are announced).
    pub fn queue(&mut self, dest: SocketAddr, src: IpAddr, data: &[u8]) {
        let start = self.tx.buf.len();
        self.tx.buf.extend_from_slice(data);
        self.tx.items.push((dest, src, start, data.len()));
    }

    pub fn has_queued(&self) -> bool {
        !self.tx.items.is_empty()
    }

    /// Sends everything queued. Consecutive datagrams to one destination of one size go out
    /// as a single GSO send (the last of a run may be shorter).
    pub fn flush(&mut self) -> Flushed {
        let mut done = Flushed::default();
        let items = std::mem::take(&mut self.tx.items);
        let mut i = 0;
        while i < items.len() {
            let (dest, src, start, len) = items[i];
            let mut j = i + 1;
            let mut end = start + len;
            while j < items.len()
                && j - i < self.max_segments
                && items[j].0 == dest
                && items[j].1 == src
                && items[j].2 == end
                && items[j].3 <= len
                && items[j - 1].3 == len
            {
                end += items[j].3;
                j += 1;
            }
            let segments = j - i;
            let t = Transmit {
                destination: dest,
                ecn: None,
                contents: &self.tx.buf[start..end],
                segment_size: (segments > 1).then_some(len),
                src_ip: (self.local.ip().is_unspecified() && !src.is_unspecified()).then_some(src),
            };
            done.syscalls += 1;
            match self.state.try_send((&self.sock).into(), &t) {
                Ok(()) => {
                    done.packets += segments as u64;
                    done.bytes += (end - start) as u64;
                }
                Err(e) => {
                    // A full socket buffer or an unreachable peer: drop, never stall the loop.
                    tracing::trace!(error = %e, %dest, "udp send failed");
                    done.dropped += segments as u64;
                }
            }
            i = j;
        }
        self.tx.items = items;
        self.tx.items.clear();
        self.tx.buf.clear();
        done
    }
}

/// The USERNAME of a STUN binding request (`<our ufrag>:<their ufrag>`), for demultiplexing.
pub(crate) fn stun_local_ufrag(data: &[u8]) -> Option<&str> {
    if data.len() < 20 || data[0] & 0xc0 != 0 || data[4..8] != [0x21, 0x12, 0xa4, 0x42] {
        return None;
    }
    let mut i = 20;
    while i + 4 <= data.len() {
        let typ = u16::from_be_bytes([data[i], data[i + 1]]);
        let len = u16::from_be_bytes([data[i + 2], data[i + 3]]) as usize;
        let val = data.get(i + 4..i + 4 + len)?;
        if typ == 0x0006 {
            let user = std::str::from_utf8(val).ok()?;
            return user.split(':').next();
        }
        i += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_username() {
        let mut m = vec![0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&[0x00, 0x06, 0x00, 0x09]);
        m.extend_from_slice(b"abcd:wxyz\0\0\0");
        assert_eq!(stun_local_ufrag(&m), Some("abcd"));
        assert_eq!(stun_local_ufrag(&m[..24]), None);
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
    }

    #[tokio::test]
    async fn gso_batches_runs_to_one_destination() {
        let mut a = Udp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = b.local_addr().unwrap();
        let src = "127.0.0.1".parse().unwrap();
        for i in 0..5u8 {
            a.queue(dest, src, &[i; 1000]);
        }
        a.queue(dest, src, &[9; 300]);
        let f = a.flush();
        assert_eq!(f.packets, 6);
        assert!(f.syscalls <= 6);
        b.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let mut buf = [0u8; 2000];
        let mut got = Vec::new();
        for _ in 0..6 {
            let n = b.recv(&mut buf).unwrap();
            got.push((n, buf[0]));
        }
        assert_eq!(
            got,
            vec![
                (1000, 0),
                (1000, 1),
                (1000, 2),
                (1000, 3),
                (1000, 4),
                (300, 9)
            ]
        );
    }
}
