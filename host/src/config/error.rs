//! Why a config is refused: the field that broke a rule, or a body that is
//! not the JSON the config's shape asks for.

/// A config that breaks a rule, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why a config body was refused before validation.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON at all (syntax error, truncated input).
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// JSON of the wrong shape: unknown or missing field, wrong type.
    #[error("{0}")]
    Invalid(ConfigError),
}

/// Parses a JSON body into `T`, naming the field path of any shape error.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let field = if path == "." {
                        "config".to_owned()
                    } else {
                        path
                    };
                    Err(ParseError::Invalid(ConfigError::new(
                        field,
                        strip_position(&inner),
                    )))
                }
                _ => Err(ParseError::Malformed(inner.to_string())),
            }
        }
    }
}

fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}
