//! Identifiers parsed at the edge: once a [`UserId`] exists, it is valid.

use std::fmt;

/// A user id as tokens carry it (`sub`): 1-256 characters, none of them a
/// control character.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(String);

/// Why a string is not a user id.
#[derive(Debug, thiserror::Error)]
#[error("a user id is 1-256 characters, none of them a control character")]
pub struct InvalidUserId;

impl UserId {
    pub fn parse(id: &str) -> Result<UserId, InvalidUserId> {
        if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
            return Err(InvalidUserId);
        }
        Ok(UserId(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::UserId;

    #[test]
    fn user_ids() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("عميل 7").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse(&"x".repeat(257)).is_err());
    }
}
