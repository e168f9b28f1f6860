"""Hash primitives reproduce Envoy's: XXH64, the span (seed-chained) overload, murmur2-64."""

import xxhash

from tether.hashing import murmur2_64, rotl64, xxh64, xxh64_chain


def test_xxh64_is_plain_xxh64_seed_zero():
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64("192.168.1.1") == 4727775843391247014  # Envoy source-IP vector (spec §5.4)
    assert xxh64("2001:db8::1") == 2793145402038030385
    assert xxh64(b"x", seed=1) == xxhash.xxh64(b"x", seed=1).intdigest()


def test_span_overload_chains_seeds_not_concatenation():
    assert xxh64_chain([b"value1", b"value2"]) == 9193721384592083371  # spec §1.1
    assert xxh64_chain([b"value1", b"value2"]) != xxh64(b"value1value2")
    assert xxh64_chain([b"only"]) == xxh64(b"only")


def test_murmur2_reproduces_envoy_ring_positions():
    # ring_hash_lb_test.cc BasicWithMurmur2: first/last ring positions of :85 and :80
    assert murmur2_64(b"127.0.0.1:85_0") == 1358027074129602068
    assert murmur2_64("127.0.0.1:80_1") in {15427156902705414897, 17613279263364193813}


def test_murmur2_handles_every_tail_length():
    # 0..17 bytes cover the empty input, 1..7-byte tails and whole 8-byte words; all distinct
    values = {murmur2_64(b"a" * n) for n in range(18)}
    assert len(values) == 18
    assert all(0 <= v < 2**64 for v in values)


def test_rotl64_wraps_the_top_bit():
    assert rotl64(1 << 63) == 1
    assert rotl64(0x8000000000000001) == 3
