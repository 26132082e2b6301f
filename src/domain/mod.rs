//! Validated domain types. Input is parsed into these at the edge (forms, CLI, API); code deeper in
//! never re-checks them. Each constructor's error is a sentence a person can act on.

pub mod api_key;
mod call;
mod call_filter;
mod email;
mod name;
pub mod params;
mod password;
mod role;

pub use api_key::{KeyLifetime, KeyName};
pub use call::{CallStatus, MessageRole, Source, UsageSource};
pub use call_filter::{
    CallFilter, CallSort, Cursor, CursorValue, FilterError, RawCallFilter, is_id, parse_streamed,
};
pub use email::Email;
pub use name::DisplayName;
pub use params::{ParamError, Params, RawParams};
pub use password::{
    HashMemory, NewPassword, hash_password, hash_password_in, is_invisible, verify_password,
    verify_password_in,
};
pub use role::Role;
