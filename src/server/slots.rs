//! Connection slots: a cap on the server's connections in all, and on those from one address,
//! taken at accept (before any TLS or WebSocket work) and given back when the connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Where a connection comes from, as far as the caps go: an IPv4 address, or an IPv6 /64 (one
/// home or one machine usually has a whole /64, so per address would be no cap at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// One IPv4 address (IPv4-mapped IPv6 included).
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl Source {
    /// The source an address counts against.
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => Source::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefused {
    /// The server has its maximum of connections.
    #[error("the server has its maximum of {0} connections")]
    Full(usize),
    /// This address has its maximum of connections.
    #[error("too many connections from one address (at most {0})")]
    PerSource(usize),
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<Source, usize>,
}

/// The caps and who holds a slot.
#[derive(Debug)]
pub struct Slots {
    max_total: usize,
    max_per_source: usize,
    counts: Mutex<Counts>,
}

/// A held slot; dropping it gives it back.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    source: Source,
}

impl Slots {
    /// At most `max_total` connections, and `max_per_source` from one source.
    pub fn new(max_total: usize, max_per_source: usize) -> Arc<Slots> {
        Arc::new(Slots { max_total, max_per_source, counts: Mutex::default() })
    }

    /// A slot for a connection from `ip`, if both caps allow.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, SlotRefused> {
        let source = Source::of(ip);
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.max_total {
            return Err(SlotRefused::Full(self.max_total));
        }
        let n = c.by_source.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            return Err(SlotRefused::PerSource(self.max_per_source));
        }
        *n += 1;
        c.total += 1;
        Ok(Slot { slots: self.clone(), source })
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Slot {
    /// The source this slot counts against.
    pub fn source(&self) -> Source {
        self.source
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                c.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_per_source_and_in_all_and_slots_come_back() {
        let slots = Slots::new(6, 2);
        let a1 = slots.take(ip("10.0.0.1")).unwrap();
        let _a2 = slots.take(ip("10.0.0.1")).unwrap();
        assert_eq!(slots.take(ip("10.0.0.1")).unwrap_err(), SlotRefused::PerSource(2));
        assert_eq!(slots.take(ip("::ffff:10.0.0.1")).unwrap_err(), SlotRefused::PerSource(2), "a mapped address is the same source");
        let _b1 = slots.take(ip("10.0.0.2")).unwrap();
        let _c1 = slots.take(ip("2001:db8::1")).unwrap();
        let _c2 = slots.take(ip("2001:db8::2:3")).unwrap();
        assert_eq!(slots.take(ip("2001:db8::ffff")).unwrap_err(), SlotRefused::PerSource(2), "one /64 is one source");
        let _d1 = slots.take(ip("10.0.0.9")).unwrap();
        assert_eq!(slots.take(ip("10.0.0.10")).unwrap_err(), SlotRefused::Full(6));
        drop(a1);
        assert_eq!(slots.held(), 5);
        let _a3 = slots.take(ip("10.0.0.1")).unwrap();
        assert_eq!(slots.held(), 6);
    }

    #[test]
    fn a_source_with_no_connections_left_is_forgotten() {
        let slots = Slots::new(10, 10);
        for i in 0..100u8 {
            drop(slots.take(IpAddr::from([10, 0, 1, i])).unwrap());
        }
        assert!(slots.counts.lock().unwrap().by_source.is_empty());
    }
}
