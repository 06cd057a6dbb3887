//! [`LegacyEngine`] for the adapter: each of the node's calls routed by the current mode.

use std::{sync::atomic::Ordering, time::Duration};

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionData, ExecutionPayload, ExecutionPayloadBodiesV1};
use alloy_rpc_types_eth::{Block, TransactionReceipt};
use engine_types::{AddBalance, EngineError};

use super::{MigrationAdapter, MigrationMode, Operation, ShadowWork, turn::Path};
use crate::legacy::{LegacyEngine, MigrationPath, Mismatch};

impl<L, A> LegacyEngine for MigrationAdapter<L, A>
where
    L: MigrationPath + 'static,
    A: MigrationPath + 'static,
{
    async fn build_block(
        &self,
        timestamp: Duration,
        payload_head: Option<B256>,
        add_balances: Vec<AddBalance>,
    ) -> Result<ExecutionData, EngineError> {
        // The epoch before the mode: a call that began in shadow mode and ends after a switch
        // queues its shadow work under the old epoch, so it is dropped.
        let epoch = self.epoch.load(Ordering::Acquire);
        let mode = self.mode();
        let p = &self.paths;
        let result = match mode {
            MigrationMode::Parallel => {
                let (l, a) = self
                    .parallel(
                        Operation::Build,
                        p.legacy
                            .build_block(timestamp, payload_head, add_balances.clone()),
                        p.actor
                            .build_block(timestamp, payload_head, add_balances.clone()),
                    )
                    .await;
                if let Some(a) = &a {
                    p.compare_outcomes(Operation::Build, &l, a, |l, a| {
                        p.validator.compare(&l.payload, &a.payload)
                    });
                }
                l
            }
            _ => {
                let answer = Self::answering(mode, timestamp.as_secs());
                let (result, _) = self
                    .write(mode, Operation::Build, answer, |path| {
                        let peg_ins = add_balances.clone();
                        async move {
                            match path {
                                Path::Legacy => {
                                    p.legacy.build_block(timestamp, payload_head, peg_ins).await
                                }
                                Path::Actor => {
                                    p.actor.build_block(timestamp, payload_head, peg_ins).await
                                }
                            }
                        }
                    })
                    .await;
                if let (MigrationMode::Shadow, Ok(built)) = (mode, &result) {
                    // The actor builds on the parent legacy built on, whatever its own head.
                    self.enqueue(
                        epoch,
                        ShadowWork::Build {
                            timestamp,
                            parent: built.payload.parent_hash(),
                            add_balances: add_balances.clone(),
                            legacy: Box::new(built.payload.clone()),
                        },
                    );
                }
                result
            }
        };
        self.after_call(mode).await;
        result
    }

    async fn commit_block(&self, payload: ExecutionData) -> Result<B256, EngineError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let mode = self.mode();
        let p = &self.paths;
        let result = match mode {
            MigrationMode::Parallel => {
                let (l, a) = self
                    .parallel(
                        Operation::Commit,
                        p.legacy.commit_block(payload.clone()),
                        p.actor.commit_block(payload.clone()),
                    )
                    .await;
                if let Some(a) = &a {
                    p.compare_outcomes(Operation::Commit, &l, a, |l, a| {
                        Vec::from_iter((l != a).then_some(Mismatch::BlockHash {
                            legacy: *l,
                            actor: *a,
                        }))
                    });
                }
                l
            }
            _ => {
                let answer = Self::answering(mode, payload.payload.timestamp());
                let (result, change) = self
                    .write(mode, Operation::Commit, answer, |path| {
                        let payload = payload.clone();
                        async move {
                            match path {
                                Path::Legacy => p.legacy.commit_block(payload).await,
                                Path::Actor => p.actor.commit_block(payload).await,
                            }
                        }
                    })
                    .await;
                if let (MigrationMode::Shadow, Some(change)) = (mode, change) {
                    self.enqueue(
                        epoch,
                        ShadowWork::Commit {
                            payload: Box::new(payload),
                            change,
                        },
                    );
                }
                result
            }
        };
        self.after_call(mode).await;
        result
    }

    async fn set_finalized(&self, hash: B256) -> Result<(), EngineError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let mode = self.mode();
        let p = &self.paths;
        let result = match mode {
            MigrationMode::Parallel => {
                let (l, a) = self
                    .parallel(
                        Operation::Finalize,
                        p.legacy.set_finalized(hash),
                        p.actor.set_finalized(hash),
                    )
                    .await;
                if let Some(Err(e)) = &a {
                    p.follower_failed(Path::Actor, Operation::Finalize, e);
                }
                l
            }
            _ => {
                // Finalization has no slot of its own: in canary the actor answers when its
                // share is at least half, and legacy follows (or the other way round).
                let answer = match mode {
                    MigrationMode::Canary(share) if share >= 50 => Path::Actor,
                    MigrationMode::Canary(_) => Path::Legacy,
                    other => Self::answering(other, 0),
                };
                let (result, change) = self
                    .write(mode, Operation::Finalize, answer, |path| async move {
                        match path {
                            Path::Legacy => p.legacy.set_finalized(hash).await,
                            Path::Actor => p.actor.set_finalized(hash).await,
                        }
                    })
                    .await;
                if let (MigrationMode::Shadow, Some(change)) = (mode, change) {
                    self.enqueue(epoch, ShadowWork::Finalize { hash, change });
                }
                result
            }
        };
        self.after_call(mode).await;
        result
    }

    async fn get_block_with_txs(&self, hash: &B256) -> Result<Option<Block>, EngineError> {
        let (p, hash) = (&self.paths, *hash);
        self.read(Operation::GetBlock, hash.as_slice(), |path| async move {
            match path {
                Path::Legacy => p.legacy.get_block_with_txs(&hash).await,
                Path::Actor => p.actor.get_block_with_txs(&hash).await,
            }
        })
        .await
    }

    async fn get_transaction_receipt(
        &self,
        tx: B256,
    ) -> Result<Option<TransactionReceipt>, EngineError> {
        let p = &self.paths;
        self.read(Operation::GetReceipt, tx.as_slice(), |path| async move {
            match path {
                Path::Legacy => p.legacy.get_transaction_receipt(tx).await,
                Path::Actor => p.actor.get_transaction_receipt(tx).await,
            }
        })
        .await
    }

    async fn get_payload_bodies_by_hash_v1(
        &self,
        hashes: Vec<B256>,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        let p = &self.paths;
        let key: Vec<u8> = hashes.iter().flat_map(|h| h.0).collect();
        self.read(Operation::GetPayloadBodies, &key, |path| {
            let hashes = hashes.clone();
            async move {
                match path {
                    Path::Legacy => p.legacy.get_payload_bodies_by_hash_v1(hashes).await,
                    Path::Actor => p.actor.get_payload_bodies_by_hash_v1(hashes).await,
                }
            }
        })
        .await
    }

    async fn get_payload_by_tag_from_engine(
        &self,
        tag: BlockNumberOrTag,
    ) -> Result<ExecutionPayload, EngineError> {
        let p = &self.paths;
        let key = tag.to_string();
        self.read(
            Operation::GetPayloadByTag,
            key.as_bytes(),
            |path| async move {
                match path {
                    Path::Legacy => p.legacy.get_payload_by_tag_from_engine(tag).await,
                    Path::Actor => p.actor.get_payload_by_tag_from_engine(tag).await,
                }
            },
        )
        .await
    }
}
