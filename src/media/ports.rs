//! `PortPool`: the relay ports of one zone in one shard — even RTP / odd RTCP pairs, bound on
//! allocation, quarantined for a while after release so a late packet of the old call never
//! reaches the next one.

use socket2::{Domain, Protocol, Socket, Type};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Errors of the pool.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortPoolError {
    /// Every pair is in use or in quarantine.
    #[error("no free relay port pair on {0}")]
    Exhausted(IpAddr),
}

/// A bound RTP/RTCP socket pair.
#[derive(Debug)]
pub struct PortPair {
    /// Even port.
    pub port: u16,
    /// RTP socket (bound to `port`).
    pub rtp: UdpSocket,
    /// RTCP socket (bound to `port + 1`).
    pub rtcp: UdpSocket,
}

/// DSCP EF (46) in the IPv4 TOS / IPv6 traffic class byte.
pub const DSCP_EF_TOS: u32 = 0xb8;

fn bind(ip: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let addr = SocketAddr::new(ip, port);
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Voice is EF: routers and switches that honour DSCP queue it first.
    if ip.is_ipv4() {
        let _ = s.set_tos(DSCP_EF_TOS);
    } else {
        let _ = s.set_tclass_v6(DSCP_EF_TOS);
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Relay ports of one address.
#[derive(Debug)]
pub struct PortPool {
    ip: IpAddr,
    free: VecDeque<u16>,
    quarantine: VecDeque<(Instant, u16)>,
    quarantine_time: Duration,
    in_use: usize,
    total: usize,
}

impl PortPool {
    /// Pairs from `lo` to `hi` inclusive (rounded to even RTP ports) on `ip`.
    pub fn new(ip: IpAddr, lo: u16, hi: u16, quarantine_time: Duration) -> PortPool {
        let start = lo + (lo % 2);
        let free: VecDeque<u16> =
            (start..hi).step_by(2).filter(|p| p.checked_add(1).is_some_and(|q| q <= hi)).collect();
        let total = free.len();
        PortPool { ip, free, quarantine: VecDeque::new(), quarantine_time, in_use: 0, total }
    }

    /// Address the pool binds on.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    fn thaw(&mut self, now: Instant) {
        while let Some(&(at, port)) = self.quarantine.front() {
            if now.saturating_duration_since(at) < self.quarantine_time {
                break;
            }
            self.quarantine.pop_front();
            self.free.push_back(port);
        }
    }

    /// Takes a pair and binds it. Ports another process holds are skipped (and retried later).
    pub fn allocate(&mut self, now: Instant) -> Result<PortPair, PortPoolError> {
        self.thaw(now);
        for _ in 0..self.free.len() {
            let Some(port) = self.free.pop_front() else { break };
            match (bind(self.ip, port), bind(self.ip, port + 1)) {
                (Ok(rtp), Ok(rtcp)) => {
                    self.in_use += 1;
                    return Ok(PortPair { port, rtp, rtcp });
                }
                _ => self.quarantine.push_back((now, port)),
            }
        }
        Err(PortPoolError::Exhausted(self.ip))
    }

    /// Gives a pair back (its sockets must be closed by then); it rests in quarantine first.
    pub fn release(&mut self, now: Instant, port: u16) {
        self.in_use = self.in_use.saturating_sub(1);
        self.quarantine.push_back((now, port));
    }

    /// Pairs in use.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Pairs free or in quarantine.
    pub fn available(&self) -> usize {
        self.total - self.in_use
    }

    /// Pairs in total.
    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lo() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    #[test]
    fn pairs_are_even_odd_and_exhaust_then_come_back_after_quarantine() {
        let t0 = Instant::now();
        // Three pairs: 41000/41001, 41002/41003, 41004/41005.
        let mut pool = PortPool::new(lo(), 41000, 41005, Duration::from_secs(2));
        assert_eq!(pool.total(), 3);
        let a = pool.allocate(t0).expect("first");
        assert_eq!(a.port % 2, 0);
        assert_eq!(a.rtcp.local_addr().map(|x| x.port()).ok(), Some(a.port + 1));
        let b = pool.allocate(t0).expect("second");
        let c = pool.allocate(t0).expect("third");
        assert_eq!(pool.allocate(t0).err(), Some(PortPoolError::Exhausted(lo())));
        let port = a.port;
        drop(a);
        pool.release(t0, port);
        assert!(pool.allocate(t0 + Duration::from_secs(1)).is_err(), "still in quarantine");
        let again = pool.allocate(t0 + Duration::from_secs(3)).expect("back after quarantine");
        assert_eq!(again.port, port);
        drop((b, c));
    }

    #[test]
    fn a_port_held_by_someone_else_is_skipped() {
        let t0 = Instant::now();
        let _squatter = UdpSocket::bind((lo(), 41101)).expect("bind");
        let mut pool = PortPool::new(lo(), 41100, 41103, Duration::from_secs(1));
        let p = pool.allocate(t0).expect("the second pair");
        assert_eq!(p.port, 41102);
    }
}
