//! The closed vocabularies of a call record: how it ended, where it came from, whose token counts it holds, and
//! the roles of the messages it sent. Stored as text; parsed back on every read, so a value outside the set is
//! an error, not a silent string.

/// A text-backed enum: `as_str`, `Display`, `TryFrom<String>` (for `#[sqlx(try_from = "String")]`) and
/// `parse`, all from one list of (variant, text) pairs.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            #[default]
            $($variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value named `s`, if it is one.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $name::parse(&s).ok_or_else(|| format!(concat!("unknown ", stringify!($name), " '{}'"), s))
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

text_enum! {
    /// How a call stands: `pending` from before the provider is called until its end is recorded.
    CallStatus {
        Pending => "pending",
        Ok => "ok",
        Error => "error",
        Cancelled => "cancelled",
        Interrupted => "interrupted",
    }
}

text_enum! {
    /// Where a call came from: the chat pages, or the OpenAI-compatible API.
    Source {
        Ui => "ui",
        Api => "api",
    }
}

text_enum! {
    /// Whose token counts a record holds: the provider's `usage`, llmeta's estimate (the provider reported
    /// none), or none at all (nothing was generated and the provider reported nothing, so nothing is billed).
    UsageSource {
        None => "none",
        Provider => "provider",
        Estimate => "estimate",
    }
}

text_enum! {
    /// The role of a message sent to a model (OpenAI's Chat Completions roles; `developer` is OpenAI's newer
    /// name for `system`).
    MessageRole {
        User => "user",
        System => "system",
        Developer => "developer",
        Assistant => "assistant",
        Tool => "tool",
    }
}

impl CallStatus {
    /// Whether the call is over (anything but `pending`).
    pub fn is_final(self) -> bool {
        self != CallStatus::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_and_strangers_are_refused() {
        for s in CallStatus::ALL {
            assert_eq!(CallStatus::try_from(s.as_str().to_string()), Ok(*s));
        }
        for s in Source::ALL {
            assert_eq!(Source::parse(s.as_str()), Some(*s));
        }
        assert!(CallStatus::try_from("done".to_string()).is_err());
        assert_eq!(UsageSource::default(), UsageSource::None);
        assert_eq!(MessageRole::parse("tool"), Some(MessageRole::Tool));
        assert_eq!(MessageRole::parse("function"), None);
        assert!(CallStatus::Ok == "ok");
    }
}
