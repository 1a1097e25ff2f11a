//! HTTP tests of the products service through the real app on a free loopback port.

mod auth;
mod budget;
mod concurrency;
mod disk;
mod errors;
mod events;
mod helpers;
mod idempotency;
mod list;
mod ops;
mod products;
mod reservations;
mod restart;
mod slow;
mod smoke;
mod stock;
