//! One direction of a simulated link: latency, jitter, a bandwidth cap, and loss. The links
//! Syncy uses are reliable SCTP channels, so a lost packet is not a lost message: it is one
//! that arrives a retransmission timeout later (and an ordered channel holds everything
//! behind it until then).

use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::StdRng;

/// What a link does to traffic, one way.
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec {
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay, uniform in `0..jitter`.
    pub jitter: Duration,
    /// Chance a message needs a retransmission (each retransmission may be lost again).
    pub loss: f64,
    /// Bytes per second (`None`: no cap).
    pub bandwidth: Option<u64>,
}

impl LinkSpec {
    /// A link of `rtt_ms` round trip (half each way), a tenth of that as jitter, and `loss`.
    pub fn rtt(rtt_ms: u64, loss: f64) -> LinkSpec {
        let latency = Duration::from_micros(rtt_ms * 500);
        LinkSpec { latency, jitter: latency / 10, loss, bandwidth: None }
    }

    /// The same link capped at `bytes_per_s`.
    pub fn capped(self, bytes_per_s: u64) -> LinkSpec {
        LinkSpec { bandwidth: Some(bytes_per_s), ..self }
    }

    /// How long SCTP waits before it sends a lost packet again (its RTO: at least 200 ms,
    /// else a few round trips).
    fn rto(&self) -> Duration {
        (self.latency * 6).max(Duration::from_millis(200))
    }
}

/// The state of one direction.
#[derive(Debug)]
pub struct Pipe {
    spec: LinkSpec,
    /// The sender's side is busy putting bytes on the wire until then.
    busy_until: Instant,
    /// The latest delivery on each ordered channel (nothing overtakes it on its own channel:
    /// each link is its own SCTP association, so a retransmission on one holds up no other).
    last_ordered: std::collections::HashMap<u32, Instant>,
}

impl Pipe {
    /// An idle pipe.
    pub fn new(spec: LinkSpec, now: Instant) -> Pipe {
        Pipe { spec, busy_until: now, last_ordered: Default::default() }
    }

    /// Sends `bytes` at `now`: when they have left the sender (the send is done, as far as
    /// its sender can tell) and when they arrive. `ordered`: a link's control channel (by the
    /// link's number), on which nothing overtakes a message held up by a retransmission.
    pub fn send(&mut self, now: Instant, bytes: usize, ordered: Option<u32>, rng: &mut StdRng) -> (Instant, Instant) {
        let start = self.busy_until.max(now);
        let wire = self.spec.bandwidth.map_or(Duration::ZERO, |b| Duration::from_secs_f64(bytes as f64 / b as f64));
        self.busy_until = start + wire;
        let mut delay = self.spec.latency;
        if !self.spec.jitter.is_zero() {
            delay += self.spec.jitter.mul_f64(rng.random::<f64>());
        }
        while rng.random::<f64>() < self.spec.loss {
            delay += self.spec.rto();
        }
        let mut at = self.busy_until + delay;
        if let Some(channel) = ordered {
            let last = self.last_ordered.entry(channel).or_insert(at);
            at = at.max(*last);
            *last = at;
        }
        (self.busy_until, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_capped_link_spaces_messages_by_their_size_and_keeps_order_on_the_ordered_channel() {
        let t0 = crate::testing::t0();
        let mut rng = StdRng::seed_from_u64(1);
        let spec = LinkSpec { latency: Duration::from_millis(10), jitter: Duration::ZERO, loss: 0.0, bandwidth: Some(1000) };
        let mut p = Pipe::new(spec, t0);
        let (left, at) = p.send(t0, 500, Some(0), &mut rng);
        assert_eq!((left - t0, at - t0), (Duration::from_millis(500), Duration::from_millis(510)));
        let (left, _) = p.send(t0, 500, Some(0), &mut rng);
        assert_eq!(left - t0, Duration::from_secs(1), "queued behind the first");
        let mut lossy = Pipe::new(LinkSpec { loss: 0.5, bandwidth: None, ..spec }, t0);
        let arrivals: Vec<Instant> = (0..50).map(|_| lossy.send(t0, 10, Some(0), &mut rng).1).collect();
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]), "ordered despite retransmissions");
        assert!(arrivals.iter().any(|&a| a - t0 >= Duration::from_millis(210)), "some waited for a retransmission");
    }
}
