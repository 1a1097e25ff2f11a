//! HTTP tests of the products service through the real app on a free loopback port.

mod helpers;
mod smoke;
