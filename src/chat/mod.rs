//! Chat use cases: start a turn in a conversation, fit its context, group the history.

pub mod context;
pub mod groups;
pub mod turn;
