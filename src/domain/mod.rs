//! Validated domain types. Input is parsed into these at the edge (forms, CLI, API); code deeper in
//! never re-checks them. Each constructor's error is a sentence a person can act on.

mod email;
mod name;
mod params;
mod password;
mod role;

pub use email::Email;
pub use name::DisplayName;
pub use params::{ParamError, Params, RawParams};
pub use password::{NewPassword, hash_password, is_invisible, verify_password};
pub use role::Role;
