//! The worker socket's batched system calls: `recvmmsg` with each datagram's GRO stride,
//! destination address and kernel receive time, and `sendmmsg` of many destinations in one
//! call, each message a GSO run. `quinn-udp` sets the socket up (buffers, GRO, packet info)
//! and probes GSO; it sends one message per call, which is what this replaces.
//!
//! `parlor-bench`'s media clients read with [`recv`] too, for the kernel receive time of
//! each packet they get.
//!
//! The one module of the SFU with `unsafe`: these calls and their C structs have no safe
//! wrapper in the crates the workspace uses. Every block states what keeps it sound, and
//! the tests in `udp.rs` drive each path over real sockets.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Messages per `sendmmsg` call (its arrays live on the stack).
pub(crate) const SEND_CHUNK: usize = 64;
/// Messages per `recvmmsg` call.
pub const RECV_CHUNK: usize = 32;

/// Control space for the ancillary data of one message, aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Ctrl([u8; 192]);

/// One datagram (or GRO run) read.
#[derive(Debug, Clone, Copy)]
pub struct RecvMeta {
    pub addr: SocketAddr,
    /// Bytes in the slot.
    pub len: usize,
    /// Size of each datagram of a GRO run; `len` when there is one.
    pub stride: usize,
    /// The local address the datagram was sent to.
    pub dst_ip: Option<IpAddr>,
    /// When the kernel received it, `CLOCK_REALTIME` nanoseconds.
    pub received_ns: Option<u64>,
}

impl Default for RecvMeta {
    fn default() -> Self {
        RecvMeta {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            len: 0,
            stride: 0,
            dst_ip: None,
            received_ns: None,
        }
    }
}

/// Asks the kernel to stamp every received datagram with its arrival time.
pub fn enable_rx_timestamps(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value of the right size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `CLOCK_REALTIME` now, nanoseconds: what [`RecvMeta::received_ns`] is compared with.
pub fn realtime_ns() -> u64 {
    // SAFETY: clock_gettime writes one timespec.
    let mut ts: libc::timespec = unsafe { zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Reads up to `metas.len()` (at most [`RECV_CHUNK`]) datagrams into equal slots of `rx`
/// without blocking. Returns how many were read, or `WouldBlock`.
pub fn recv(fd: RawFd, rx: &mut [u8], metas: &mut [RecvMeta]) -> io::Result<usize> {
    let n = metas.len().min(RECV_CHUNK);
    let slot = rx.len() / metas.len();
    // SAFETY: all-zero is a valid value of these C structs.
    let mut names: [libc::sockaddr_storage; RECV_CHUNK] = unsafe { zeroed() };
    let mut ctrls = [Ctrl([0; 192]); RECV_CHUNK];
    let mut iovs: [libc::iovec; RECV_CHUNK] = unsafe { zeroed() };
    let mut hdrs: [libc::mmsghdr; RECV_CHUNK] = unsafe { zeroed() };
    for (i, chunk) in rx.chunks_mut(slot).take(n).enumerate() {
        iovs[i] = libc::iovec {
            iov_base: chunk.as_mut_ptr().cast(),
            iov_len: chunk.len(),
        };
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        h.msg_control = ctrls[i].0.as_mut_ptr().cast();
        h.msg_controllen = ctrls[i].0.len() as _;
    }
    // SAFETY: every header points at live buffers of this frame, sized as declared.
    let got = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    for i in 0..got {
        let len = hdrs[i].msg_len as usize;
        let mut m = RecvMeta {
            // SAFETY: the kernel filled the name with msg_namelen bytes.
            addr: unsafe { from_sockaddr(&names[i]) }.unwrap_or(metas[i].addr),
            len,
            stride: len,
            dst_ip: None,
            received_ns: None,
        };
        // SAFETY: walks the control data the kernel wrote, within msg_controllen.
        unsafe { read_cmsgs(&hdrs[i].msg_hdr, &mut m) };
        metas[i] = m;
    }
    Ok(got)
}

unsafe fn read_cmsgs(h: &libc::msghdr, m: &mut RecvMeta) {
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            let data = libc::CMSG_DATA(c);
            match ((*c).cmsg_level, (*c).cmsg_type) {
                (libc::SOL_UDP, libc::UDP_GRO) => {
                    let s = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                    if s > 0 {
                        m.stride = s as usize;
                    }
                }
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                    m.dst_ip = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr))));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let p = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    let a = Ipv6Addr::from(p.ipi6_addr.s6_addr);
                    m.dst_ip = Some(a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4));
                }
                (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                    let t = std::ptr::read_unaligned(data.cast::<libc::timespec>());
                    m.received_ns = Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64);
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
}

/// One message to send: `data` to `dest` from `src` (when set), cut into `segment`-byte
/// datagrams by the kernel when `segment` is set (GSO).
pub(crate) struct Out<'a> {
    pub dest: SocketAddr,
    pub src: Option<IpAddr>,
    pub data: &'a [u8],
    pub segment: Option<u16>,
}

