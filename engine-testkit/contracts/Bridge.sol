// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Minimal Alys peg-out bridge for alys-engine's tests.
/// @notice Same ABI and event as Alys's `Bridge.sol` at
///         0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB: the node reads `RequestPegOut` logs from
///         block receipts and pays the requests out on Bitcoin.
/// @dev BURN, not keep: the value is forwarded to 0x…dEaD, as Alys does. Once the federation
///      owes the BTC on Bitcoin, the wrapped coins must leave circulation; a balance piling up
///      in the bridge would still count as supply and look spendable to anyone reading state.
///      There is deliberately no `receive`/`fallback` and no public getter (the burn address is
///      a private constant): `requestPegOut` is the only entry point, so plain transfers,
///      unknown selectors and undecodable arguments revert, and value never lands here without
///      the event. (Alys's own contract has a payable no-op fallback; peg-outs never use it.)
///      Regenerate `Bridge.runtime.hex` with `node engine-testkit/contracts/build.mjs`.
contract Bridge {
    address payable private constant BURN_ADDRESS = payable(0x000000000000000000000000000000000000dEaD);

    /// @notice A request to pay `_value` wei (1 sat = 1e10 wei) to `_bitcoinAddress`.
    /// @dev Topics are 32 bytes, so the variable-length Bitcoin address goes in the data.
    event RequestPegOut(address indexed _evmAddress, bytes _bitcoinAddress, uint256 _value);

    /// @notice Burns `msg.value` and requests its payout to `_bitcoinAddress`.
    /// @dev The address is not validated here: the federation drops what it cannot pay to,
    ///      and the node ignores requests under its dust threshold.
    function requestPegOut(bytes calldata _bitcoinAddress) external payable {
        (bool burnt, ) = BURN_ADDRESS.call{value: msg.value}("");
        require(burnt, "burn failed");
        emit RequestPegOut(msg.sender, _bitcoinAddress, msg.value);
    }
}
