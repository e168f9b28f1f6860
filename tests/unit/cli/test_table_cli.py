"""`tether table` reproduces Envoy's vectors as JSON and refuses bad input with exit code 2."""

import json
import subprocess
import sys

import pytest

from tether.cli import main

PORTS = [f"127.0.0.1:{p}" for p in range(90, 96)]


def run(capsys, *argv):
    code = main(["table", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_maglev_basic_vector(capsys):
    code, out, err = run(
        capsys, *PORTS, "--algorithm", "maglev", "--table-size", "7", "--lookup", "10"
    )
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc == {
        "algorithm": "maglev",
        "size": 7,
        "endpoints": PORTS,
        "table": [2, 4, 0, 1, 5, 0, 3],
        "lookups": [{"hash": 10, "endpoint": "127.0.0.1:91"}],
    }


def test_ring_basic_vector_with_lookups(capsys):
    lookups = ["0", str(2**64 - 1), "3551244743356806947", "0x31488e475e417724"]
    argv = [*PORTS, "--algorithm", "ring-hash", "--min-ring-size", "12"]
    code, out, _ = run(capsys, *argv, *[arg for x in lookups for arg in ("--lookup", x)])
    doc = json.loads(out)
    assert code == 0 and doc["size"] == 12
    assert doc["ring"][:3] == [
        [833437586790550860, 4],
        [928266305478181108, 2],
        [1033482794131418490, 0],
    ]
    assert doc["ring"][-1] == [16117243373044804889, 0]
    assert [x["endpoint"] for x in doc["lookups"]] == [
        "127.0.0.1:94",
        "127.0.0.1:94",
        "127.0.0.1:95",
        "127.0.0.1:93",  # 0x31488e475e417724 = 3551244743356806948
    ]


def test_weights_and_murmur(capsys):
    code, out, _ = run(
        capsys,
        "127.0.0.1:90=1",
        "127.0.0.1:91=2",
        "127.0.0.1:92=3",
        "--algorithm",
        "ring-hash",
        "--min-ring-size",
        "6",
        "--max-ring-size",
        "6",
    )
    assert code == 0
    assert sorted(i for _, i in json.loads(out)["ring"]) == [0, 1, 1, 2, 2, 2]
    hosts = [f"127.0.0.1:{p}" for p in range(80, 86)]
    code, out, _ = run(
        capsys,
        *hosts,
        "--algorithm",
        "ring-hash",
        "--min-ring-size",
        "12",
        "--hash-function",
        "murmur-hash-2",
    )
    assert json.loads(out)["ring"][0] == [1358027074129602068, 5]


def test_default_and_auto_table_sizes(capsys):
    _, out, _ = run(capsys, "a:1", "b:1", "--algorithm", "maglev")
    assert json.loads(out)["size"] == 65537
    _, out, _ = run(capsys, "a:1", "b:1", "--algorithm", "maglev", "--table-size", "auto")
    doc = json.loads(out)
    assert doc["size"] == 211 and len(doc["table"]) == 211


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["a", "--algorithm", "maglev", "--table-size", "8"], "prime"),
        (["--algorithm", "maglev"], "ENDPOINT"),
        (["a=x", "--algorithm", "maglev"], "weight"),
        (["a=0", "--algorithm", "ring-hash"], "weight"),
        (["=3", "--algorithm", "ring-hash"], "empty"),
        (["a", "--algorithm", "maglev", "--table-size", "seven"], "integer"),
        (
            ["a", "--algorithm", "ring-hash", "--min-ring-size", "20", "--max-ring-size", "10"],
            "minimum_ring_size",
        ),
        (["a", "--algorithm", "ring-hash", "--min-ring-size", "9000000"], "8388608"),
        (["a", "--algorithm", "ring-hash", "--lookup", "18446744073709551616"], "--lookup"),
        (["a", "--algorithm", "ring-hash", "--table-size", "7"], "maglev"),
        (["a", "--algorithm", "maglev", "--min-ring-size", "7"], "ring-hash"),
    ],
)
def test_invalid_input_exits_2_with_a_message(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("tether table: error:") and message in err


def test_as_a_subprocess():
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "tether",
            "table",
            *PORTS,
            "--algorithm",
            "maglev",
            "--table-size",
            "7",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["table"] == [2, 4, 0, 1, 5, 0, 3]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "tether",
            "table",
            "a",
            "--algorithm",
            "maglev",
            "--table-size",
            "8",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert "The table size of maglev must be prime number" in bad.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "tether", "table", "a", "--algorithm", "rendezvous"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
