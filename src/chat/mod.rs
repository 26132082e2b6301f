//! Chat use cases: start a turn, run and record the call, fit the context, group the history.

pub mod context;
pub mod groups;
pub mod record;
pub mod runner;
pub mod running;
pub mod turn;
