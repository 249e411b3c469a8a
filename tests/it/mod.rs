mod harness;
mod streaming;
mod server;
