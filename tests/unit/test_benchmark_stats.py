"""The pure helpers of scripts/benchmark.py: percentiles, CPU accounting from /proc text, ratios, cache-miss
variants."""

import argparse
import importlib.util
import math
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "benchmark_script", Path(__file__).resolve().parents[2] / "scripts" / "benchmark.py"
)
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # dataclasses look their module up while the file executes
_spec.loader.exec_module(bench)


@pytest.mark.parametrize("q", [0, 1, 50, 95, 99, 100])
@pytest.mark.parametrize("n", [1, 2, 7, 100, 101])
def test_percentile_matches_numpy(q, n):
    samples = list(np.random.default_rng(n).exponential(40.0, n))
    assert bench.percentile(samples, q) == pytest.approx(float(np.percentile(samples, q)))


def test_percentile_and_summary_of_nothing():
    assert math.isnan(bench.percentile([], 50))
    assert all(math.isnan(v) for v in bench.latency_summary([]).values())
    s = bench.latency_summary([3.0, 1.0, 2.0])
    assert (s["p50"], s["min"], s["max"], s["mean"]) == (2.0, 1.0, 3.0, 2.0)


def _stat(pid, comm, ppid, utime, stime):
    # fields 3.. : state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime ...
    return f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0 {utime} {stime} 7 8 20 0 1 0 5 0 0\n"


def test_parse_proc_stat_with_awkward_command_names():
    s = bench.parse_proc_stat(_stat(42, "tritonserver", 1, 150, 25))
    assert (s.pid, s.comm, s.ppid, s.ticks) == (42, "tritonserver", 1, 175)
    # a command name with spaces and a closing parenthesis: fields are found from the last ')'
    s = bench.parse_proc_stat(_stat(7, "a) b (c", 42, 3, 4))
    assert (s.pid, s.comm, s.ppid, s.ticks) == (7, "a) b (c", 42, 7)


def test_parse_proc_stat_of_this_process():
    s = bench.parse_proc_stat(Path(f"/proc/{os.getpid()}/stat").read_text())
    assert s.pid == os.getpid() and s.ppid == os.getppid() and s.ticks >= 0


def test_tree_accounting():
    procs = {
        p.pid: p
        for p in map(
            bench.parse_proc_stat,
            [
                _stat(1, "init", 0, 1000, 1000),
                _stat(10, "bench", 1, 50, 5),
                _stat(20, "tritonserver", 10, 100, 10),
                _stat(21, "triton_python_backend_stub", 20, 30, 3),
                _stat(22, "triton_python_backend_stub", 20, 40, 4),
                _stat(23, "grandchild", 22, 1, 1),
                _stat(30, "face-api", 10, 60, 6),
            ],
        )
    }
    assert bench.tree_members({p: s.ppid for p, s in procs.items()}, 20) == {20, 21, 22, 23}
    assert bench.tree_ticks(procs, 20) == 110 + 33 + 44 + 2
    assert bench.tree_ticks(procs, 10, with_children=False) == 55
    assert bench.tree_ticks(procs, 10) == 55 + 189 + 66
    assert bench.tree_ticks(procs, 99) is None


def test_cpu_seconds_and_cores():
    before = {"bench": 100, "triton": 1000, "api": None}
    after = {"bench": 150, "triton": 1400, "api": None}
    cpu = bench.cpu_seconds(before, after, hz=100)
    assert cpu == {"bench": 0.5, "triton": 4.0, "api": None}
    assert bench.cores_busy(4.5, 3.0) == pytest.approx(1.5)
    assert bench.cores_busy(None, 3.0) is None
    assert bench.cores_busy(1.0, 0.0) is None
    assert bench.cpu_seconds({"x": 5}, {"x": 3}, 100) == {"x": 0.0}  # a restarted process never counts negative
    assert bench.cpu_caveat(cpu) == " (without api)"
    assert bench.cpu_caveat({"bench": 1.0}) == ""


def test_ratio_formatting():
    assert bench.format_ratio(bench.ratio(50.0, 20.0)) == "2.50×"
    assert bench.format_ratio(bench.ratio(1.0, 3.0), digits=3) == "0.333×"
    assert bench.format_ratio(bench.ratio(1.0, None)) == "—"
    assert bench.format_ratio(bench.ratio(1.0, 0.0)) == "—"
    assert bench.format_ratio(bench.ratio(math.nan, 2.0)) == "—"
    assert bench.format_number(None) == "—" and bench.format_number(12.345, 2) == "12.35"


def test_face_mismatches():
    answers = [(0, 6), (1, 1), (0, 5), (0, 5), (1, 2), (2, 9)]
    assert bench.face_mismatches(answers, [6, 1, None]) == {
        "image 0: got 5, expected 6": 2,
        "image 1: got 2, expected 1": 1,
    }
    assert bench.face_mismatches([(0, 6)], [6]) == {}


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_variants_are_new_bytes_with_the_same_pixels(ext):
    y, x = np.mgrid[:40, :60]
    img = np.dstack([x * 4, y * 6, x + y]).astype(np.uint8)
    data = cv2.imencode(ext, img)[1].tobytes()
    a, b = bench.variant(data, "bench 1"), bench.variant(data, "bench 2")
    assert len({data, a, b}) == 3
    decoded = [cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR) for d in (data, a, b)]
    assert all(np.array_equal(decoded[0], d) for d in decoded[1:])


