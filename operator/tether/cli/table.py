"""``tether table``: print the Envoy-identical ring-hash or Maglev table for a list of endpoints.

Contract (DESIGN.md §3.1): one JSON object on stdout with ``algorithm``, ``size``, ``endpoints``
(in the order given), ``table`` (maglev: endpoint index per slot) or ``ring`` (ring-hash:
``[hash, endpoint index]`` sorted by hash) and ``lookups`` (``[{hash, endpoint}]``). Any invalid
input prints one ``tether table: error: …`` line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

_U64_MAX = (1 << 64) - 1


class UsageError(ValueError):
    """Invalid command-line input; reported on stderr with exit status 2."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``table`` subcommand; its func returns 0, or 2 on invalid input."""
    p = subparsers.add_parser(
        "table",
        help="print the Envoy-identical ring-hash or Maglev table for endpoints",
        description=(
            "Build the table Envoy would build for these endpoints and print it as JSON. "
            "ENDPOINT is the host hash key exactly as Envoy hashes it (ip:port, [v6]:port, or "
            "any string); '=WEIGHT' (an integer >= 1) follows the last '='."
        ),
    )
    p.add_argument("endpoints", nargs="*", metavar="ENDPOINT[=WEIGHT]")
    p.add_argument("--algorithm", required=True, choices=("ring-hash", "maglev"))
    p.add_argument("--min-ring-size", metavar="N", help="ring-hash minimum_ring_size (1024)")
    p.add_argument("--max-ring-size", metavar="N", help="ring-hash maximum_ring_size (8388608)")
    p.add_argument("--hash-function", choices=("xx-hash", "murmur-hash-2"), help="ring-hash only")
    p.add_argument("--table-size", metavar="M|auto", help="maglev table size, prime (65537)")
    p.add_argument(
        "--lookup", action="append", default=[], metavar="HASH", help="64-bit hash to look up"
    )
    p.set_defaults(func=run)


def _int(text: str, what: str, low: int = 0, high: int = _U64_MAX) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise UsageError(f"{what} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{what} must be between {low} and {high}, got {value}")
    return value


def parse_endpoints(specs: list[str]) -> list:
    """``ENDPOINT[=WEIGHT]`` strings → Hosts in the given order; UsageError on bad input."""
    from tether.hashing import Host

    if not specs:
        raise UsageError("at least one ENDPOINT is required")
    hosts = []
    for spec in specs:
        key, eq, weight = spec.rpartition("=")
        if not eq:
            key, weight = spec, "1"
        if not key:
            raise UsageError(f"endpoint {spec!r} has an empty hash key")
        if not (weight.isascii() and weight.isdigit()) or int(weight) < 1:
            raise UsageError(f"endpoint {spec!r}: weight must be an integer >= 1, got {weight!r}")
        hosts.append(Host(key, int(weight)))
    return hosts


def build_document(args: argparse.Namespace) -> dict:
    """The JSON document for parsed arguments; UsageError (or ValueError) on invalid input."""
    from tether import hashing as th

    hosts = parse_endpoints(args.endpoints)
    lookups = [_int(x, "--lookup HASH") for x in args.lookup]
    if args.algorithm == "maglev":
        if any(v is not None for v in (args.min_ring_size, args.max_ring_size, args.hash_function)):
            raise UsageError("--min-ring-size/--max-ring-size/--hash-function apply to ring-hash")
        if args.table_size == "auto":
            size = th.auto_table_size(len(hosts))
        elif args.table_size is None:
            size = th.MaglevConfig().table_size
        else:
            size = _int(args.table_size, "--table-size", 2)
        maglev = th.Maglev.build(hosts, th.MaglevConfig(size))
        body = {"table": maglev.table.tolist()}
        chooser, size = maglev, maglev.size
    else:
        if args.table_size is not None:
            raise UsageError("--table-size applies to maglev")
        defaults = th.RingHashConfig()
        config = th.RingHashConfig(
            min_ring_size=_int(args.min_ring_size, "--min-ring-size")
            if args.min_ring_size is not None
            else defaults.min_ring_size,
            max_ring_size=_int(args.max_ring_size, "--max-ring-size")
            if args.max_ring_size is not None
            else defaults.max_ring_size,
            hash_function=args.hash_function or defaults.hash_function,
        )
        ring = th.RingHash.build(hosts, config)
        body = {"ring": [[h, i] for h, i in zip(ring.hashes, ring.indices, strict=True)]}
        chooser, size = ring, len(ring)
    results = []
    for h in lookups:
        index = chooser.choose(h)
        results.append({"hash": h, "endpoint": None if index is None else hosts[index].key})
    return {
        "algorithm": args.algorithm,
        "size": size,
        "endpoints": [h.key for h in hosts],
        **body,
        "lookups": results,
    }


def run(args: argparse.Namespace) -> int:
    """Print the document on stdout (0) or one error line on stderr (2)."""
    try:
        document = build_document(args)
    except ValueError as exc:  # UsageError and the config classes' validation errors
        print(f"tether table: error: {exc}", file=sys.stderr)
        return 2
    json.dump(document, sys.stdout, separators=(", ", ": "))
    sys.stdout.write("\n")
    return 0
