"""Log selection for `kubectl logs`: current or previous run, last N lines."""

from tether.lab.kubelet.logserver import log_file, tail_bytes


def test_tail_bytes_keeps_last_lines():
    data = b"a\nb\nc\n"
    assert tail_bytes(data, 2) == b"b\nc\n"
    assert tail_bytes(data, None) == data
    assert tail_bytes(data, 0) == b""


def test_current_and_previous_run(tmp_path):
    runs = tmp_path / "ns_pod_uid" / "c"
    runs.mkdir(parents=True)
    for n in (0, 1, 10):
        (runs / f"{n}.log").write_text(f"run {n}\n")
    assert log_file(tmp_path, "ns", "pod", "c", previous=False).name == "10.log"
    assert log_file(tmp_path, "ns", "pod", "c", previous=True).name == "1.log"
    assert log_file(tmp_path, "ns", "other", "c", previous=False) is None
