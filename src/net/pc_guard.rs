//! A peer connection that closes when its last owner lets go of it.
//!
//! webrtc-rs stops a connection's driver (its ICE agent, UDP sockets, timers and any TURN
//! allocation) only on `close()`: dropping the handle detaches the driver onto the runtime,
//! where it runs on. A set-up cancelled half-way (the newcomer left, a timeout fired, the task
//! was aborted) never reaches an explicit `close()`, so without this every such set-up leaked
//! a socket (TRUST-REVIEW #3).

use std::ops::Deref;
use std::sync::Arc;

use webrtc::peer_connection::PeerConnection;

/// Owns a peer connection; dropping it closes the connection in the background.
pub struct ClosingPc(Arc<dyn PeerConnection>);

impl ClosingPc {
    pub fn new(pc: Arc<dyn PeerConnection>) -> Self {
        ClosingPc(pc)
    }
}

impl Deref for ClosingPc {
    type Target = Arc<dyn PeerConnection>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for ClosingPc {
    fn drop(&mut self) {
        let pc = self.0.clone();
        // `Drop` cannot wait: the close runs as its own task. Closing a closed connection
        // does nothing, so an explicit `close()` before the drop is fine.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let _ = pc.close().await;
                });
            }
            // No runtime (the process is ending): its threads and sockets go with it.
            Err(_) => tracing::debug!("a peer connection dropped outside the runtime is not closed"),
        }
    }
}
