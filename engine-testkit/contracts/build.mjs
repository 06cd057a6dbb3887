// Compiles Bridge.sol with the solc pinned in ../el/package.json and writes the runtime
// (deployed) bytecode to Bridge.runtime.hex, hex without 0x. The hex is committed so tests
// need no compiler; `engine-testkit`'s tests check it still equals a fresh compile.
//
//   node engine-testkit/contracts/build.mjs            # regenerate Bridge.runtime.hex
//   node engine-testkit/contracts/build.mjs --stdout   # print the hex, write nothing
//
// Exit codes: 0 ok, 1 compile error, 3 solc not installed (run `just setup`).

import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "el", "package.json"));

let solc;
try {
  solc = require("solc");
} catch (e) {
  console.error(`solc is not installed under engine-testkit/el/node_modules (run \`just setup\`): ${e.message}`);
  process.exit(3);
}

const input = {
  language: "Solidity",
  sources: { "Bridge.sol": { content: readFileSync(join(here, "Bridge.sol"), "utf8") } },
  settings: {
    evmVersion: "shanghai",
    optimizer: { enabled: true, runs: 200 },
    // No CBOR metadata trailer: the code then depends on what the contract does, not on its
    // comments, and stays byte-identical across machines.
    metadata: { appendCBOR: false },
    outputSelection: { "Bridge.sol": { Bridge: ["evm.deployedBytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

const hex = output.contracts["Bridge.sol"].Bridge.evm.deployedBytecode.object;
if (!/^[0-9a-f]+$/.test(hex)) {
  console.error(`unexpected bytecode from solc ${solc.version()}: ${hex}`);
  process.exit(1);
}
if (process.argv.includes("--stdout")) {
  process.stdout.write(hex);
} else {
  writeFileSync(join(here, "Bridge.runtime.hex"), hex);
  console.error(`Bridge.runtime.hex: ${hex.length / 2} bytes (solc ${solc.version()})`);
}
