//! `eth_getLogs` filters: parsed from JSON the way Geth parses them, matched against logs.

use alloy_primitives::{Address, B256, Log};
use engine_types::codes;
use serde_json::Value;

use super::chain::RpcFailure;

/// A block bound of a range filter, before it is resolved against the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockBound {
    /// `latest` and `pending` (the mock has no pending block), also the default.
    Latest,
    /// `safe`.
    Safe,
    /// `finalized`.
    Finalized,
    /// `earliest` or a hex number.
    Number(u64),
}

/// Which blocks a filter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockSelection {
    /// Canonical blocks `fromBlock..=toBlock`.
    Range {
        /// `fromBlock`.
        from: BlockBound,
        /// `toBlock`.
        to: BlockBound,
    },
    /// The one block with this hash, canonical or not (as Geth does).
    Hash(B256),
}

/// A parsed `eth_getLogs` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogFilter {
    pub(crate) blocks: BlockSelection,
    /// Any of these emitters; empty: any emitter.
    addresses: Vec<Address>,
    /// Per position, any of these topics; an empty position matches anything.
    topics: Vec<Vec<B256>>,
}

fn invalid(message: impl Into<String>) -> RpcFailure {
    RpcFailure {
        code: codes::INVALID_PARAMS,
        message: message.into(),
    }
}

fn hash(value: &Value, what: &str) -> Result<B256, RpcFailure> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("invalid {what}: {value}")))
}

fn bound(value: Option<&Value>, name: &str) -> Result<BlockBound, RpcFailure> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(BlockBound::Latest);
    };
    Ok(match value.as_str() {
        Some("latest" | "pending") => BlockBound::Latest,
        Some("safe") => BlockBound::Safe,
        Some("finalized") => BlockBound::Finalized,
        Some("earliest") => BlockBound::Number(0),
        Some(s) if s.starts_with("0x") => u64::from_str_radix(&s[2..], 16)
            .map(BlockBound::Number)
            .map_err(|_| invalid(format!("invalid {name}: {s}")))?,
        _ => return Err(invalid(format!("invalid {name}: {value}"))),
    })
}

impl LogFilter {
    /// Parses `params[0]` of `eth_getLogs`: `blockHash` or `fromBlock`/`toBlock` (default
    /// `latest`), `address` (one or a list) and positional `topics`, where `null` (also inside
    /// a nested list) is a wildcard and a nested list is an OR.
    pub(crate) fn parse(value: &Value) -> Result<Self, RpcFailure> {
        let Some(object) = value.as_object() else {
            return Err(invalid("invalid params[0]: expected a filter object"));
        };
        let field = |name: &str| object.get(name).filter(|v| !v.is_null());
        let blocks = match field("blockHash") {
            Some(_) if field("fromBlock").is_some() || field("toBlock").is_some() => {
                return Err(invalid(
                    "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other",
                ));
            }
            Some(h) => BlockSelection::Hash(hash(h, "blockHash")?),
            None => BlockSelection::Range {
                from: bound(field("fromBlock"), "fromBlock")?,
                to: bound(field("toBlock"), "toBlock")?,
            },
        };
        let address = |v: &Value| {
            v.as_str()
                .and_then(|s| s.parse::<Address>().ok())
                .ok_or_else(|| invalid(format!("invalid address: {v}")))
        };
        let addresses = match field("address") {
            None => Vec::new(),
            Some(Value::Array(list)) => list.iter().map(address).collect::<Result<_, _>>()?,
            Some(one) => vec![address(one)?],
        };
        let topics = match field("topics") {
            None => Vec::new(),
            Some(Value::Array(positions)) => {
                if positions.len() > 4 {
                    return Err(invalid("exceed max topics"));
                }
                positions
                    .iter()
                    .map(|position| match position {
                        Value::Null => Ok(Vec::new()),
                        // A null among the alternatives makes the position a wildcard.
                        Value::Array(any) if any.iter().any(Value::is_null) => Ok(Vec::new()),
                        Value::Array(any) => any.iter().map(|t| hash(t, "topic")).collect(),
                        one => Ok(vec![hash(one, "topic")?]),
                    })
                    .collect::<Result<_, _>>()?
            }
            Some(other) => return Err(invalid(format!("invalid topics: {other}"))),
        };
        Ok(Self {
            blocks,
            addresses,
            topics,
        })
    }

