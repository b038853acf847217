use std::fmt;

/// A key path such as `network.interfaces[0].addresses[1]`, built while
/// walking a document so each problem can say where it is.
#[derive(Debug, Clone, Default)]
pub struct KeyPath(String);

impl KeyPath {
    pub fn root() -> KeyPath {
        KeyPath(String::new())
    }

    pub fn key(&self, key: &str) -> KeyPath {
        if self.0.is_empty() {
            KeyPath(key.to_string())
        } else {
            KeyPath(format!("{}.{key}", self.0))
        }
    }

    pub fn index(&self, i: usize) -> KeyPath {
        KeyPath(format!("{}[{i}]", self.0))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
