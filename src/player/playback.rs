//! The participant's decoders at the edge: the decoder thread over a store, a second one
//! during a quality switch, the frame queues between them and the view, and the sound. What
//! the picture shows and when is the core's presenter's decision
//! ([`crate::core::participant::presenter`]): this carries out its [`PictureAction`]s and
//! tells it what the queues hold ([`Playback::view`]).

use std::sync::Arc;

use crate::core::clock::Micros;
use crate::core::participant::{PictureAction, PictureView};
use crate::media::avio::ByteSource;
use crate::media::decode::{self, FrameQueue, VideoFrame};
use crate::player::audio::{self, AudioClock, AudioOut, AudioQueue, ClockPoint, SoundMeter, SoundStats};

/// Called when a queue has news for the presenter.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// The decoders of one participant.
pub struct Playback {
    queue: Arc<FrameQueue>,
    decoder: Option<std::thread::JoinHandle<()>>,
    /// A decoder started on another source (a quality switch), shown once the presenter says.
    incoming: Option<(Arc<FrameQueue>, std::thread::JoinHandle<()>)>,
    current: Option<Arc<VideoFrame>>,
    new_frame: bool,
    sound: Option<AudioOut>,
    audio_clock: Arc<AudioClock>,
    meter: Arc<SoundMeter>,
    wake: Waker,
}

impl Playback {
    /// Starts decoding `source`; with `pictures` a view draws the frames (they have pixels
    /// from the first, scaled to the view's size once it says it), else they have none.
    /// With `sound`, audio plays on the default output device when there is one. `wake` is
    /// called when the decoders have news.
    pub fn start(source: Box<dyn ByteSource>, pictures: bool, sound: bool, wake: Waker) -> Playback {
        let clock = AudioClock::new();
        let meter = Arc::new(SoundMeter::default());
        let (out, audio_queue) = if sound { open_sound(&clock, &meter) } else { (None, None) };
        let queue = FrameQueue::with_audio(8, None, audio_queue);
        if pictures {
            queue.want_pictures();
        }
        queue.set_waker(wake.clone());
        let decoder = decode::spawn(source, queue.clone());
        Playback { queue, decoder: Some(decoder), incoming: None, current: None, new_frame: false, sound: out, audio_clock: clock, meter, wake }
    }

    /// Playback that decodes nothing (a participant that only fetches, as the throughput
    /// benchmark does).
    pub fn inert() -> Playback {
        let wake: Waker = Arc::new(|| {});
        let queue = FrameQueue::new(1, None);
        Playback {
            queue,
            decoder: None,
            incoming: None,
            current: None,
            new_frame: false,
            sound: None,
            audio_clock: AudioClock::new(),
            meter: Arc::default(),
            wake,
        }
    }

    /// What the queues hold, for the presenter.
    pub fn view(&self) -> PictureView {
        PictureView { current: self.queue.view(), incoming: self.incoming.as_ref().map(|(q, _)| q.view()), frame_us: self.queue.info().map(|i| i.frame_us) }
    }

    /// Carries out what the presenter decided.
    pub fn apply(&mut self, action: PictureAction) {
        match action {
            PictureAction::Seek(t) => {
                self.queue.seek(t);
                if let Some((q, _)) = &self.incoming {
                    q.seek(t);
                }
                self.current = None;
            }
            PictureAction::DropIncoming(_) => self.abandon_switch(),
            PictureAction::Switch => self.switch(),
            PictureAction::Pop(n) => {
                if let Some(f) = self.queue.pop_n(n) {
                    self.current = Some(Arc::new(f));
                    self.new_frame = true;
                }
            }
            PictureAction::SoundClock { playing, position_us, at, rate } => {
                if self.sound.is_some() {
                    self.audio_clock.set(ClockPoint { playing, position_us, at, rate });
                }
            }
        }
    }

    /// Starts decoding `source` beside the current decoder, from `from_us`; `shift` is the
    /// room position of the source's time zero (a rendition), `None` for the original. A
    /// switch still under way is abandoned.
    pub fn switch_source(&mut self, source: Box<dyn ByteSource>, shift: Option<Micros>, from_us: Micros) {
        self.abandon_switch();
        let q = FrameQueue::with_shift(8, self.queue.target(), self.queue.audio(), shift);
        if self.queue.wants_pictures() {
            q.want_pictures();
        }
        q.set_waker(self.wake.clone());
        // Not `seek`: that would drop the sound the current decoder has queued, which plays
        // on until the picture moves over.
        q.start_at(from_us);
        let decoder = decode::spawn(source, q.clone());
        self.incoming = Some((q, decoder));
    }

    /// Gives up a switch under way (the picture stays where it is).
    pub fn abandon_switch(&mut self) {
        if let Some((q, _)) = self.incoming.take() {
            q.close();
        }
    }

    /// The picture moves to the incoming decoder.
    fn switch(&mut self) {
        let Some((q, decoder)) = self.incoming.take() else { return };
        self.queue.close();
        // The old decoder may be blocked on a read; its source is cancelled by the engine,
        // and the thread ends on its own.
        drop(self.decoder.replace(decoder));
        self.queue = q;
        self.current = None;
    }

    /// The frame to draw, once per new frame.
    pub fn take_new_frame(&mut self) -> Option<Arc<VideoFrame>> {
        if std::mem::take(&mut self.new_frame) { self.current.clone() } else { None }
    }

    /// The decoder's frame queue (the view sets the picture size on it).
    pub fn queue(&self) -> Arc<FrameQueue> {
        self.queue.clone()
    }

    /// Sound played so far, when a device plays it.
    pub fn sound_stats(&self) -> Option<SoundStats> {
        self.sound.as_ref().map(|_| self.meter.stats())
    }

    /// Stops the decoders (the stores must be closed too, to free a blocked read).
    pub fn stop(&mut self) {
        self.queue.close();
        if let Some((q, t)) = self.incoming.take() {
            q.close();
            let _ = t.join();
        }
        if let Some(t) = self.decoder.take() {
            let _ = t.join();
        }
    }
}

fn open_sound(clock: &Arc<AudioClock>, meter: &Arc<SoundMeter>) -> (Option<AudioOut>, Option<Arc<AudioQueue>>) {
    match audio::open(AudioQueue::new, clock.clone(), meter.clone()) {
        Ok((out, q)) => {
            tracing::info!("sound on the default output device at {} Hz", q.rate);
            (Some(out), Some(q))
        }
        Err(why) => {
            tracing::info!("no sound: {why}; picture only");
            (None, None)
        }
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        self.queue.close();
        if let Some((q, _)) = &self.incoming {
            q.close();
        }
    }
}
