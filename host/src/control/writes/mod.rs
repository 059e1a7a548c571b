//! The writes, one file per resource: each takes the write lock, validates
//! against the current state, commits one store transaction whose compares
//! guard what it read, and serves what committed ([`super::plane`]).

pub mod certificates;
pub mod distributions;
pub mod hooks;
pub mod invalidations;
pub mod policies;
pub mod secrets;