    /// Whether `log` passes the address and topic criteria. Like Geth, a filter with more
    /// topic positions than the log has topics never matches, even if the extra ones are
    /// wildcards.
    pub(crate) fn matches(&self, log: &Log) -> bool {
        if !self.addresses.is_empty() && !self.addresses.contains(&log.address) {
            return false;
        }
        let topics = log.topics();
        if self.topics.len() > topics.len() {
            return false;
        }
        self.topics
            .iter()
            .zip(topics)
            .all(|(any, topic)| any.is_empty() || any.contains(topic))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use alloy_primitives::{Bytes, LogData};
    use serde_json::json;

    use super::*;

    fn log(address: Address, topics: &[B256]) -> Log {
        Log {
            address,
            data: LogData::new_unchecked(topics.to_vec(), Bytes::new()),
        }
    }

    #[test]
    fn ranges_default_to_latest_and_accept_tags_and_numbers() {
        let f = LogFilter::parse(&json!({})).unwrap();
        assert_eq!(
            f.blocks,
            BlockSelection::Range {
                from: BlockBound::Latest,
                to: BlockBound::Latest
            }
        );
        let f = LogFilter::parse(&json!({ "fromBlock": "earliest", "toBlock": "0x1f" })).unwrap();
        assert_eq!(
            f.blocks,
            BlockSelection::Range {
                from: BlockBound::Number(0),
                to: BlockBound::Number(31)
            }
        );
        let f = LogFilter::parse(&json!({ "fromBlock": "safe", "toBlock": "finalized" })).unwrap();
        assert_eq!(
            f.blocks,
            BlockSelection::Range {
                from: BlockBound::Safe,
                to: BlockBound::Finalized
            }
        );
        assert!(LogFilter::parse(&json!({ "fromBlock": 5 })).is_err());
        assert!(LogFilter::parse(&json!({ "toBlock": "0xzz" })).is_err());
    }

    #[test]
    fn block_hash_excludes_a_range() {
        let h = B256::repeat_byte(7);
        let f = LogFilter::parse(&json!({ "blockHash": h })).unwrap();
        assert_eq!(f.blocks, BlockSelection::Hash(h));
        let both = LogFilter::parse(&json!({ "blockHash": h, "fromBlock": "0x1" }));
        assert!(both.unwrap_err().message.contains("cannot specify both"));
    }

    #[test]
    fn address_is_one_or_any_of_a_list() {
        let (a, b, c) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(3),
        );
        let one = LogFilter::parse(&json!({ "address": a })).unwrap();
        assert!(one.matches(&log(a, &[])) && !one.matches(&log(b, &[])));
        let list = LogFilter::parse(&json!({ "address": [a, b] })).unwrap();
        assert!(list.matches(&log(b, &[])) && !list.matches(&log(c, &[])));
        assert!(LogFilter::parse(&json!({ "address": "0x12" })).is_err());
    }

    #[test]
    fn topics_are_positional_with_wildcards_and_alternatives() {
        let a = Address::ZERO;
        let (t0, t1, t2) = (
            B256::repeat_byte(1),
            B256::repeat_byte(2),
            B256::repeat_byte(3),
        );
        let two = log(a, &[t0, t1]);
        let parse = |topics: Value| LogFilter::parse(&json!({ "topics": topics })).unwrap();
        assert!(parse(json!([t0])).matches(&two));
        assert!(
            !parse(json!([t1])).matches(&two),
            "positional, not any-position"
        );
        assert!(parse(json!([null, t1])).matches(&two));
        assert!(
            parse(json!([[t2, t0], [t1]])).matches(&two),
            "nested list is an OR"
        );
        assert!(!parse(json!([[t2], null])).matches(&two));
        assert!(
            parse(json!([[t2, null], t1])).matches(&two),
            "null inside is a wildcard"
        );
        assert!(
            parse(json!([[], t1])).matches(&two),
            "empty list is a wildcard"
        );
        assert!(
            !parse(json!([t0, t1, null])).matches(&two),
            "more positions than topics"
        );
        assert!(parse(json!([])).matches(&two));
        let five = LogFilter::parse(&json!({ "topics": [null, null, null, null, null] }));
        assert!(five.is_err());
        assert!(LogFilter::parse(&json!({ "topics": ["0x01"] })).is_err());
    }
}
