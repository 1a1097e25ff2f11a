//! HTTP tests of the orders service: a real orders app and a real products app, in-process on
//! free loopback ports.

mod create;
mod delete;
mod disk;
mod events;
mod helpers;
mod holds;
mod idempotency;
mod ops;
mod ownership;
mod products_down;
mod read;
mod reserve_client;
mod resync;
mod stats;
mod stock;
mod update;
