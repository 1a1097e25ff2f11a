//! Integration tests of store-actor: one binary, one module per concern.

mod basics;
mod batch;
mod cli;
mod corruption;
mod crash;
mod feed;
mod helpers;
mod index_mode;
mod model;
mod power_loss;
mod queries;
mod readers;
