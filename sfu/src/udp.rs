//! The worker's UDP socket: batched receive (recvmmsg, GRO, kernel receive times) and
//! batched send (sendmmsg across destinations, GSO runs to one destination). `quinn-udp`
//! sets the socket up; [`crate::udp_sys`] makes the calls.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use quinn_udp::UdpSocketState;
use tokio::io::Interest;
use tokio::net::UdpSocket;

pub(crate) use crate::udp_sys::RecvMeta;
use crate::udp_sys::{self, Out, SEND_CHUNK, Sent};

/// Datagrams read per receive call.
pub(crate) const RECV_BATCH: usize = udp_sys::RECV_CHUNK;
const RECV_SLOT: usize = 2048;
/// Socket buffers: large enough that a burst of keyframes to many subscribers is absorbed.
/// How long a datagram may wait in the receive buffer is bounded by the worker (late
/// media is not forwarded), not by the buffer's size.
const SOCKET_BUFFER: usize = 8 * 1024 * 1024;

pub(crate) struct Udp {
    pub sock: UdpSocket,
    pub local: SocketAddr,
    gro: usize,
    tx: TxBatch,
    max_segments: usize,
    /// Whether the kernel stamps received datagrams (`SO_TIMESTAMPNS`); without it late
    /// media cannot be told apart and is forwarded.
    #[cfg_attr(not(test), allow(dead_code))]
    stamped: bool,
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
        let stamped = match udp_sys::enable_rx_timestamps(std_sock.as_raw_fd()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "no kernel receive times: late media is not shed");
                false
            }
        };
        let local = std_sock.local_addr()?;
        let sock = UdpSocket::from_std(std_sock)?;
        let gro = state.gro_segments().max(1);
        let max_segments = state.max_gso_segments().clamp(1, 64);
        Ok(Udp {
            sock,
            local,
            gro,
            tx: TxBatch::default(),
            max_segments,
            stamped,
        })
    }

    /// Reads one batch of datagrams without blocking into `rx`, described by `metas`.
    /// Returns how many entries of `metas` were filled, or `WouldBlock`.
    pub fn recv_batch(&self, rx: &mut [u8], metas: &mut [RecvMeta]) -> io::Result<usize> {
        let fd = self.sock.as_raw_fd();
        self.sock
            .try_io(Interest::READABLE, || udp_sys::recv(fd, rx, metas))
    }

    /// A receive buffer and metadata array sized for [`Udp::recv_batch`] on this socket.
    pub fn recv_buffers(&self) -> (Vec<u8>, Vec<RecvMeta>) {
        (
            vec![0; RECV_BATCH * RECV_SLOT * self.gro],
            vec![RecvMeta::default(); RECV_BATCH],
        )
    }

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

    /// Datagrams queued for the next flush.
    pub fn queued(&self) -> usize {
        self.tx.items.len()
    }

    /// Sends everything queued, many destinations per `sendmmsg` call. Consecutive
    /// datagrams to one destination of one size go out as one GSO message (the last of a
    /// run may be shorter).
    pub fn flush(&mut self) -> Flushed {
        let mut done = Flushed::default();
        let items = std::mem::take(&mut self.tx.items);
        let fd = self.sock.as_raw_fd();
        let v6 = self.local.is_ipv6();
        let pick_src = self.local.ip().is_unspecified();
        let mut msgs: Vec<Out<'_>> = Vec::with_capacity(SEND_CHUNK);
        // Datagrams in each message of `msgs`.
        let mut counts = [0u64; SEND_CHUNK];
        let mut gso_failed = false;
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
            counts[msgs.len()] = segments as u64;
            msgs.push(Out {
                dest,
                src: (pick_src && !src.is_unspecified()).then_some(src),
                data: &self.tx.buf[start..end],
                segment: (segments > 1).then_some(len as u16),
            });
            i = j;
            if msgs.len() == SEND_CHUNK || i == items.len() {
                done.syscalls += udp_sys::send(fd, v6, &msgs, |k, r| match r {
                    Sent::Ok => {
                        done.packets += counts[k];
                        done.bytes += msgs[k].data.len() as u64;
                    }
                    Sent::Failed(e) => {
                        // A full socket buffer or an unreachable peer: drop, never stall
                        // the loop. EIO on a GSO message: the device cannot segment.
                        gso_failed |= e.raw_os_error() == Some(libc::EIO) && counts[k] > 1;
                        tracing::trace!(error = %e, dest = %msgs[k].dest, "udp send failed");
                        done.dropped += counts[k];
                    }
                });
                msgs.clear();
            }
        }
        if gso_failed {
            tracing::warn!("GSO send failed with EIO; sending one datagram per message");
            self.max_segments = 1;
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

    #[tokio::test]
    async fn one_call_sends_to_many_destinations() {
        let mut a = Udp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let src = "127.0.0.1".parse().unwrap();
        let subs: Vec<std::net::UdpSocket> = (0..100)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, b) in subs.iter().enumerate() {
            a.queue(b.local_addr().unwrap(), src, &[i as u8; 1200]);
        }
        let f = a.flush();
        assert_eq!(f.packets, 100);
        assert_eq!(f.dropped, 0);
        // 64 messages per call at most: two calls for 100 destinations.
        assert_eq!(f.syscalls, 2);
        let mut buf = [0u8; 2000];
        for (i, b) in subs.iter().enumerate() {
            b.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let (n, from) = b.recv_from(&mut buf).unwrap();
            assert_eq!((n, buf[0], from), (1200, i as u8, a.local));
        }
    }

    #[tokio::test]
    async fn received_datagrams_carry_their_kernel_arrival_time() {
        let a = Udp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(a.stamped);
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // The kernel turns receive stamping on in a deferred work item when the
        // first socket asks for it; until then a datagram is stamped when it is
        // read. So a round may see no wait; a later one must.
        let mut waits = Vec::new();
        for round in 0..10u8 {
            let before = crate::udp_sys::realtime_ns();
            b.send_to(&[b'h', round], a.local).unwrap();
            a.sock.readable().await.unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let (mut rx, mut metas) = a.recv_buffers();
            let n = a.recv_batch(&mut rx, &mut metas).unwrap();
            assert_eq!(n, 1);
            let m = metas[0];
            assert_eq!(m.addr, b.local_addr().unwrap());
            assert_eq!(m.dst_ip, Some("127.0.0.1".parse().unwrap()));
            let at = m.received_ns.expect("a kernel timestamp");
            let now = crate::udp_sys::realtime_ns();
            assert!(at >= before && at <= now, "{before} <= {at} <= {now}");
            assert_eq!(&rx[..m.stride.min(m.len)], &[b'h', round]);
            waits.push(now - at);
            // Read 20 ms after it arrived: the wait is visible.
            if now - at >= 20_000_000 {
                return;
            }
        }
        panic!("no datagram showed the 20 ms it waited: {waits:?} ns");
    }
}
