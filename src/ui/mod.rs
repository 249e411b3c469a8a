//! Terminal UI: the host dashboard as a fold over engine events ([`host_model`]) and the participant's view ([`join_app`]), its widgets and
//! views, and the key table shared by every view. Views draw snapshots; none owns networking.

pub mod format;
pub mod host_app;
pub mod host_model;
pub mod host_view;
pub mod join_app;
pub mod join_view;
pub mod keys;
pub mod moderation;
pub mod overlay;
pub mod palette;
pub mod peers;
pub mod picture_pane;
pub mod piece_map;
pub mod playbar;
pub mod recent;
pub mod term;
pub mod view_state;
