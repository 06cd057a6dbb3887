#!/usr/bin/env python3
"""Vendor the Engine API OpenRPC schemas of ethereum/execution-apis as one JSON Schema document.

Reads the YAML sources straight out of a git mirror of github.com/ethereum/execution-apis
(CC0-1.0) at a pinned commit and writes engine-testkit/schemas/engine-api.json:

    {
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      "source":  {"repository", "commit", "license", "files"},
      "methods": {"engine_...": {"params": [{"name", "required", "schema"}], "result": <schema>,
                                 "errors": [{"code", "message"}]}},
      "definitions": {"NAME": <schema>},
      "errata": [{"pointer", "replacement", "spec"}]
    }

Every "$ref: '#/components/schemas/X...'" becomes "#/definitions/X...", so the file is one
self-contained JSON Schema document; the script fails if any $ref does not resolve inside it.
"definitions" holds every Engine API component schema, every base type of
src/schemas/base-types.yaml, and anything else they refer to.

Draft 2020-12, not draft-07: the sources put constraints next to `$ref` (RestrictedPayloadStatusV1
is `$ref: PayloadStatusV1` plus a narrower `status` enum), which draft-07 ignores. Upstream's own
speccheck validates with 2019-09 for the same reason.

Two additions, both marked and both optional:
* "x-supplement" methods/definitions (engine_getClientVersionV1, ClientVersionV1), which the
  Engine API specifies in markdown only (--no-supplements leaves them out);
* "errata": places where the OpenRPC schemas are stricter than the markdown spec (mostly
  `null`s), as JSON-pointer patches that are listed, not applied (--no-errata leaves them out).

Usage:
    python3 tools/vendor-execution-apis.py              # regenerate
    python3 tools/vendor-execution-apis.py --check      # exit 1 if the file is out of date
    python3 tools/vendor-execution-apis.py --mirror DIR --commit SHA [--out FILE]

Needs Python 3.11+ and PyYAML (pip install pyyaml, or apt-get install python3-yaml).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit(
        "vendor-execution-apis: PyYAML is not installed.\n"
        "  pip install pyyaml        (or: apt-get install python3-yaml)\n"
        "and run this script again."
    )

DEFAULT_MIRROR = "/work/.mirror/ethereum+execution-apis/repo"
DEFAULT_COMMIT = "033ca6e69da000445840d2060ff47e5e56172a86"
REPOSITORY = "ethereum/execution-apis"
LICENSE = "CC0-1.0"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

METHODS_DIR = "src/engine/openrpc/methods"
ENGINE_SCHEMAS_DIR = "src/engine/openrpc/schemas"
SHARED_SCHEMAS_DIR = "src/schemas"
# Shared files vendored whole (the base types: uint64, hash32, bytes, address, ...). Other
# shared schemas are vendored only if something vendored refers to them.
SHARED_WHOLE = {"src/schemas/base-types.yaml"}

SRC_PREFIX = "#/components/schemas/"
DST_PREFIX = "#/definitions/"

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "engine-testkit" / "schemas" / "engine-api.json"

# Methods the Engine API specifies in markdown only: at the pinned commit there is no OpenRPC
# definition of engine_getClientVersionV1 (src/engine/identification.md). Written from that
# text and marked "x-supplement" so nobody takes them for upstream schemas. Omit with
# --no-supplements. An upstream definition of the same name replaces the supplement.
SUPPLEMENT_NOTE = (
    "not in the OpenRPC sources at this commit; written by tools/vendor-execution-apis.py "
    "from src/engine/identification.md"
)
SUPPLEMENT_DEFINITIONS = {
    "ClientVersionV1": {
        "title": "Client version object V1",
        "x-supplement": SUPPLEMENT_NOTE,
        "type": "object",
        "required": ["code", "name", "version", "commit"],
        "properties": {
            "code": {
                "title": "Two-letter client code (ClientCode), e.g. GE, RH, BU",
                "type": "string",
                "pattern": "^[A-Za-z]{2}$",
            },
            "name": {"title": "Human-readable client name", "type": "string"},
            "version": {"title": "Version string of the implementation", "type": "string"},
            "commit": {
                "title": "First four bytes of the build's commit hash",
                "description": "identification.md says `DATA`, 4 bytes (0x-prefixed) but its "
                "example is `fa4ff922`; both forms are accepted.",
                "type": "string",
                "pattern": "^(0x)?[0-9a-fA-F]{8}$",
            },
        },
    },
}
SUPPLEMENT_METHODS = {
    "engine_getClientVersionV1": {
        "x-supplement": SUPPLEMENT_NOTE,
        "params": [
            {
                "name": "Consensus client version",
                "required": True,
                "schema": {"$ref": "#/components/schemas/ClientVersionV1"},
            }
        ],
        "result": {
            "name": "Execution client versions",
            "schema": {"type": "array", "items": {"$ref": "#/components/schemas/ClientVersionV1"}},
        },
    },
}


# Known places where the OpenRPC schemas are stricter than the Engine API markdown, the
# normative text: values the markdown allows (mostly `null`) that the YAML rejects, and two
# `oneOf`s over payload versions that overlap (a V2 payload is also a valid V1 payload, since
# neither forbids additional properties, so `oneOf` rejects every V2 payload).
#
# They are NOT applied to "methods"/"definitions", which stay as upstream has them; they are
# written to the top-level "errata" list as {pointer, replacement, spec}: an RFC 6901 pointer
# into the document and the schema to put there. A consumer that wants the markdown's
# semantics applies them (serde_json: `*doc.pointer_mut(p).unwrap() = replacement`).
#
# Each entry also states what upstream has at that pointer; if upstream changes it (fixed,
# moved, reworded) the script fails so the erratum is reviewed instead of silently rotting.


def _nullable(schema):
    return {"oneOf": [schema, {"type": "null"}]}


def _ref(name):
    return {"$ref": DST_PREFIX + name}


def _errata():
    out = []

    def add(pointer, upstream, replacement, spec):
        out.append({"pointer": pointer, "upstream": upstream, "replacement": replacement,
                    "spec": spec})

    for field, up, spec in [
        ("latestValidHash", {"title": "The hash of the most recent valid block",
                             "$ref": DST_PREFIX + "hash32"},
         "paris.md PayloadStatusV1: latestValidHash is `DATA|null` (null for SYNCING, "
         "ACCEPTED, INVALID_BLOCK_HASH and some INVALID answers)"),
        ("validationError", {"title": "Validation error message", "type": "string"},
         "paris.md PayloadStatusV1: validationError is `String|null`"),
    ]:
        add(f"/definitions/PayloadStatusV1/properties/{field}", up, _nullable(up), spec)
    for v in (1, 2):
        up = {"title": "Payload id", "$ref": DST_PREFIX + "bytes8"}
        add(f"/definitions/ForkchoiceUpdatedResponseV{v}/properties/payloadId", up,
            _nullable(up), "paris.md engine_forkchoiceUpdatedV1 response: payloadId is "
            "`DATA|null` (null when no build process was started)")
    for v in (1, 2, 3, 4, 5):
        up = _ref(f"PayloadAttributesV{v}")
        if v == 2:
            rep = {"anyOf": [_ref("PayloadAttributesV1"), up, {"type": "null"}]}
            spec = ("shanghai.md engine_forkchoiceUpdatedV2: payloadAttributes is `Object|null`, "
                    "PayloadAttributesV1 | PayloadAttributesV2 or null")
        else:
            rep = _nullable(up)
            spec = f"engine_forkchoiceUpdatedV{v}: payloadAttributes is `Object|null`"
        add(f"/methods/engine_forkchoiceUpdatedV{v}/params/1/schema", up, rep, spec)
    both = [_ref("ExecutionPayloadV1"), _ref("ExecutionPayloadV2")]
    add("/methods/engine_newPayloadV2/params/0/schema", {"oneOf": both}, {"anyOf": both},
        "shanghai.md engine_newPayloadV2: ExecutionPayloadV1 | ExecutionPayloadV2; as `oneOf` "
        "a V2 payload matches both and is rejected")
    add("/methods/engine_getPayloadV2/result/properties/executionPayload",
        {"title": "Execution payload", "oneOf": both},
        {"title": "Execution payload", "anyOf": both},
        "shanghai.md engine_getPayloadV2: ExecutionPayloadV1 | ExecutionPayloadV2; as `oneOf` "
        "a V2 payload matches both and is rejected")
    for m, body, spec in [
        ("ByHashV1", "ExecutionPayloadBodyV1", "shanghai.md: `null` for any missing block"),
        ("ByRangeV1", "ExecutionPayloadBodyV1", "shanghai.md: `null` for unavailable blocks"),
        ("ByHashV2", "ExecutionPayloadBodyV2", "amsterdam.md: `null` for unavailable blocks"),
        ("ByRangeV2", "ExecutionPayloadBodyV2", "amsterdam.md: `null` for unavailable blocks"),
    ]:
        add(f"/methods/engine_getPayloadBodies{m}/result/items", _ref(body),
            _nullable(_ref(body)), f"engine_getPayloadBodies{m}: {spec}")
    add("/methods/engine_getBlobsV1/result/items", _ref("BlobAndProofV1"),
        _nullable(_ref("BlobAndProofV1")),
        "cancun.md engine_getBlobsV1: items may be `null` (missing or pruned blobs)")
    up = {"type": "array", "items": _ref("BlobAndProofV2")}
    add("/methods/engine_getBlobsV2/result", up, _nullable(up),
        "osaka.md engine_getBlobsV2: `null` if any blob is missing or the client is syncing")
    return out


ERRATA = _errata()


class VendorError(Exception):
    pass


# --- YAML ------------------------------------------------------------------------------------


class SpecLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2-style plain scalars.

    PyYAML follows YAML 1.1: an unquoted 0x10 would become the integer 16, yes/no/on/off
    booleans, 1_000 an integer, 12:30 a sexagesimal number, 2024-01-01 a date. In these sources
    every hex value is meant as a string, so only plain decimal integers, decimal floats,
    true/false and null are typed; everything else stays a string.
    """


SpecLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in (
        "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _no_duplicate_keys(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise VendorError(f"duplicate YAML key {key!r} at line {key_node.start_mark.line + 1}")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def load_yaml(text: str, path: str):
    try:
        return yaml.load(text, Loader=SpecLoader)
    except (yaml.YAMLError, VendorError) as e:
        raise VendorError(f"{path}: {e}") from None


# --- git -------------------------------------------------------------------------------------


def git(mirror: str, *args: str) -> str:
    cmd = ["git", f"--git-dir={mirror}", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise VendorError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout


def yaml_files(mirror: str, commit: str, directory: str) -> list[str]:
    out = git(mirror, "ls-tree", "-r", "--name-only", commit, "--", directory)
    files = sorted(p for p in out.splitlines() if p.endswith((".yaml", ".yml")))
    if not files:
        raise VendorError(f"no YAML files under {directory} at {commit}")
    return files


# --- $refs -----------------------------------------------------------------------------------


def rewrite_refs(node, where: str):
    """A copy of node with each '#/components/schemas/...' $ref made '#/definitions/...'."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if not isinstance(k, str):
                raise VendorError(f"{where}: non-string key {k!r}")
            if k == "$ref" and isinstance(v, str):
                if not v.startswith(SRC_PREFIX):
                    raise VendorError(f"{where}: $ref {v!r} is not of the form {SRC_PREFIX}NAME")
                out[k] = DST_PREFIX + v[len(SRC_PREFIX):]
            else:
                out[k] = rewrite_refs(v, f"{where}/{k}")
        return out
    if isinstance(node, list):
        return [rewrite_refs(v, f"{where}/{i}") for i, v in enumerate(node)]
    return node


def refs_in(node, where: str = ""):
    """(location, ref) for every string $ref in node."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield where, v
            else:
                yield from refs_in(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from refs_in(v, f"{where}/{i}")


def ref_target_name(ref: str) -> str:
    return unquote(ref[len(DST_PREFIX):].split("/", 1)[0]).replace("~1", "/").replace("~0", "~")


def resolve_pointer(doc, ref: str):
    if not ref.startswith("#"):
        raise KeyError("not a same-document reference")
    node = doc
    pointer = unquote(ref[1:])
    if pointer == "":
        return node
    if not pointer.startswith("/"):
        raise KeyError("not a JSON pointer (anchors are not used in these sources)")
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(f"no {token!r}")
    return node


# --- build -----------------------------------------------------------------------------------


def build(mirror: str, commit_arg: str, supplements: bool, errata: bool = True) -> dict:
    commit = git(mirror, "rev-parse", "--verify", f"{commit_arg}^{{commit}}").strip()
    show = lambda path: git(mirror, "show", f"{commit}:{path}")  # noqa: E731

    # Component schemas: name -> (file, schema), names unique across all files.
    components: dict[str, tuple[str, object]] = {}
    engine_names: list[str] = []
    whole_names: list[str] = []
    schema_files = yaml_files(mirror, commit, ENGINE_SCHEMAS_DIR) + yaml_files(
        mirror, commit, SHARED_SCHEMAS_DIR)
    for path in schema_files:
        data = load_yaml(show(path), path)
        if not isinstance(data, dict):
            raise VendorError(f"{path}: expected a mapping of schema names")
        for name, schema in data.items():
            if name in components:
                raise VendorError(f"schema {name!r} defined in {components[name][0]} and {path}")
            if not isinstance(schema, (dict, bool)):
                raise VendorError(f"{path}: schema {name!r} is not an object")
            components[name] = (path, schema)
            if path.startswith(ENGINE_SCHEMAS_DIR):
                engine_names.append(name)
            if path in SHARED_WHOLE:
                whole_names.append(name)

    # Methods.
    methods: dict[str, dict] = {}
    method_files = yaml_files(mirror, commit, METHODS_DIR)
    for path in method_files:
        data = load_yaml(show(path), path)
        if not isinstance(data, list):
            raise VendorError(f"{path}: expected a list of methods")
        for m in data:
            name = m.get("name") if isinstance(m, dict) else None
            if not isinstance(name, str):
                raise VendorError(f"{path}: a method without a name")
            if not name.startswith("engine_"):
                continue
            if name in methods:
                raise VendorError(f"method {name} defined twice")
            if "error-groups" in m:
                raise VendorError(f"{path}: {name} uses error-groups, which this script does not "
                                  "resolve yet (src/error-groups); extend it")
            where = f"{path}:{name}"
            params = []
            for i, p in enumerate(m.get("params") or []):
                if "$ref" in p:
                    raise VendorError(f"{where}: param {i} is a $ref (content descriptor refs "
                                      "are not supported)")
                if "schema" not in p:
                    raise VendorError(f"{where}: param {i} has no schema")
                params.append({
                    "name": p["name"],
                    "required": bool(p.get("required", False)),
                    "schema": rewrite_refs(p["schema"], f"{where}/params/{i}/schema"),
                })
            result = m.get("result")
            if not isinstance(result, dict) or "schema" not in result:
                raise VendorError(f"{where}: no result schema")
            errors = []
            for e in m.get("errors") or []:
                if not isinstance(e, dict) or not isinstance(e.get("code"), int):
                    raise VendorError(f"{where}: error entry {e!r} has no integer code")
                errors.append({"code": e["code"], "message": e.get("message", "")})
            methods[name] = {
                "params": params,
                "result": rewrite_refs(result["schema"], f"{where}/result/schema"),
                "errors": errors,
            }

    if supplements:
        for name, schema in SUPPLEMENT_DEFINITIONS.items():
            if name not in components:
                components[name] = ("(supplement)", schema)
                engine_names.append(name)
        for name, m in SUPPLEMENT_METHODS.items():
            if name in methods:
                continue
            methods[name] = {
                "x-supplement": m["x-supplement"],
                "params": [dict(p, schema=rewrite_refs(p["schema"], name)) for p in m["params"]],
                "result": rewrite_refs(m["result"]["schema"], name),
                "errors": [],
            }

    if not methods:
        raise VendorError(f"no engine_* methods under {METHODS_DIR}")

    # Definitions: every engine schema, every base type, and whatever those refer to.
    definitions: dict[str, object] = {}
    pending = list(dict.fromkeys(engine_names + whole_names))
    for name in methods:
        pending += [ref_target_name(r) for _, r in refs_in(methods[name])]
    unknown = []
    while pending:
        name = pending.pop()
        if name in definitions:
            continue
        if name not in components:
            unknown.append(name)
            continue
        path, schema = components[name]
        definitions[name] = rewrite_refs(schema, f"{path}:{name}")
        pending += [ref_target_name(r) for _, r in refs_in(definitions[name])]

    doc = {
        "$schema": DRAFT,
        "$comment": "Generated by tools/vendor-execution-apis.py from the Engine API OpenRPC "
                    "sources of ethereum/execution-apis; do not edit by hand.",
        "source": {
            "repository": REPOSITORY,
            "commit": commit,
            "license": LICENSE,
            "files": method_files + sorted({components[n][0] for n in definitions
                                            if components[n][0] != "(supplement)"}),
        },
        "methods": {k: methods[k] for k in sorted(methods, key=natural_key)},
        "definitions": {k: definitions[k] for k in sorted(definitions, key=natural_key)},
    }

    # Every $ref must resolve inside the document, to a schema.
    broken = []
    for loc, ref in refs_in({"methods": doc["methods"], "definitions": doc["definitions"]}):
        try:
            target = resolve_pointer(doc, ref)
        except KeyError as e:
            broken.append(f"  {loc}: {ref} ({e})")
            continue
        if not isinstance(target, (dict, bool)):
            broken.append(f"  {loc}: {ref} (points at a {type(target).__name__}, not a schema)")
    if unknown or broken:
        msg = ["unresolved references:"]
        msg += [f"  no component schema named {n!r}" for n in sorted(set(unknown))]
        msg += broken
        raise VendorError("\n".join(msg))

    # Errata: check each against upstream, and that the patched document still resolves.
    if errata:
        patched = json.loads(json.dumps(doc))
        stale = []
        for e in ERRATA:
            try:
                current = resolve_pointer(doc, "#" + e["pointer"])
            except KeyError as err:
                stale.append(f"  {e['pointer']}: not in the document ({err})")
                continue
            if current != e["upstream"]:
                stale.append(f"  {e['pointer']}: upstream now has {json.dumps(current)}")
                continue
            *parent, last = e["pointer"][1:].split("/")
            node = patched
            for token in parent:
                node = node[int(token)] if isinstance(node, list) else node[token]
            node[int(last) if isinstance(node, list) else last] = e["replacement"]
        if stale:
            raise VendorError("errata no longer match upstream; review ERRATA in this script "
                              "(or pass --no-errata):\n" + "\n".join(stale))
        for loc, ref in refs_in([e["replacement"] for e in ERRATA]):
            try:
                resolve_pointer(patched, ref)
            except KeyError as err:
                raise VendorError(f"erratum $ref {ref} does not resolve ({err})") from None
        doc["errata"] = [{k: e[k] for k in ("pointer", "replacement", "spec")} for e in ERRATA]
    return doc


def natural_key(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirror", default=DEFAULT_MIRROR,
                    help=f"bare git repo of {REPOSITORY} (default: %(default)s)")
    ap.add_argument("--commit", default=DEFAULT_COMMIT,
                    help="commit (or other revision) to read (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file (default: %(default)s)")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if --out differs from what would be written")
    ap.add_argument("--no-supplements", action="store_true",
                    help="leave out the methods written from markdown (engine_getClientVersionV1)")
    ap.add_argument("--no-errata", action="store_true",
                    help="leave out the top-level \"errata\" list (see ERRATA in this script)")
    args = ap.parse_args(argv)

    if not Path(args.mirror).exists():
        print(f"vendor-execution-apis: no git mirror at {args.mirror} (pass --mirror)", file=sys.stderr)
        return 2
    try:
        doc = build(args.mirror, args.commit, not args.no_supplements, not args.no_errata)
    except VendorError as e:
        print(f"vendor-execution-apis: {e}", file=sys.stderr)
        return 1
    text = render(doc)
    n_methods, n_defs = len(doc["methods"]), len(doc["definitions"])
    if args.check:
        current = args.out.read_text() if args.out.exists() else None
        if current != text:
            print(f"vendor-execution-apis: {args.out} is out of date; run "
                  "python3 tools/vendor-execution-apis.py", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date ({n_methods} methods, {n_defs} definitions)")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}: {n_methods} methods, {n_defs} definitions, {len(text)} bytes, "
          f"{doc['source']['repository']}@{doc['source']['commit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
