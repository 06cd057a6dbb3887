//! Stand-in for `lighthouse_wrapper::execution_layer` (441fc16): the names the shim uses.

/// The crate-root `execution_layer::Error` (lib.rs:86-108), the variants the node touches.
#[derive(Debug)]
pub enum Error {
    MissingLatestValidHash,
    InvalidPayloadBody(String),
}

/// `BlockByNumberQuery` (engine_api.rs:116-120).
#[derive(Debug, Clone, Copy)]
pub enum BlockByNumberQuery<'a> {
    Tag(&'a str),
}

pub mod auth {
    /// `JwtKey` (auth.rs:27-60).
    pub struct JwtKey([u8; 32]);

    impl JwtKey {
        pub fn from_slice(key: &[u8]) -> Result<Self, String> {
            key.try_into()
                .map(Self)
                .map_err(|_| format!("Invalid key length. Expected 32 got {}", key.len()))
        }

        pub fn as_bytes(&self) -> &[u8] {
            &self.0
        }
    }
}
