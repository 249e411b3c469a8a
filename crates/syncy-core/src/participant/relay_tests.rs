//! Two participant cores wired by hand as neighbours: introductions, signed SDPs, holdings,
//! chunks asked of a neighbour and checked against the host's hashes, a lie, a loss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::tests::{ROOM, config, host_key};
use super::*;
use crate::protocol::guest::GuestSecret;
use crate::protocol::hashes::{ChunkHash, HASH_BATCH, HashBatch, chunk_hash};
use crate::protocol::relay::introduce;
use crate::protocol::stream::Manifest;

const LINK: u32 = 7;

/// Two minutes at 1 Mb/s: 229 chunks of 64 KiB.
fn media() -> Manifest {
    crate::sim::media(120, 1000, 64 << 10)
}

/// What chunk `ix` holds.
fn content(m: &Manifest, ix: u32) -> Bytes {
    Bytes::from(vec![(ix % 251) as u8; m.chunk_len(ix).unwrap()])
}

fn relaying(name: &str, seed: u8) -> ParticipantConfig {
    let key = Arc::new(GuestSecret::from_bytes([seed; 32]).key_for(ROOM));
    ParticipantConfig { name: name.into(), relay: Some(RelayConfig { key, limit_bps: 0, digest: chunk_hash }), ..config(false) }
}

fn guest(seed: u8) -> crate::protocol::guest::GuestId {
    GuestSecret::from_bytes([seed; 32]).key_for(ROOM).public()
}

/// The host's signed hashes of the whole file.
fn batches(m: &Manifest) -> Vec<HashBatch> {
    (0..m.chunks)
        .step_by(HASH_BATCH as usize)
        .map(|first| {
            let hashes: Vec<ChunkHash> = (first..(first + HASH_BATCH).min(m.chunks)).map(|ix| chunk_hash(&content(m, ix))).collect();
            HashBatch::sign(&host_key(), ROOM, &m.stream, ORIGINAL, first, &hashes)
        })
        .collect()
}

/// A participant with the host's hashes, holding `held` (seeded by the host).
fn participant(now: Instant, name: &str, seed: u8, held: std::ops::Range<u32>) -> ParticipantCore {
    let m = media();
    let mut c = ParticipantCore::new(now, m.clone(), relaying(name, seed), &[]);
    for b in batches(&m) {
        c.handle_message(now, Message::HashBatch(b)).unwrap();
    }
    if !held.is_empty() {
        c.handle_message(now, Message::Seed { space: ORIGINAL, chunks: held.clone().collect() }).unwrap();
        for ix in held {
            c.handle_chunk_parts(now, 100, ORIGINAL, ix, content(&m, ix)).unwrap();
        }
    }
    while c.poll_output().is_some() {}
    c
}

/// The pair and the wire between them.
struct Pair {
    now: Instant,
    ann: ParticipantCore,
    bob: ParticipantCore,
    /// What each sent the host.
    to_host: Vec<(&'static str, Message)>,
    /// Relay links each opened or closed.
    opened: Vec<&'static str>,
    closed: Vec<&'static str>,
    /// Each chunk bob sends passes through this on the way.
    tamper: fn(u32, Bytes) -> Bytes,
}

impl Pair {
    fn new(bob_holds: std::ops::Range<u32>) -> Pair {
        let now = crate::testing::t0();
        let ann = participant(now, "ann", 1, 0..0);
        let bob = participant(now, "bob", 2, bob_holds);
        Pair { now, ann, bob, to_host: vec![], opened: vec![], closed: vec![], tamper: |_, b| b }
    }

    /// The host introduces them, the SDPs go through it, the link comes up.
    fn connect(&mut self) {
        let stream = media().stream;
        let (to_ann, to_bob) = introduce(&host_key(), ROOM, &stream, LINK, (&guest(1), "ann"), (&guest(2), "bob"));
        self.ann.handle_message(self.now, Message::RelayIntro(to_ann)).unwrap();
        self.bob.handle_message(self.now, Message::RelayIntro(to_bob)).unwrap();
        self.ann.handle_relay_local_sdp(self.now, LINK, "v=0 ann's offer".into());
        self.settle();
        self.bob.handle_relay_local_sdp(self.now, LINK, "v=0 bob's answer".into());
        self.settle();
        self.ann.handle_relay_up(self.now, LINK);
        self.bob.handle_relay_up(self.now, LINK);
        self.settle();
    }

