//! Which execution client is on the other end.

use serde::{Deserialize, Serialize};

/// The execution client implementation, detected at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// go-ethereum.
    Geth,
    /// Reth.
    Reth,
    /// Nethermind.
    Nethermind,
    /// Hyperledger Besu.
    Besu,
    /// Erigon.
    Erigon,
    /// EthereumJS.
    #[serde(rename = "ethereumjs")]
    EthereumJs,
    /// Anything else (or not yet detected).
    #[default]
    Unknown,
}

impl ClientKind {
    /// From an `engine_getClientVersionV1` two-letter code (`GE`, `RH`, `NM`, `BU`, `EG`, `EJ`).
    /// Codes of clients we have no special knowledge of (e.g. `EX`, `NE`) map to `Unknown`.
    pub fn from_client_code(code: &str) -> Self {
        match code.trim().to_ascii_uppercase().as_str() {
            "GE" => Self::Geth,
            "RH" => Self::Reth,
            "NM" => Self::Nethermind,
            "BU" => Self::Besu,
            "EG" => Self::Erigon,
            "EJ" => Self::EthereumJs,
            _ => Self::Unknown,
        }
    }

    /// From a `web3_clientVersion` string such as `Geth/v1.14.0-stable/linux-amd64/go1.22`,
    /// `reth/v1.1.0-…`, `Nethermind/v1.25…`, `besu/v24…`, `erigon/2.60…`,
    /// `EthereumJS/0.10.5/linux/node20`.
    pub fn from_web3_client_version(version: &str) -> Self {
        let name = version
            .split('/')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "geth" | "go-ethereum" => Self::Geth,
            "reth" => Self::Reth,
            "nethermind" => Self::Nethermind,
            "besu" => Self::Besu,
            "erigon" => Self::Erigon,
            "ethereumjs" => Self::EthereumJs,
            _ => Self::Unknown,
        }
    }

    /// The two-letter code of `engine_getClientVersionV1`, when this kind has one.
    pub const fn client_code(self) -> Option<&'static str> {
        Some(match self {
            Self::Geth => "GE",
            Self::Reth => "RH",
            Self::Nethermind => "NM",
            Self::Besu => "BU",
            Self::Erigon => "EG",
            Self::EthereumJs => "EJ",
            Self::Unknown => return None,
        })
    }

    /// A lowercase name for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Geth => "geth",
            Self::Reth => "reth",
            Self::Nethermind => "nethermind",
            Self::Besu => "besu",
            Self::Erigon => "erigon",
            Self::EthereumJs => "ethereumjs",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ClientKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who the execution client says it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClientIdentity {
    /// The detected implementation.
    pub kind: ClientKind,
    /// Client name as reported (e.g. `Geth`, `reth`).
    pub name: String,
    /// Version as reported (e.g. `v1.14.0`), or the whole `web3_clientVersion` string.
    pub version: String,
    /// Commit (4 bytes hex) when `engine_getClientVersionV1` answered.
    pub commit: Option<String>,
    /// How the identity was learnt.
    pub source: IdentitySource,
}

/// Which call told us the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// `engine_getClientVersionV1`.
    ClientVersionV1,
    /// `web3_clientVersion` (after `engine_getClientVersionV1` failed).
    Web3ClientVersion,
    /// Neither call answered.
    #[default]
    Undetected,
}

impl ClientIdentity {
    /// From a `web3_clientVersion` string.
    pub fn from_web3_client_version(version: &str) -> Self {
        let mut parts = version.splitn(3, '/');
        let name = parts.next().unwrap_or_default().to_owned();
        let ver = parts.next().unwrap_or_default().to_owned();
        Self {
            kind: ClientKind::from_web3_client_version(version),
            name,
            version: ver,
            commit: None,
            source: IdentitySource::Web3ClientVersion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("Geth/v1.14.11-stable-f3c696fa/linux-amd64/go1.23.2", ClientKind::Geth)]
    #[case("reth/v1.1.0-1a4c3c7/x86_64-unknown-linux-gnu", ClientKind::Reth)]
    #[case(
        "Nethermind/v1.29.0+3e3d3a8c/linux-x64/dotnet8.0.10",
        ClientKind::Nethermind
    )]
    #[case("besu/v24.10.0/linux-x86_64/openjdk-java-21", ClientKind::Besu)]
    #[case("erigon/2.60.10/linux-amd64/go1.22.7", ClientKind::Erigon)]
    #[case("EthereumJS/0.10.5/linux/node20.20.2", ClientKind::EthereumJs)]
    #[case("ethrex/v3.0.0", ClientKind::Unknown)]
    #[case("", ClientKind::Unknown)]
    fn web3_client_version_strings(#[case] s: &str, #[case] kind: ClientKind) {
        assert_eq!(ClientKind::from_web3_client_version(s), kind);
    }

    #[rstest]
    #[case("GE", ClientKind::Geth)]
    #[case("RH", ClientKind::Reth)]
    #[case("NM", ClientKind::Nethermind)]
    #[case("BU", ClientKind::Besu)]
    #[case("EG", ClientKind::Erigon)]
    #[case("EJ", ClientKind::EthereumJs)]
    #[case("ej", ClientKind::EthereumJs)]
    #[case("EX", ClientKind::Unknown)]
    #[case("NE", ClientKind::Unknown)]
    fn client_version_v1_codes(#[case] code: &str, #[case] kind: ClientKind) {
        assert_eq!(ClientKind::from_client_code(code), kind);
        if kind != ClientKind::Unknown {
            assert_eq!(kind.client_code(), Some(code.to_ascii_uppercase().as_str()));
        }
    }

    #[test]
    fn identity_splits_name_and_version() {
        let id = ClientIdentity::from_web3_client_version("EthereumJS/0.10.5/linux/node20");
        assert_eq!(id.kind, ClientKind::EthereumJs);
        assert_eq!(id.name, "EthereumJS");
        assert_eq!(id.version, "0.10.5");
        assert_eq!(id.source, IdentitySource::Web3ClientVersion);
    }
}
