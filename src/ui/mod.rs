//! Terminal UI pieces shared by the views: the key table.

pub mod keys;
