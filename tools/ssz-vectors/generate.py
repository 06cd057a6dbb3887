#!/usr/bin/env python3
"""Generate SSZ test vectors for the consensus-spec `ExecutionPayload` of Capella and Deneb.

The containers below are transcribed into remerkleable (the SSZ library of the executable
consensus spec) from ethereum/consensus-specs at commit
a08d8a6e2b45f0b8c0d379abc15583427c643689 ("Modify `on_inclusion_list` to handle ILs from
req/resp (#5513)", 2026-08-07):

* specs/phase0/beacon-chain.md       Gwei, Hash32, ValidatorIndex
* specs/phase0/deposit-contract.md   ExecutionAddress (Bytes20)
* specs/bellatrix/beacon-chain.md    ExtraData, LogsBloom, Transaction, Transactions
* specs/capella/beacon-chain.md      WithdrawalIndex, Withdrawal, Withdrawals, ExecutionPayload
* specs/deneb/beacon-chain.md        ExecutionPayload (+ blob_gas_used, excess_blob_gas)
* presets/mainnet/{bellatrix,capella}.yaml   the mainnet preset values below

Writes engine-migration/tests/fixtures/ssz/{capella,deneb}.json (relative to the repository
root; --out-dir overrides), each

    {"fork": "capella", "generator": "remerkleable <version>", "spec_commit": "<sha>",
     "payloads": [{"name": ..., "value": {...}, "ssz": "0x...", "hash_tree_root": "0x..."}]}

JSON encoding of "value" (field names are the spec's snake_case, in spec order):
* Hash32 / Bytes32 / Bytes20 / ByteVector / ByteList fields: "0x" + lowercase hex ("0x" = empty)
* uint64 fields and base_fee_per_gas (uint256): decimal strings
* transactions: list of "0x" hex strings; withdrawals: list of
  {"index", "validator_index", "address", "amount"} (decimal strings, address hex)

Every vector is checked before anything is written: the view is built from the JSON "value",
its SSZ is decoded back with remerkleable's decode_bytes, re-rendered to JSON and re-encoded
(must be identical, same hash_tree_root), and both the serialization and the hash_tree_root are
recomputed by a small independent SSZ implementation in this file.

Deterministic: fixed seeds, no clock, no environment input. Needs Python >= 3.9 (random.randbytes).
"""

import argparse
import hashlib
import json
import random
import sys
from importlib.metadata import PackageNotFoundError, version as pkg_version
from pathlib import Path

from remerkleable.basic import uint64, uint256
from remerkleable.byte_arrays import ByteList, ByteVector, Bytes32
from remerkleable.complex import Container, List

# remerkleable has no Bytes20 alias; the spec's eth2spec.utils.ssz.ssz_typing defines it so.
Bytes20 = ByteVector[20]

SPEC_COMMIT = "a08d8a6e2b45f0b8c0d379abc15583427c643689"

def _generator() -> str:
    # requirements.txt pins PyPI `remerkleable`. The spec's own pyproject.toml at SPEC_COMMIT
    # pins its fork `eth-remerkleable` (same `remerkleable` module); it runs this script too,
    # with the same output apart from this string.
    for dist in ("remerkleable", "eth-remerkleable"):
        try:
            return f"{dist} {pkg_version(dist)}"
        except PackageNotFoundError:
            pass
    return "remerkleable (unknown version)"


GENERATOR = _generator()

# --- Mainnet preset (presets/mainnet/bellatrix.yaml, presets/mainnet/capella.yaml) -----------
MAX_BYTES_PER_TRANSACTION = 2**30
MAX_TRANSACTIONS_PER_PAYLOAD = 2**20
BYTES_PER_LOGS_BLOOM = 2**8
MAX_EXTRA_DATA_BYTES = 2**5
MAX_WITHDRAWALS_PER_PAYLOAD = 2**4

U64_MAX = 2**64 - 1
U256_MAX = 2**256 - 1


# --- Custom types -----------------------------------------------------------------------------
class Gwei(uint64):  # phase0
    pass


class ValidatorIndex(uint64):  # phase0
    pass


