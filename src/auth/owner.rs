//! Who a session belongs to: the fingerprint of the API token that created
//! it (see `tokens`), or nobody when the server runs without tokens.

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Owner(pub Option<String>);

impl Owner {
    /// The owner as a label value: the fingerprint, or empty for nobody.
    pub fn label(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    pub fn from_label(s: &str) -> Owner {
        Owner((!s.is_empty()).then(|| s.to_string()))
    }
}
