//! Runtime glue for a Rookery server.
//!
//! For now: reading the operator's `zoo.cfg`/`myid` ([`config`]) and asking a running
//! server a four-letter word ([`four_letter`]). The client listener, request pipeline,
//! peer transport and watch manager will live here too, on tokio.

pub mod config;
pub mod four_letter;

pub use config::{ConfigError, ConfigWarning, ServerConfig, ServerMode};