/// How one message of a [`send`] ended.
pub(crate) enum Sent {
    Ok,
    Failed(io::Error),
}

/// Sends up to [`SEND_CHUNK`] messages with as few `sendmmsg` calls as the kernel allows;
/// `done(i, result)` is told how each ended. A failed message (a full buffer, an
/// unreachable peer) is skipped, never retried. Returns the number of calls.
pub(crate) fn send(
    fd: RawFd,
    v6_socket: bool,
    msgs: &[Out<'_>],
    mut done: impl FnMut(usize, Sent),
) -> u64 {
    let n = msgs.len().min(SEND_CHUNK);
    // SAFETY: all-zero is a valid value of these C structs.
    let mut names: [libc::sockaddr_storage; SEND_CHUNK] = unsafe { zeroed() };
    let mut ctrls = [Ctrl([0; 192]); SEND_CHUNK];
    let mut iovs: [libc::iovec; SEND_CHUNK] = unsafe { zeroed() };
    let mut hdrs: [libc::mmsghdr; SEND_CHUNK] = unsafe { zeroed() };
    for (i, m) in msgs.iter().take(n).enumerate() {
        let namelen = to_sockaddr(m.dest, v6_socket, &mut names[i]);
        iovs[i] = libc::iovec {
            iov_base: m.data.as_ptr() as *mut libc::c_void,
            iov_len: m.data.len(),
        };
        let mut used = 0;
        // SAFETY: each value fits the 192-byte control space (at most 64 bytes in all).
        unsafe {
            if let Some(seg) = m.segment {
                push_cmsg(
                    &mut ctrls[i],
                    &mut used,
                    libc::SOL_UDP,
                    libc::UDP_SEGMENT,
                    seg,
                );
            }
            match m.src {
                Some(IpAddr::V4(a)) if !v6_socket => {
                    let info = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from(a).to_be(),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    push_cmsg(
                        &mut ctrls[i],
                        &mut used,
                        libc::IPPROTO_IP,
                        libc::IP_PKTINFO,
                        info,
                    );
                }
                Some(a) if v6_socket => {
                    let a = match a {
                        IpAddr::V4(a) => a.to_ipv6_mapped(),
                        IpAddr::V6(a) => a,
                    };
                    let info = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: a.octets(),
                        },
                        ipi6_ifindex: 0,
                    };
                    push_cmsg(
                        &mut ctrls[i],
                        &mut used,
                        libc::IPPROTO_IPV6,
                        libc::IPV6_PKTINFO,
                        info,
                    );
                }
                _ => {}
            }
        }
        let h = &mut hdrs[i].msg_hdr;
        h.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = namelen;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        if used > 0 {
            h.msg_control = ctrls[i].0.as_mut_ptr().cast();
            h.msg_controllen = used as _;
        }
    }
    let mut calls = 0;
    let mut at = 0;
    while at < n {
        calls += 1;
        // SAFETY: the headers from `at` point at live buffers of this frame.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                hdrs[at..].as_mut_ptr(),
                (n - at) as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The error is the first unsent message's own.
            done(at, Sent::Failed(e));
            at += 1;
            continue;
        }
        for i in at..at + r as usize {
            done(i, Sent::Ok);
        }
        at += r as usize;
    }
    calls
}

unsafe fn push_cmsg<T>(ctrl: &mut Ctrl, used: &mut usize, level: i32, ty: i32, value: T) {
    unsafe {
        let hdr = ctrl.0.as_mut_ptr().add(*used).cast::<libc::cmsghdr>();
        (*hdr).cmsg_level = level;
        (*hdr).cmsg_type = ty;
        (*hdr).cmsg_len = libc::CMSG_LEN(size_of::<T>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(hdr).cast::<T>(), value);
        *used += libc::CMSG_SPACE(size_of::<T>() as u32) as usize;
    }
}

fn to_sockaddr(
    a: SocketAddr,
    v6_socket: bool,
    out: &mut libc::sockaddr_storage,
) -> libc::socklen_t {
    let a = match a {
        SocketAddr::V4(v4) if v6_socket => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        a => a,
    };
    match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let s =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = v4.port().to_be();
            s.sin_addr = libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in6.
            let s =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = v6.port().to_be();
            s.sin6_addr = libc::in6_addr {
                s6_addr: v6.ip().octets(),
            };
            s.sin6_flowinfo = v6.flowinfo();
            s.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// # Safety
/// `s` holds an address the kernel wrote (or zeroes).
unsafe fn from_sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let p = s as *const libc::sockaddr_storage;
    match i32::from(s.ss_family) {
        libc::AF_INET => {
            let a = unsafe { &*p.cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            let a = unsafe { &*p.cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            let port = u16::from_be(a.sin6_port);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    port,
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )),
            })
        }
        _ => None,
    }
}
