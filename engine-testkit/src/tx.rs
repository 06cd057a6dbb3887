//! Signed test transactions.

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;

/// Errors making a test transaction.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// The private key is not a valid secp256k1 key.
    #[error("invalid private key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// An EIP-1559 transaction, signed with `private_key_hex`, encoded for
/// `eth_sendRawTransaction`. Returns the raw bytes and the transaction hash.
#[allow(clippy::too_many_arguments)]
pub fn signed_eip1559(
    private_key_hex: &str,
    chain_id: u64,
    nonce: u64,
    to: TxKind,
    value: U256,
    input: Bytes,
    gas_limit: u64,
) -> Result<(Bytes, B256), TxError> {
    let signer: PrivateKeySigner = private_key_hex
        .parse()
        .map_err(|e| TxError::Key(format!("{e}")))?;
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to,
        value,
        access_list: Default::default(),
        input,
    };
    let signature = signer
        .sign_hash_sync(&tx.signature_hash())
        .map_err(|e| TxError::Sign(e.to_string()))?;
    let envelope: TxEnvelope = tx.into_signed(signature).into();
    Ok((Bytes::from(envelope.encoded_2718()), *envelope.tx_hash()))
}

/// A plain value transfer (21 000 gas).
pub fn signed_transfer(
    private_key_hex: &str,
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
) -> Result<(Bytes, B256), TxError> {
    signed_eip1559(
        private_key_hex,
        chain_id,
        nonce,
        TxKind::Call(to),
        value,
        Bytes::new(),
        21_000,
    )
}

/// A legacy (type 0, EIP-155) value transfer at `gas_price` wei.
pub fn signed_legacy(
    private_key_hex: &str,
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
    gas_price: u128,
) -> Result<(Bytes, B256), TxError> {
    let tx = alloy_consensus::TxLegacy {
        chain_id: Some(chain_id),
        nonce,
        gas_price,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value,
        input: Bytes::new(),
    };
    sign(private_key_hex, tx)
}

/// An EIP-2930 (type 1) value transfer at `gas_price` wei, with an access list naming `to`.
pub fn signed_eip2930(
    private_key_hex: &str,
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
    gas_price: u128,
) -> Result<(Bytes, B256), TxError> {
    let tx = alloy_consensus::TxEip2930 {
        chain_id,
        nonce,
        gas_price,
        gas_limit: 30_000,
        to: TxKind::Call(to),
        value,
        access_list: alloy_eips::eip2930::AccessList(vec![alloy_eips::eip2930::AccessListItem {
            address: to,
            storage_keys: Vec::new(),
        }]),
        input: Bytes::new(),
    };
    sign(private_key_hex, tx)
}

/// An EIP-1559 (type 2) value transfer with these fee caps.
pub fn signed_eip1559_transfer(
    private_key_hex: &str,
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
    max_fee_per_gas: u128,
    max_priority_fee_per_gas: u128,
) -> Result<(Bytes, B256), TxError> {
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas,
        max_priority_fee_per_gas,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input: Bytes::new(),
    };
    sign(private_key_hex, tx)
}

fn sign<T>(private_key_hex: &str, tx: T) -> Result<(Bytes, B256), TxError>
where
    T: SignableTransaction<alloy_primitives::Signature>,
    alloy_consensus::Signed<T>: Into<TxEnvelope>,
{
    let signer: PrivateKeySigner = private_key_hex
        .parse()
        .map_err(|e| TxError::Key(format!("{e}")))?;
    let signature = signer
        .sign_hash_sync(&tx.signature_hash())
        .map_err(|e| TxError::Sign(e.to_string()))?;
    let envelope: TxEnvelope = tx.into_signed(signature).into();
    Ok((Bytes::from(envelope.encoded_2718()), *envelope.tx_hash()))
}