    /// Moves everything either sent until neither has more.
    fn settle(&mut self) {
        loop {
            let a: Vec<_> = std::iter::from_fn(|| self.ann.poll_output()).collect();
            let b: Vec<_> = std::iter::from_fn(|| self.bob.poll_output()).collect();
            if a.is_empty() && b.is_empty() {
                return;
            }
            a.into_iter().for_each(|o| self.carry("ann", o));
            b.into_iter().for_each(|o| self.carry("bob", o));
        }
    }

    fn carry(&mut self, from: &'static str, out: ParticipantOutput) {
        let now = self.now;
        let tamper = self.tamper;
        let (me, other) = if from == "ann" { (&mut self.ann, &mut self.bob) } else { (&mut self.bob, &mut self.ann) };
        match out {
            // The host forwards SDPs to the other end of the link.
            ParticipantOutput::Send(Message::RelaySignal(sdp)) => other.handle_message(now, Message::RelaySignal(sdp)).unwrap(),
            ParticipantOutput::Send(m) => self.to_host.push((from, m)),
            ParticipantOutput::RelayOpen { .. } => self.opened.push(from),
            ParticipantOutput::RelayClose { .. } => self.closed.push(from),
            ParticipantOutput::RelaySend { link, msg } => other.handle_relay_message(now, link, msg),
            ParticipantOutput::RelayChunk { link, space, index, data } => {
                let len = data.len();
                let data = if from == "bob" { tamper(index, data) } else { data };
                other.handle_relay_chunk_parts(now, link, len + 16, space, index, data);
                me.handle_relay_sent(now, link, len);
            }
            _ => {}
        }
    }

    /// Time passes for both (a relay pass is due every 250 ms).
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while self.now < until {
            self.now = (self.now + RELAY_EVERY).min(until);
            self.ann.handle_timeout(self.now);
            self.bob.handle_timeout(self.now);
            self.settle();
        }
    }

    fn sent_host(&self, who: &str) -> Vec<&Message> {
        self.to_host.iter().filter(|(f, _)| *f == who).map(|(_, m)| m).collect()
    }
}

#[test]
fn read_ahead_beyond_soon_comes_from_a_neighbour_checked_against_the_hosts_hashes() {
    let mut p = Pair::new(0..120);
    p.connect();
    assert_eq!(p.opened, ["ann", "bob"]);
    p.advance(Duration::from_secs(3));
    let (soon, horizon) = (p.ann.chunks_of(SOON), p.ann.chunks_of(HORIZON));
    let got: Vec<u32> = (0..120).filter(|&ix| p.ann.original().has(ix)).collect();
    // What ann asked the host for at the start (the host had sent none of it yet) went to
    // bob once he said he holds it; beyond, up to the horizon, bob was asked at once.
    assert_eq!(got, (0..horizon).collect::<Vec<_>>(), "up to {horizon} chunks ahead, what bob holds, from bob");
    assert!(p.ann.original().get(100) == Some(&content(&media(), 100)[..]));
    let relay = |c: &mut ParticipantCore| c.relay_report(p.now).unwrap();
    let (a, b) = (relay(&mut p.ann), relay(&mut p.bob));
    assert_eq!(a.down_bytes, horizon as u64 * 65536);
    assert_eq!((b.up_bytes, a.links, b.links), (a.down_bytes, 1, 1));
    // Ann asked the host for nothing more, and took back what it had asked for at the start
    // (its first SOON): bob brought it.
    let asked_host = p.sent_host("ann").iter().any(|m| matches!(m, Message::Request { .. }));
    assert!(!asked_host);
    let mut cancelled: Vec<u32> =
        p.sent_host("ann").iter().filter_map(|m| if let Message::Cancel { chunks, .. } = m { Some(chunks.clone()) } else { None }).flatten().collect();
    cancelled.sort_unstable();
    assert_eq!(cancelled, (0..soon).collect::<Vec<_>>());
    // And tells the host what it holds now.
    assert!(p.sent_host("ann").iter().any(|m| matches!(m, Message::Have(h) if h.added.indices().any(|ix| ix == 100))));
}

#[test]
fn within_soon_a_neighbour_that_holds_the_chunk_is_asked_before_the_host() {
    let mut p = Pair::new(0..40);
    p.connect();
    // Ann's reader moves to chunk 20, past the window it asked the host for.
    let mut buf = [0u8; 1];
    assert_eq!(p.ann.read_at(ORIGINAL, 20 * 65536, &mut buf), crate::buffer::Read::Wait);
    p.ann.handle_wake(p.now);
    p.settle();
    assert!(p.ann.original().has(20), "the chunk the reader waits for came from bob");
    let asked_host = p.sent_host("ann").iter().any(|m| matches!(m, Message::Request { chunks, .. } if chunks.contains(&20)));
    assert!(!asked_host);
}

