/// The name a person shows to others: optional, trimmed, at most 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<DisplayName, String> {
        let s = raw.trim();
        if s.chars().count() > 100 {
            return Err("Names are limited to 100 characters.".into());
        }
        if s.chars().any(char::is_control) {
            return Err("Names cannot contain control characters.".into());
        }
        Ok(DisplayName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
