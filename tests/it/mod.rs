mod harness;
mod streaming;