#[test]
fn a_neighbour_whose_chunk_is_not_the_hosts_is_cut_off_and_reported() {
    let mut p = Pair::new(0..120);
    p.tamper = |ix, b| if ix == 50 { Bytes::from(vec![0xee; b.len()]) } else { b };
    p.connect();
    p.advance(Duration::from_secs(3));
    assert!(!p.ann.original().has(50) && !p.ann.original().is_in_flight(50), "dropped, and free to be asked again");
    assert!(p.sent_host("ann").iter().any(|m| matches!(m, Message::BadChunk { link: LINK, space: ORIGINAL, index: 50 })));
    assert_eq!(p.closed, ["ann"]);
    assert_eq!(p.ann.relay.as_ref().unwrap().lies, 1);
    assert_eq!(p.ann.relay.as_ref().unwrap().swarm.up(), 0);
}

#[test]
fn a_neighbour_that_leaves_mid_chunk_costs_only_a_re_request() {
    let mut p = Pair::new(0..120);
    p.connect();
    // Ann's requests reach bob, and bob's link goes before a chunk comes back.
    p.ann.handle_timeout(p.now + RELAY_EVERY);
    let requests: Vec<ParticipantOutput> = std::iter::from_fn(|| p.ann.poll_output()).collect();
    let in_flight: Vec<u32> = requests
        .iter()
        .filter_map(|o| if let ParticipantOutput::RelaySend { msg: Message::Request { chunks, .. }, .. } = o { Some(chunks.clone()) } else { None })
        .flatten()
        .collect();
    assert!(!in_flight.is_empty());
    assert!(in_flight.iter().all(|&ix| p.ann.original().is_in_flight(ix)));
    p.ann.handle_relay_gone(p.now, LINK, "ICE failed");
    let outs: Vec<ParticipantOutput> = std::iter::from_fn(|| p.ann.poll_output()).collect();
    // Every chunk asked of bob is free to be asked again: those within SOON of the reader
    // are, of the host, at once.
    let of_host: Vec<u32> = outs
        .iter()
        .filter_map(|o| if let ParticipantOutput::Send(Message::Request { chunks, .. }) = o { Some(chunks.clone()) } else { None })
        .flatten()
        .collect();
    assert!(in_flight.iter().all(|ix| !p.ann.original().is_in_flight(*ix) || of_host.contains(ix)), "{in_flight:?} {of_host:?}");
    assert!(of_host.iter().all(|&ix| ix < p.ann.chunks_of(SOON)));
    assert!(outs.iter().any(|o| matches!(o, ParticipantOutput::Send(Message::RelayBye { link: LINK, .. }))), "the host hears");
    assert!(outs.iter().any(|o| matches!(o, ParticipantOutput::RelayClose { link: LINK })));
}

#[test]
fn a_neighbour_too_slow_to_answer_has_its_chunks_asked_again() {
    let mut p = Pair::new(0..120);
    p.connect();
    p.ann.handle_timeout(p.now + RELAY_EVERY);
    let asked: Vec<u32> = std::iter::from_fn(|| p.ann.poll_output())
        .filter_map(|o| if let ParticipantOutput::RelaySend { msg: Message::Request { chunks, .. }, .. } = o { Some(chunks) } else { None })
        .flatten()
        .collect();
    assert!(!asked.is_empty());
    // Nothing comes for ten seconds.
    let later = p.now + Duration::from_secs(10);
    p.ann.handle_timeout(later);
    let cancels: Vec<u32> = std::iter::from_fn(|| p.ann.poll_output())
        .filter_map(|o| if let ParticipantOutput::RelaySend { msg: Message::Cancel { chunks, .. }, .. } = o { Some(chunks) } else { None })
        .flatten()
        .collect();
    assert!(!cancels.is_empty() && cancels.iter().all(|ix| asked.contains(ix)), "late ones cancelled at bob: {cancels:?}");
}

