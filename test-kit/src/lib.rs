//! What every test suite of the workspace shares, so that each suite's own helpers keep only
//! what is specific to its service:
//!
//! - [`problem`]: assertions on problem+json answers, and small readers of JSON bodies.
//! - [`sse`]: one Server-Sent Events reader.
//! - [`tokens`]: minting tokens for test users.
//! - [`http`]: a client, authenticated requests, following a list's pages.
//! - [`poll`]: waiting for a condition with a deadline instead of sleeping.
//! - [`redactions`]: the insta redactions of ids, timestamps, owners and cursors.
//! - [`fake_products`]: a stand-in products server that answers what a test says.
//! - [`process`]: the real binaries as child processes.
//! - [`openapi`]: checks of the services' OpenAPI documents.
//! - [`blocking`]: a minimal blocking HTTP/1.1 client for the instruction-count examples.

#![forbid(unsafe_code)]

pub mod blocking;
pub mod fake_products;
pub mod http;
pub mod openapi;
pub mod poll;
pub mod problem;
pub mod process;
pub mod redactions;
pub mod sse;
pub mod tokens;

pub use poll::{DEADLINE, POLL, eventually};
pub use problem::{assert_problem, error_fields, header, id_of, ids, scrub};
pub use redactions::redactions;
pub use sse::{Events, Frame};
