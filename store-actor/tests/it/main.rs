//! Integration tests of store-actor: one binary, one module per concern.

mod basics;
mod batch;
mod cli;
mod corruption;
mod crash;
mod feed;
mod helpers;
mod model;
mod power_loss;
mod queries;
mod readers;