#[test]
fn without_relaying_an_introduction_is_declined_and_a_forged_one_is_a_broken_host() {
    let now = crate::testing::t0();
    let stream = media().stream;
    let (to_ann, _) = introduce(&host_key(), ROOM, &stream, LINK, (&guest(1), "ann"), (&guest(2), "bob"));
    let mut plain = ParticipantCore::new(now, media(), config(false), &[]);
    while plain.poll_output().is_some() {}
    plain.handle_message(now, Message::RelayIntro(to_ann.clone())).unwrap();
    let outs: Vec<ParticipantOutput> = std::iter::from_fn(|| plain.poll_output()).collect();
    assert!(outs.iter().any(|o| matches!(o, ParticipantOutput::Send(Message::RelayBye { link: LINK, .. }))), "{outs:?}");
    assert!(!outs.iter().any(|o| matches!(o, ParticipantOutput::RelayOpen { .. })));

    let mut ann = participant(now, "ann", 1, 0..0);
    let forger = crate::protocol::identity::HostSecret::from_bytes([9; 32]).host_key();
    let (forged, _) = introduce(&forger, ROOM, &stream, LINK, (&guest(1), "ann"), (&guest(2), "bob"));
    assert!(ann.handle_message(now, Message::RelayIntro(forged)).is_err());
    let (for_carol, _) = introduce(&host_key(), ROOM, &stream, LINK, (&guest(3), "carol"), (&guest(2), "bob"));
    assert!(ann.handle_message(now, Message::RelayIntro(for_carol)).is_err(), "an introduction of someone else");
}

#[test]
fn an_sdp_not_signed_by_the_introduced_neighbour_opens_no_link() {
    let mut p = Pair::new(0..10);
    let stream = media().stream;
    let (to_ann, _) = introduce(&host_key(), ROOM, &stream, LINK, (&guest(1), "ann"), (&guest(2), "bob"));
    p.ann.handle_message(p.now, Message::RelayIntro(to_ann)).unwrap();
    while p.ann.poll_output().is_some() {}
    let mallory = GuestSecret::from_bytes([6; 32]).key_for(ROOM);
    let forged = crate::protocol::relay::RelaySdp::sign(&mallory, ROOM, &stream, LINK, "v=0 mallory".into());
    p.ann.handle_message(p.now, Message::RelaySignal(forged)).unwrap();
    let outs: Vec<ParticipantOutput> = std::iter::from_fn(|| p.ann.poll_output()).collect();
    assert!(!outs.iter().any(|o| matches!(o, ParticipantOutput::RelayRemoteSdp { .. })));
    assert!(outs.iter().any(|o| matches!(o, ParticipantOutput::RelayClose { link: LINK })));
}

#[test]
fn a_neighbour_whose_side_came_up_first_is_heard_and_its_holdings_kept() {
    let mut p = Pair::new(0..120);
    let stream = media().stream;
    let (to_ann, to_bob) = introduce(&host_key(), ROOM, &stream, LINK, (&guest(1), "ann"), (&guest(2), "bob"));
    p.ann.handle_message(p.now, Message::RelayIntro(to_ann)).unwrap();
    p.bob.handle_message(p.now, Message::RelayIntro(to_bob)).unwrap();
    // Bob's channels open first: his hello and holdings reach ann before her own "up".
    p.bob.handle_relay_up(p.now, LINK);
    p.settle();
    assert_eq!(p.ann.relay_report(p.now).unwrap().links, 1, "up on hearing from bob");
    p.advance(Duration::from_secs(3));
    assert!(p.ann.original().has(100), "and bob's holdings were kept: asked of him");
}

#[test]
fn a_neighbour_flooding_messages_loses_its_link() {
    let mut p = Pair::new(0..10);
    p.connect();
    let have = crate::protocol::have::Have::empty(ORIGINAL);
    for _ in 0..2000 {
        p.ann.handle_relay_message(p.now, LINK, Message::Have(have.clone()));
    }
    let outs: Vec<ParticipantOutput> = std::iter::from_fn(|| p.ann.poll_output()).collect();
    assert!(outs.iter().any(|o| matches!(o, ParticipantOutput::RelayClose { link: LINK })));
    assert!(outs.iter().any(|o| matches!(o, ParticipantOutput::Send(Message::RelayBye { link: LINK, .. }))));
}

