//! Process-level tests: the real `slipway` binary, real servers on ephemeral loopback ports,
//! real stores, `kill -9` where durability is the point.

mod architecture;
mod blobs;
mod cli;
mod data;
mod harness;
mod load;
mod server;
mod tracking;
mod worker;
