//! Integration tests of store-actor: one binary, one module per concern.

mod basics;
mod corruption;
mod helpers;
mod power_loss;