#[test]
fn seeds_of_chunks_already_held_are_cancelled_at_the_host_and_a_download_limit_takes_no_seeds() {
    let now = crate::testing::t0();
    // Chunks 0-9 held (a resumed copy, say) before the host heard: its seed of 5-14 is half
    // news. What is held is cancelled at once, so the host sends it no second time.
    let mut c = participant(now, "ann", 1, 0..10);
    c.handle_message(now, Message::Seed { space: ORIGINAL, chunks: (5..15).collect() }).unwrap();
    let cancels: Vec<Vec<u32>> = std::iter::from_fn(|| c.poll_output())
        .filter_map(|o| match o {
            ParticipantOutput::Send(Message::Cancel { space: ORIGINAL, chunks }) => Some(chunks),
            _ => None,
        })
        .collect();
    assert_eq!(cancels, vec![(5..10).collect::<Vec<u32>>()]);
    assert!(c.relay_report(now).unwrap().seeds, "no download limit: it takes seeds");
    let mut limited = ParticipantCore::new(
        now,
        media(),
        ParticipantConfig { store: StoreConfig { download_limit: 100_000, ..StoreConfig::default() }, ..relaying("bob", 2) },
        &[],
    );
    assert!(!limited.relay_report(now).unwrap().seeds, "a download limit of its own: it takes none");
}

/// The furthest chunk a participant with `limit` (and no neighbour) asks the host for in 30 s,
/// every request answered at once.
fn furthest_asked_alone(limit: u64) -> u32 {
    furthest_asked_alone_with(StoreConfig { download_limit: limit, ..StoreConfig::default() })
}

fn furthest_asked_alone_with(store: StoreConfig) -> u32 {
    let mut now = crate::testing::t0();
    let m = media();
    let cfg = ParticipantConfig { store, ..relaying("ann", 1) };
    let mut c = ParticipantCore::new(now, m.clone(), cfg, &[]);
    let end = now + Duration::from_secs(30);
    let mut furthest = 0;
    while now < end {
        while let Some(out) = c.poll_output() {
            if let ParticipantOutput::Send(Message::Request { space: ORIGINAL, chunks, .. }) = out {
                for ix in chunks {
                    furthest = furthest.max(ix);
                    c.handle_chunk_parts(now, 100, ORIGINAL, ix, content(&m, ix)).unwrap();
                }
            }
        }
        now = c.poll_timeout().map_or(end, |(t, _)| t.max(now + Duration::from_millis(10))).min(end);
        c.handle_timeout(now);
    }
    furthest
}

#[test]
fn alone_and_taking_no_seeds_it_is_served_beyond_soon_by_the_host() {
    let soon = crate::participant::SOON.as_secs() as u32 * 1000 * 1000 / 8 / (64 << 10) + 2;
    // The host seeds what lies beyond to one that takes seeds: it asks only what is soon.
    assert!(furthest_asked_alone(0) <= soon, "{} with seeds", furthest_asked_alone(0));
    // A download limit near the stream's rate takes no seeds: nobody else would bring the rest.
    let limited = furthest_asked_alone(200_000);
    assert!(limited > 2 * soon, "asked up to {limited} under a limit, alone");
}

#[test]
fn a_saved_copy_gets_what_lies_past_the_seeds_reach_from_the_host_in_a_paused_room() {
    // Seeds reach 30 s past the room (paused at 0 here), neighbours none: the far end of a
    // saved copy would never come.
    let save = StoreConfig { fill_behind: true, on_disk: true, ..StoreConfig::default() };
    let last = media().chunks - 1;
    assert_eq!(furthest_asked_alone_with(save), last);
}

#[test]
fn what_the_reader_is_blocked_on_is_taken_from_a_neighbour_that_gets_it_before_the_host_sends_it() {
    let mut p = Pair::new(0..0);
    p.connect();
    let mut buf = [0u8; 1];
    assert_eq!(p.ann.read_at(ORIGINAL, 0, &mut buf), crate::buffer::Read::Wait);
    p.ann.handle_wake(p.now);
    p.settle();
    assert!(p.ann.original().is_in_flight(0) && p.ann.original().is_critical(0), "asked of the host: nobody else holds it");
    // Half a second on, the host has not sent it to ann yet; bob gets it.
    p.advance(Duration::from_millis(600));
    p.bob.handle_message(p.now, Message::Seed { space: ORIGINAL, chunks: vec![0] }).unwrap();
    p.bob.handle_chunk_parts(p.now, 100, ORIGINAL, 0, content(&media(), 0)).unwrap();
    p.settle();
    // (Asked of the host under half a second ago, it may be on the wire: not yet.)
    p.advance(Duration::from_millis(500));
    assert!(p.ann.original().has(0), "bob brought it");
    let cancelled = |m: &&Message| matches!(m, Message::Cancel { chunks, .. } if chunks.contains(&0));
    assert!(p.sent_host("ann").iter().any(cancelled), "and the host's copy was called off");
}
