//! Mode and ownership of replaced files. The atomic replacement itself is `node::fs::NodeFs::replace`.
use crate::node::NodeLayout;

/// Mode and ownership of a file, kept across replacement and recorded in backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ownership {
    /// Permission bits, written as an octal string ("0600") in JSON.
    #[serde(with = "octal")]
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

mod octal {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = String::deserialize(d)?;
        u32::from_str_radix(&text, 8).map_err(D::Error::custom)
    }
}

impl Ownership {
    pub fn of(layout: &NodeLayout, path: &std::path::Path) -> std::io::Result<Self> {
        Ok(layout.fs().metadata(path)?.ownership())
    }
}