class Hash32(Bytes32):  # phase0
    pass


class ExecutionAddress(Bytes20):  # phase0/deposit-contract.md
    pass


class ExtraData(ByteList[MAX_EXTRA_DATA_BYTES]):  # bellatrix
    pass


class LogsBloom(ByteVector[BYTES_PER_LOGS_BLOOM]):  # bellatrix
    pass


class Transaction(ByteList[MAX_BYTES_PER_TRANSACTION]):  # bellatrix
    pass


class Transactions(List[Transaction, MAX_TRANSACTIONS_PER_PAYLOAD]):  # bellatrix
    pass


class WithdrawalIndex(uint64):  # capella
    pass


# --- Containers -------------------------------------------------------------------------------
class Withdrawal(Container):  # capella
    index: WithdrawalIndex
    validator_index: ValidatorIndex
    address: ExecutionAddress
    amount: Gwei


class Withdrawals(List[Withdrawal, MAX_WITHDRAWALS_PER_PAYLOAD]):  # capella
    pass


class CapellaExecutionPayload(Container):  # specs/capella/beacon-chain.md `ExecutionPayload`
    parent_hash: Hash32
    fee_recipient: ExecutionAddress
    state_root: Bytes32
    receipts_root: Bytes32
    logs_bloom: LogsBloom
    prev_randao: Bytes32
    block_number: uint64
    gas_limit: uint64
    gas_used: uint64
    timestamp: uint64
    extra_data: ExtraData
    base_fee_per_gas: uint256
    block_hash: Hash32
    transactions: Transactions
    # [New in Capella]
    withdrawals: Withdrawals


class DenebExecutionPayload(Container):  # specs/deneb/beacon-chain.md `ExecutionPayload`
    parent_hash: Hash32
    fee_recipient: ExecutionAddress
    state_root: Bytes32
    receipts_root: Bytes32
    logs_bloom: LogsBloom
    prev_randao: Bytes32
    block_number: uint64
    gas_limit: uint64
    gas_used: uint64
    timestamp: uint64
    extra_data: ExtraData
    base_fee_per_gas: uint256
    block_hash: Hash32
    transactions: Transactions
    withdrawals: Withdrawals
    # [New in Deneb:EIP4844]
    blob_gas_used: uint64
    # [New in Deneb:EIP4844]
    excess_blob_gas: uint64


FORKS = {"capella": CapellaExecutionPayload, "deneb": DenebExecutionPayload}
SEEDS = {"capella": 0x55A2_CA9E11A, "deneb": 0x55A2_DE9EB}

# Field kinds, in spec order, for the JSON mapping and the independent SSZ implementation.
# (name, kind, fixed byte length or None for variable-size)
BASE_FIELDS = [
    ("parent_hash", "bytes32", 32),
    ("fee_recipient", "bytes20", 20),
    ("state_root", "bytes32", 32),
    ("receipts_root", "bytes32", 32),
    ("logs_bloom", "bloom", BYTES_PER_LOGS_BLOOM),
    ("prev_randao", "bytes32", 32),
    ("block_number", "u64", 8),
    ("gas_limit", "u64", 8),
    ("gas_used", "u64", 8),
    ("timestamp", "u64", 8),
    ("extra_data", "extra", None),
    ("base_fee_per_gas", "u256", 32),
    ("block_hash", "bytes32", 32),
    ("transactions", "txs", None),
    ("withdrawals", "wds", None),
]
FIELDS = {
    "capella": BASE_FIELDS,
    "deneb": BASE_FIELDS + [("blob_gas_used", "u64", 8), ("excess_blob_gas", "u64", 8)],
}
WITHDRAWAL_FIELDS = ["index", "validator_index", "address", "amount"]