def test_variant_refuses_other_formats():
    with pytest.raises(ValueError):
        bench.variant(b"GIF89a....", "x")


def test_markdown_table_and_lists():
    assert bench.markdown_table(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"
    assert bench.parse_int_list("1, 4,8") == [1, 4, 8]
    with pytest.raises(argparse.ArgumentTypeError):
        bench.parse_int_list("0,2")


def _model(name, count, ns, queue_ns, compute_ns, executions, inferences):
    # as tritonclient's get_inference_statistics(as_json=True): int64 values are strings
    return {
        "name": name,
        "execution_count": str(executions),
        "inference_count": str(inferences),
        "inference_stats": {
            "success": {"count": str(count), "ns": str(ns)},
            "queue": {"count": str(count), "ns": str(queue_ns)},
            "compute_input": {"count": str(count), "ns": "0"},
            "compute_infer": {"count": str(count), "ns": str(compute_ns)},
            "compute_output": {"count": str(count), "ns": "0"},
        },
    }


def test_step_delta():
    before = {"model_stats": [_model("embedder", 10, 10**8, 10**7, 5 * 10**7, 5, 30), _model("idle", 3, 1, 1, 1, 3, 3)]}
    after = {
        "model_stats": [
            _model("embedder", 30, 5 * 10**8, 5 * 10**7, 25 * 10**7, 10, 90),
            _model("idle", 3, 1, 1, 1, 3, 3),  # nothing new: left out
            {"name": "new", "inference_stats": {"success": {"count": "2", "ns": "4000000"}}},
        ]
    }
    steps = bench.step_delta(before, after)
    assert set(steps) == {"embedder", "new"}
    e = steps["embedder"]
    assert (e["requests"], e["executions"], e["inferences"]) == (20, 5, 60)
    assert e["queue_ms"] == pytest.approx(2.0) and e["compute_ms"] == pytest.approx(10.0)
    assert e["total_ms"] == pytest.approx(20.0)
    assert steps["new"]["total_ms"] == pytest.approx(2.0) and steps["new"]["compute_ms"] == 0


def test_parse_cpu_line():
    text = "cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 50 2 25 500 10 1 1 3 0 0\nintr 1 2 3\n"
    assert bench.parse_cpu_line(text) == 100 + 5 + 50 + 3 + 2 + 7
    assert bench.parse_cpu_line("cpu  1 2 3 4\n") == 6  # old kernels: fewer columns
    assert bench.parse_cpu_line(Path("/proc/stat").read_text()) > 0
    with pytest.raises(ValueError):
        bench.parse_cpu_line("intr 1\n")


def test_server_timing_header_parsing_and_split():
    assert bench.parse_server_timing("app;dur=1.25, inference;dur=40") == {"app": 1.25, "inference": 40.0}
    assert bench.parse_server_timing("app;desc=x, bad;dur=oops, ") == {}
    assert bench.parse_server_timing(None) == {}
    split = bench.server_timing_summary([(50.0, 45.0, 43.0), (60.0, 52.0, 49.0), (40.0, 39.0, 38.5)])
    assert split == {"client": 50.0, "api": 45.0, "inference": 43.0, "api_own": 2.0, "outside_api": 5.0}
    assert bench.server_timing_summary([]) is None


def _result(path, n, per_image_ms, wall_s=1.0, timing=()):
    r = bench.Result(path, path, n)
    for k, samples in enumerate(per_image_ms):
        for ms in samples:
            r.latencies_ms.append(ms)
            r.answers.append((k, 1))
    r.wall_s = wall_s
    r.server_timing = list(timing)
    return r


def test_per_image_medians_and_goals():
    base = _result("baseline", 1, [[40, 42, 41], [20, 22, 21]], wall_s=6 / 25)
    g1 = _result("grpc", 1, [[42, 43, 44], [21, 22, 23]])
    g8 = _result("grpc", 8, [[200] * 4, [100] * 4], wall_s=8 / 40)
    rest = _result("rest-miss", 1, [[45, 46, 47], [22, 23, 24]], timing=[(46.0, 45.0, 43.8)])
    hit = _result("rest-hit", 1, [[1.0] * 50, [2.0] * 48 + [9.0, 9.0]])
    assert bench.per_image_p50(rest, 2) == [46, 23]
    got = {g: (v, ok) for g, _, v, ok in bench.goals([base, g1, g8, rest, hit], 2)}
    assert got["ensemble throughput at 8 clients"] == ("1.60x", True)
    assert got["p50 at 1 client, each image"] == ("1.05x (worst image)", True)  # max(43/41, 22/21)
    assert got["REST p50 over direct gRPC, 1 client, each image"] == ("+3.0 ms", False)
    assert got["  of which the API's own work (Server-Timing)"] == ("1.20 ms", None)
    assert got["cache hit p99, 1 client"] == ("9.00 ms", False)  # two slow hits in a hundred set the p99