def hx(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def unhx(s: str) -> bytes:
    assert s.startswith("0x") and s == s.lower(), s
    return bytes.fromhex(s[2:])


# --- JSON value <-> remerkleable view ---------------------------------------------------------
def check_value(fork: str, value: dict) -> None:
    """Check key set/order and ranges of a JSON value before it is used."""
    names = [f[0] for f in FIELDS[fork]]
    assert list(value.keys()) == names, (list(value.keys()), names)
    for name, kind, size in FIELDS[fork]:
        v = value[name]
        if kind in ("u64", "u256"):
            assert isinstance(v, str) and v.isdigit() and str(int(v)) == v, (name, v)
            assert int(v) <= (U64_MAX if kind == "u64" else U256_MAX), (name, v)
        elif kind in ("bytes32", "bytes20", "bloom"):
            assert len(unhx(v)) == size, (name, v)
        elif kind == "extra":
            assert len(unhx(v)) <= MAX_EXTRA_DATA_BYTES, (name, v)
        elif kind == "txs":
            assert len(v) <= MAX_TRANSACTIONS_PER_PAYLOAD
            for tx in v:
                assert len(unhx(tx)) <= MAX_BYTES_PER_TRANSACTION
        elif kind == "wds":
            assert len(v) <= MAX_WITHDRAWALS_PER_PAYLOAD
            for w in v:
                assert list(w.keys()) == WITHDRAWAL_FIELDS, w
                for k in ("index", "validator_index", "amount"):
                    assert w[k].isdigit() and str(int(w[k])) == w[k] and int(w[k]) <= U64_MAX
                assert len(unhx(w["address"])) == 20


def to_view(fork: str, value: dict):
    cls = FORKS[fork]
    kwargs = {}
    for name, kind, _ in FIELDS[fork]:
        ftype = cls.fields()[name]
        v = value[name]
        if kind in ("u64", "u256"):
            kwargs[name] = ftype(int(v))
        elif kind in ("bytes32", "bytes20", "bloom", "extra"):
            kwargs[name] = ftype(unhx(v))
        elif kind == "txs":
            kwargs[name] = Transactions(*[Transaction(unhx(t)) for t in v])
        elif kind == "wds":
            kwargs[name] = Withdrawals(*[
                Withdrawal(
                    index=WithdrawalIndex(int(w["index"])),
                    validator_index=ValidatorIndex(int(w["validator_index"])),
                    address=ExecutionAddress(unhx(w["address"])),
                    amount=Gwei(int(w["amount"])),
                )
                for w in v
            ])
    return cls(**kwargs)


def from_view(fork: str, view) -> dict:
    out = {}
    for name, kind, _ in FIELDS[fork]:
        v = getattr(view, name)
        if kind in ("u64", "u256"):
            out[name] = str(int(v))
        elif kind in ("bytes32", "bytes20", "bloom", "extra"):
            out[name] = hx(bytes(v))
        elif kind == "txs":
            out[name] = [hx(bytes(t)) for t in v]
        elif kind == "wds":
            out[name] = [
                {
                    "index": str(int(w.index)),
                    "validator_index": str(int(w.validator_index)),
                    "address": hx(bytes(w.address)),
                    "amount": str(int(w.amount)),
                }
                for w in v
            ]
    return out


# --- Independent SSZ implementation (cross-check of remerkleable) -----------------------------
def _sha(a: bytes, b: bytes) -> bytes:
    return hashlib.sha256(a + b).digest()


ZERO_HASHES = [b"\x00" * 32]
for _ in range(64):
    ZERO_HASHES.append(_sha(ZERO_HASHES[-1], ZERO_HASHES[-1]))


def _pack(data: bytes) -> list:
    if len(data) % 32:
        data = data + b"\x00" * (32 - len(data) % 32)
    return [data[i:i + 32] for i in range(0, len(data), 32)]


def _merkleize(chunks: list, limit: int) -> bytes:
    assert len(chunks) <= limit
    depth = max(limit - 1, 0).bit_length()
    layer = list(chunks)
    if not layer:
        return ZERO_HASHES[depth]
    for d in range(depth):
        if len(layer) % 2:
            layer.append(ZERO_HASHES[d])
        layer = [_sha(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
    assert len(layer) == 1
    return layer[0]


def _mix_in_length(root: bytes, n: int) -> bytes:
    return _sha(root, n.to_bytes(32, "little"))


def _byte_list_root(data: bytes, max_len: int) -> bytes:
    return _mix_in_length(_merkleize(_pack(data), (max_len + 31) // 32), len(data))


def _withdrawal_fields(w: dict):
    return (int(w["index"]), int(w["validator_index"]), unhx(w["address"]), int(w["amount"]))


def ref_serialize(fork: str, value: dict) -> bytes:
    fixed, variable = [], []
    for name, kind, size in FIELDS[fork]:
        v = value[name]
        if kind == "u64":
            fixed.append(int(v).to_bytes(8, "little"))
        elif kind == "u256":
            fixed.append(int(v).to_bytes(32, "little"))
        elif kind in ("bytes32", "bytes20", "bloom"):
            fixed.append(unhx(v))
        else:
            fixed.append(None)  # offset placeholder
            if kind == "extra":
                variable.append(unhx(v))
            elif kind == "txs":
                txs = [unhx(t) for t in v]
                offs, pos = [], 4 * len(txs)
                for t in txs:
                    offs.append(pos.to_bytes(4, "little"))
                    pos += len(t)
                variable.append(b"".join(offs) + b"".join(txs))
            elif kind == "wds":
                parts = []
                for w in v:
                    i, vi, a, amt = _withdrawal_fields(w)
                    parts.append(i.to_bytes(8, "little") + vi.to_bytes(8, "little") + a + amt.to_bytes(8, "little"))
                variable.append(b"".join(parts))
    fixed_len = sum(4 if f is None else len(f) for f in fixed)
    out, var_iter, pos = [], iter(variable), fixed_len
    var_parts = []
    for f in fixed:
        if f is None:
            part = next(var_iter)
            out.append(pos.to_bytes(4, "little"))
            pos += len(part)
            var_parts.append(part)
        else:
            out.append(f)
    return b"".join(out) + b"".join(var_parts)


def ref_hash_tree_root(fork: str, value: dict) -> bytes:
    roots = []
    for name, kind, size in FIELDS[fork]:
        v = value[name]
        if kind == "u64":
            roots.append(int(v).to_bytes(32, "little"))
        elif kind == "u256":
            roots.append(int(v).to_bytes(32, "little"))
        elif kind == "bytes32":
            roots.append(unhx(v))
        elif kind == "bytes20":
            roots.append(unhx(v) + b"\x00" * 12)
        elif kind == "bloom":
            roots.append(_merkleize(_pack(unhx(v)), BYTES_PER_LOGS_BLOOM // 32))
        elif kind == "extra":
            roots.append(_byte_list_root(unhx(v), MAX_EXTRA_DATA_BYTES))
        elif kind == "txs":
            tx_roots = [_byte_list_root(unhx(t), MAX_BYTES_PER_TRANSACTION) for t in v]
            roots.append(_mix_in_length(_merkleize(tx_roots, MAX_TRANSACTIONS_PER_PAYLOAD), len(v)))
        elif kind == "wds":
            w_roots = []
            for w in v:
                i, vi, a, amt = _withdrawal_fields(w)
                w_roots.append(_merkleize([
                    i.to_bytes(32, "little"), vi.to_bytes(32, "little"),
                    a + b"\x00" * 12, amt.to_bytes(32, "little"),
                ], 4))
            roots.append(_mix_in_length(_merkleize(w_roots, MAX_WITHDRAWALS_PER_PAYLOAD), len(v)))
    return _merkleize(roots, len(roots))


# --- Payload construction ---------------------------------------------------------------------
class Gen:
    def __init__(self, fork: str):
        self.fork = fork
        self.rng = random.Random(SEEDS[fork])

    def b(self, n: int) -> str:
        return hx(self.rng.randbytes(n))

    def u64(self) -> str:
        return str(self.rng.getrandbits(64))

    def withdrawal(self, **over) -> dict:
        w = {
            "index": str(self.rng.randrange(0, 200_000_000)),
            "validator_index": str(self.rng.randrange(0, 2_000_000)),
            "address": self.b(20),
            "amount": str(self.rng.randrange(0, 64 * 10**9)),
        }
        w.update(over)
        return w

    def withdrawals(self, n: int) -> list:
        start = self.rng.randrange(0, 100_000_000)
        vstart = self.rng.randrange(0, 1_000_000)
        return [self.withdrawal(index=str(start + i), validator_index=str(vstart + 3 * i)) for i in range(n)]

    def tx(self, n: int) -> str:
        if n == 0:
            return "0x"
        # EIP-2718 typed envelope look-alike: first byte 0x02 (EIP-1559) or 0x03 (blob).
        return hx(bytes([self.rng.choice((0x02, 0x03))]) + self.rng.randbytes(n - 1))

    def txs(self, count: int, lo: int = 100, hi: int = 600) -> list:
        return [self.tx(self.rng.randint(lo, hi)) for _ in range(count)]

    def bloom(self) -> str:
        # Sparse bloom like a real one: a few bits set.
        bits = bytearray(BYTES_PER_LOGS_BLOOM)
        for _ in range(self.rng.randint(0, 60)):
            p = self.rng.randrange(BYTES_PER_LOGS_BLOOM * 8)
            bits[p // 8] |= 1 << (p % 8)
        return hx(bytes(bits))

    def typical(self, **over) -> dict:
        """A realistic-looking mainnet payload; `over` replaces fields."""
        gas_limit = self.rng.choice((30_000_000, 36_000_000, 45_000_000))
        v = {
            "parent_hash": self.b(32),
            "fee_recipient": self.b(20),
            "state_root": self.b(32),
            "receipts_root": self.b(32),
            "logs_bloom": self.bloom(),
            "prev_randao": self.b(32),
            "block_number": str(self.rng.randrange(17_000_000, 24_000_000)),
            "gas_limit": str(gas_limit),
            "gas_used": str(self.rng.randrange(0, gas_limit + 1)),
            "timestamp": str(self.rng.randrange(1_681_338_455, 1_900_000_000)),
            "extra_data": self.b(self.rng.randint(0, MAX_EXTRA_DATA_BYTES)),
            "base_fee_per_gas": str(self.rng.randrange(1, 200 * 10**9)),
            "block_hash": self.b(32),
            "transactions": self.txs(self.rng.randint(1, 8)),
            "withdrawals": self.withdrawals(self.rng.randint(0, MAX_WITHDRAWALS_PER_PAYLOAD)),
        }
        if self.fork == "deneb":
            v["blob_gas_used"] = str(131072 * self.rng.randint(0, 6))
            v["excess_blob_gas"] = str(131072 * self.rng.randint(0, 200))
        for k, x in over.items():
            assert k in v, k
            v[k] = x
        return v

    def random(self) -> dict:
        """Fully random in-range values (not necessarily plausible)."""
        r = self.rng
        v = {
            "parent_hash": self.b(32),
            "fee_recipient": self.b(20),
            "state_root": self.b(32),
            "receipts_root": self.b(32),
            "logs_bloom": self.b(BYTES_PER_LOGS_BLOOM),
            "prev_randao": self.b(32),
            "block_number": self.u64(),
            "gas_limit": self.u64(),
            "gas_used": self.u64(),
            "timestamp": self.u64(),
            "extra_data": self.b(r.randint(0, MAX_EXTRA_DATA_BYTES)),
            "base_fee_per_gas": str(r.getrandbits(r.choice((8, 64, 65, 128, 129, 200, 256)))),
            "block_hash": self.b(32),
            "transactions": [hx(r.randbytes(r.choice((0, 1, 31, 32, 33, r.randint(0, 1500)))))
                             for _ in range(r.randint(0, 10))],
            "withdrawals": [{"index": self.u64(), "validator_index": self.u64(),
                             "address": self.b(20), "amount": self.u64()}
                            for _ in range(r.randint(0, MAX_WITHDRAWALS_PER_PAYLOAD))],
        }
        if self.fork == "deneb":
            v["blob_gas_used"] = self.u64()
            v["excess_blob_gas"] = self.u64()
        return v


def zero_value(fork: str) -> dict:
    v = {}
    for name, kind, size in FIELDS[fork]:
        if kind in ("u64", "u256"):
            v[name] = "0"
        elif kind in ("bytes32", "bytes20", "bloom"):
            v[name] = hx(b"\x00" * size)
        elif kind == "extra":
            v[name] = "0x"
        else:
            v[name] = []
    return v


def max_value(fork: str) -> dict:
    """Every fixed field at its maximum, extra_data full of 0xff, 16 all-max withdrawals."""
    v = {}
    for name, kind, size in FIELDS[fork]:
        if kind == "u64":
            v[name] = str(U64_MAX)
        elif kind == "u256":
            v[name] = str(U256_MAX)
        elif kind in ("bytes32", "bytes20", "bloom"):
            v[name] = hx(b"\xff" * size)
        elif kind == "extra":
            v[name] = hx(b"\xff" * MAX_EXTRA_DATA_BYTES)
        elif kind == "txs":
            v[name] = [hx(b"\xff" * 32)]
        elif kind == "wds":
            v[name] = [{"index": str(U64_MAX), "validator_index": str(U64_MAX),
                        "address": hx(b"\xff" * 20), "amount": str(U64_MAX)}] * MAX_WITHDRAWALS_PER_PAYLOAD
    return v


def build_cases(fork: str) -> list:
    g = Gen(fork)
    cases = [
        ("all_zero_empty_lists", zero_value(fork)),
        ("all_max_values", max_value(fork)),
        ("typical_mainnet", g.typical()),
        ("extra_data_empty", g.typical(extra_data="0x")),
        ("extra_data_1_byte", g.typical(extra_data=g.b(1))),
        ("extra_data_32_bytes_max", g.typical(extra_data=g.b(32))),
        ("withdrawals_empty", g.typical(withdrawals=[])),
        ("withdrawals_one", g.typical(withdrawals=g.withdrawals(1))),
        ("withdrawals_16_max", g.typical(withdrawals=g.withdrawals(MAX_WITHDRAWALS_PER_PAYLOAD))),
        ("withdrawals_u64_max_index_amount", g.typical(withdrawals=[
            g.withdrawal(index=str(U64_MAX), amount=str(U64_MAX)),
            g.withdrawal(index=str(U64_MAX), validator_index=str(U64_MAX), amount=str(U64_MAX)),
            g.withdrawal(index="0", validator_index="0", address=hx(b"\x00" * 20), amount="0"),
        ])),
        ("base_fee_zero", g.typical(base_fee_per_gas="0")),
        ("base_fee_one", g.typical(base_fee_per_gas="1")),
        ("base_fee_u64_max", g.typical(base_fee_per_gas=str(U64_MAX))),
        ("base_fee_2_pow_64", g.typical(base_fee_per_gas=str(2**64))),
        ("base_fee_above_u64", g.typical(base_fee_per_gas=str(2**64 + g.rng.getrandbits(60)))),
        ("base_fee_u128_max", g.typical(base_fee_per_gas=str(2**128 - 1))),
        ("base_fee_above_u128", g.typical(base_fee_per_gas=str(2**128 + g.rng.getrandbits(120)))),
        ("base_fee_u256_max", g.typical(base_fee_per_gas=str(U256_MAX))),
        ("transactions_empty", g.typical(transactions=[])),
        ("transaction_zero_bytes", g.typical(transactions=["0x"])),
        ("transactions_with_zero_byte_entries", g.typical(transactions=["0x", g.tx(150), "0x", "0x", g.tx(1)])),
        ("transaction_large_300000_bytes", g.typical(transactions=[g.tx(300_000)])),
        ("transactions_200_small", g.typical(transactions=g.txs(200, lo=1, hi=120))),
        ("transactions_boundary_sizes", g.typical(transactions=[g.tx(n) for n in (1, 31, 32, 33, 63, 64, 65)])),
        ("u64_max_block_number_gas_timestamp", g.typical(
            block_number=str(U64_MAX), gas_limit=str(U64_MAX), gas_used=str(U64_MAX), timestamp=str(U64_MAX))),
        ("zero_block_number_gas_timestamp", g.typical(block_number="0", gas_limit="0", gas_used="0", timestamp="0")),
        ("logs_bloom_all_ones", g.typical(logs_bloom=hx(b"\xff" * BYTES_PER_LOGS_BLOOM))),
    ]
    if fork == "deneb":
        cases += [
            ("blob_gas_zero", g.typical(blob_gas_used="0", excess_blob_gas="0")),
            ("blob_gas_u64_max", g.typical(blob_gas_used=str(U64_MAX), excess_blob_gas=str(U64_MAX))),
            ("blob_gas_used_max_excess_zero", g.typical(blob_gas_used=str(U64_MAX), excess_blob_gas="0")),
            ("blob_gas_used_zero_excess_max", g.typical(blob_gas_used="0", excess_blob_gas=str(U64_MAX))),
            ("blob_gas_six_blobs", g.typical(blob_gas_used=str(6 * 131072), excess_blob_gas=str(79 * 131072))),
        ]
    cases += [(f"random_{i:02d}", g.random()) for i in range(10)]
    return cases


# --- Vector assembly and self-check -----------------------------------------------------------
def make_vector(fork: str, name: str, value: dict) -> dict:
    check_value(fork, value)
    cls = FORKS[fork]
    view = to_view(fork, value)
    ssz = view.encode_bytes()
    root = bytes(view.hash_tree_root())

    # The view reproduces the JSON value exactly.
    assert from_view(fork, view) == value, name
    # Decode the SSZ back with remerkleable: same value, same bytes, same root.
    decoded = cls.decode_bytes(ssz)
    assert decoded == view, name
    assert from_view(fork, decoded) == value, name
    assert decoded.encode_bytes() == ssz, name
    assert bytes(decoded.hash_tree_root()) == root, name
    # Independent implementation agrees.
    assert ref_serialize(fork, value) == ssz, f"{fork}/{name}: serialization mismatch"
    assert ref_hash_tree_root(fork, value) == root, f"{fork}/{name}: hash_tree_root mismatch"

    return {"name": name, "value": value, "ssz": hx(ssz), "hash_tree_root": hx(root)}


def build_fork(fork: str) -> dict:
    cases = build_cases(fork)
    names = [n for n, _ in cases]
    assert len(set(names)) == len(names), "duplicate names"
    payloads = [make_vector(fork, n, v) for n, v in cases]
    assert len({p["ssz"] for p in payloads}) == len(payloads), "duplicate payloads"
    return {
        "fork": fork,
        "generator": GENERATOR,
        "spec_commit": SPEC_COMMIT,
        "payloads": payloads,
    }


def self_test() -> None:
    """Sanity of the independent implementation itself on known spec constants."""
    assert ref_hash_tree_root("capella", zero_value("capella")) == bytes(CapellaExecutionPayload().hash_tree_root())
    assert ref_serialize("deneb", zero_value("deneb")) == DenebExecutionPayload().encode_bytes()
    # Fixed parts: Capella 512 bytes (3 offsets of 4 bytes), Deneb 512 + 2 * 8.
    assert len(CapellaExecutionPayload().encode_bytes()) == 512
    assert len(DenebExecutionPayload().encode_bytes()) == 528


def main() -> int:
    repo_root = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", type=Path, default=repo_root / "engine-migration/tests/fixtures/ssz")
    ap.add_argument("--check", action="store_true",
                    help="do not write; fail if the files on disk differ from what would be generated")
    args = ap.parse_args()

    self_test()
    if not args.check:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    status = 0
    for fork in FORKS:
        doc = build_fork(fork)
        text = json.dumps(doc, indent=1) + "\n"
        path = args.out_dir / f"{fork}.json"
        if args.check:
            same = path.exists() and path.read_text() == text
            print(f"{path}: {'up to date' if same else 'DIFFERS'}")
            status |= 0 if same else 1
        else:
            path.write_text(text)
            print(f"{path}: {len(doc['payloads'])} payloads, {len(text.encode())} bytes")
    return status


if __name__ == "__main__":
    sys.exit(main())
