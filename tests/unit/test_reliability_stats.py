"""The pure helpers of scripts/reliability.py: Welch's t, latency summaries, status tallies and their classes, the
log scan for secrets and image data, the disk scan for image bytes."""

import importlib.util
import math
import os
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "reliability_script", Path(__file__).resolve().parents[2] / "scripts" / "reliability.py"
)
rel = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = rel  # dataclasses look their module up while the file executes
_spec.loader.exec_module(rel)


# --------------------------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_t_matches_scipy(seed):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    a, b = list(rng.normal(1.0, 0.1, 40)), list(rng.normal(1.05, 0.3, 25))
    t, df = rel.welch_t(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(ref.statistic)
    assert df == pytest.approx(ref.df)


def test_welch_t_by_hand_and_edge_cases():
    # means 2 and 5, sample variances 1 and 1, n 3 each: t = -3 / sqrt(2/3), df = 4
    t, df = rel.welch_t([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert t == pytest.approx(-3 / math.sqrt(2 / 3)) and df == pytest.approx(4.0)
    assert all(math.isnan(v) for v in rel.welch_t([1.0], [1.0, 2.0]))
    assert rel.welch_t([2.0, 2.0], [2.0, 2.0])[0] == 0.0  # identical constants: no difference
    assert rel.welch_t([3.0, 3.0], [2.0, 2.0])[0] == math.inf
    t, _ = rel.welch_t([1.0, 2.0] * 50, [1.0, 2.0] * 50)
    assert t == 0.0


@pytest.mark.parametrize("q", [0, 50, 95, 99, 100])
def test_percentile_matches_numpy(q):
    samples = list(np.random.default_rng(q).exponential(30.0, 57))
    assert rel.percentile(samples, q) == pytest.approx(float(np.percentile(samples, q)))


def test_summary():
    s = rel.summary([4.0, 1.0, 3.0, 2.0])
    assert s["n"] == 4 and s["min"] == 1.0 and s["max"] == 4.0 and s["mean"] == 2.5
    assert s["p50"] == 2.5 and s["stdev"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    empty = rel.summary([])
    assert empty["n"] == 0 and math.isnan(empty["p50"]) and math.isnan(empty["stdev"])
    assert math.isnan(rel.summary([5.0])["stdev"])


# --------------------------------------------------------------------------------------------- statuses


def rec(kind, status, code=None, start=0.0, end=0.1, **kw):
    return rel.Rec(kind, start, end, status, code, **kw)


def test_tally_statuses_and_text():
    records = [rec("detect", 200), rec("detect", 200), rec("detect", 503, "overloaded"), rec("usage", 200)]
    records += [rec("detect", 0, "timeout"), rec("detect", 0, "transport: ServerDisconnectedError")]
    tallies = rel.tally_statuses(records)
    assert tallies["detect"] == Counter({200: 2, 503: 1, "timeout": 1, "transport": 1})
    assert tallies["usage"] == Counter({200: 1})
    assert rel.status_text(tallies["detect"]) == "200: 2, 503: 1, timeout: 1, transport: 1"
    assert rel.status_text(Counter()) == "—"


def test_classify_without_faults():
    assert rel.classify(rec("detect", 200)) == "ok"
    assert rel.classify(rec("bad_corrupt", 400, "invalid_image")) == "ok"
    assert rel.classify(rec("bad_wrong_key", 429, "rate_limited")) == "ok"
    assert rel.classify(rec("detect", 503, "overloaded")) == "overloaded"  # the documented in-flight cap
    assert rel.classify(rec("usage", 503, "overloaded")) == "unexpected_5xx"  # usage never calls Triton
    assert rel.classify(rec("detect", 503, "inference_unavailable")) == "unexpected_5xx"
    assert rel.classify(rec("detect", 500, "internal_error")) == "unexpected_5xx"
    assert rel.classify(rec("detect", 422, "invalid_request")) == "unexpected"
    assert rel.classify(rec("detect", 0, "timeout")) == "timeout"
    assert rel.classify(rec("detect", 0, "transport: ClientOSError")) == "transport"


def test_classify_inside_fault_windows():
    triton = rel.Window("triton", 10.0, 20.0)
    redis = rel.Window("redis", 30.0, 40.0)
    down = rec("detect", 503, "inference_unavailable", start=19.5, end=20.5)  # overlaps the window's end
    assert rel.classify(down, [triton]) == "fault"
    assert rel.classify(down, [redis]) == "unexpected_5xx"  # Triton's errors are not allowed by a Redis outage
    late = rec("detect", 503, "inference_unavailable", start=21.0, end=21.1)
    assert rel.classify(late, [triton, redis]) == "unexpected_5xx"
    assert rel.classify(rec("ready", 503, None, start=12, end=12.1), [triton]) == "fault"
    assert rel.classify(rec("usage", 503, "store_unavailable", start=31, end=31.1), [redis]) == "fault"
    assert rel.classify(rec("usage", 503, "store_unavailable", start=41, end=41.1), [redis]) == "unexpected_5xx"
    assert rel.classify(rec("new_key_detect", 401, "unauthorized", start=35, end=35.1), [redis]) == "fault"
    assert rel.classify(rec("detect", 401, "unauthorized", start=35, end=35.1), [redis]) == "unexpected"
    counts = rel.tally_classes([down, late, rec("detect", 200)], [triton])
    assert counts == Counter({"fault": 1, "unexpected_5xx": 1, "ok": 1})


def test_answer_label_and_first():
    assert rel.answer_label(rec("detect", 503, "inference_unavailable")) == "503 inference_unavailable"
    assert rel.answer_label(rec("ready", 503)) == "503 (readiness)"
    assert rel.answer_label(rec("detect", 0, "timeout")) == "timeout"
    records = [rec("a", 200, start=0, end=3), rec("b", 503, start=1, end=2), rec("c", 503, start=0, end=5)]
    assert rel.first(records, lambda r: r.status == 503).kind == "b"
    assert rel.first(records, lambda r: r.status == 404) is None


def test_key_groups():
    per_key = [
        {"id": "k1", "origin": "load (before the run)", "auth_status": 200, "acknowledged": 5, "counted": 5}
        | {"unanswered": 0},
        {"id": "k2", "origin": "created during load", "auth_status": 200, "acknowledged": 1, "counted": 1}
        | {"unanswered": 0},
        {"id": "k3", "origin": "created during load", "auth_status": 401, "acknowledged": 1, "counted": None}
        | {"unanswered": 1},
    ]
    groups = rel.key_groups(per_key)
    assert [g["keys"] for g in groups] == ["k1", "2 key(s)"]
    assert groups[1]["auth"] == Counter({200: 1, 401: 1}) and groups[1]["acknowledged"] == 2
    assert groups[1]["counted"] == 1 and groups[1]["unanswered"] == 1


def test_near_miss_changes_only_the_last_character():
    key = "fa_" + "A" * 42 + "Q"
    rng = random.Random(0)
    for _ in range(50):
        miss = rel.near_miss(key, rng)
        assert len(miss) == len(key) and miss[:-1] == key[:-1] and miss[-1] != key[-1]
        assert miss[-1] in rel.URLSAFE
    far = rel.random_key()
    assert far.startswith("fa_") and len(far) == 46


# --------------------------------------------------------------------------------------------- log scan


def test_scan_log_text_finds_secrets_keys_tokens_and_images():
    secret = "fa_" + "s" * 43
    sent = "fa_" + "w" * 43
    admin = "admin-" + "t" * 26
    clean = '{"event": "request", "route": "/v1/faces/detect", "status": 200, "key_id": "0123abcd"}\n'
    assert all(v == 0 for v in rel.scan_log_text(clean * 10, [secret], [sent], admin, ["rel 1234"]).values())

    leaky = "\n".join(
        [
            f'{{"message": "bad key {secret}"}}',
            f'{{"message": "near {secret[:-1]}X"}}',  # a near miss of the secret reveals it all the same
            f'{{"message": "truncated {secret[:14]}"}}',
            f'{{"message": "sent {sent}"}}',
            '{"message": "unknown fa_zzzzzzzzzzzzzz"}',
            f'{{"message": "admin {admin[:12]}"}}',
            '{"message": "data:image/jpeg;base64,/9j/4AAQSkZJRg"}',
            '{"message": "iVBORw0KGgoAAAANSUhEUg"}',
            '{"body": "' + "QUJD" * 40 + '"}',
            '{"message": "comment rel 1234 here"}',
        ]
    )
    counts = rel.scan_log_text(leaky, [secret], [sent], admin, ["rel 1234"])
    assert counts["API key secrets"] == 3
    assert counts["other keys sent"] == 1
    assert counts["other fa_ tokens"] == 1
    assert counts["admin token"] == 1
    assert counts["base64 runs"] == 1
    assert counts["image data"] == 3  # /9j/, iVBORw0KGgo, the run's tag


# --------------------------------------------------------------------------------------------- disk scan


def test_image_magic_and_needles():
    assert rel.image_magic(b"\xff\xd8\xff\xe0rest") == "jpeg"
    assert rel.image_magic(b"\x89PNG\r\n\x1a\nrest") == "png"
    assert rel.image_magic(b"xx\xff\xd8\xff") is None  # only at the start: JPEG magic inside binary data is noise
    assert rel.find_needles(b"abcXYZabcXYZ", {"x": b"XYZ", "q": b"QQ", "empty": b""}) == {"x": 2}


def test_snapshot_changes_and_scan(tmp_path):
    (tmp_path / "keep.txt").write_text("same")
    (tmp_path / "grow.log").write_text("a")
    (tmp_path / "skip").mkdir()
    (tmp_path / "skip" / "x.bin").write_bytes(b"\xff\xd8\xff")
    before, truncated = rel.snapshot(tmp_path, exclude=[tmp_path / "skip"])
    assert not truncated and set(before) == {str(tmp_path / "keep.txt"), str(tmp_path / "grow.log")}

    with open(tmp_path / "grow.log", "a") as f:
        f.write("more")
    (tmp_path / "new.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 20)
    (tmp_path / "spool.tmp").write_bytes(b"header--rel nonce 7--tail")
    os.symlink(tmp_path / "new.jpg", tmp_path / "link.jpg")  # links are not followed or listed
    after, _ = rel.snapshot(tmp_path, exclude=[tmp_path / "skip"])
    changed = rel.changed_files(before, after)
    assert changed == sorted(str(tmp_path / n) for n in ("grow.log", "new.jpg", "spool.tmp"))

    needles = {"tag": b"rel nonce"}
    assert rel.scan_file(str(tmp_path / "grow.log"), needles) is None
    assert rel.scan_file(str(tmp_path / "new.jpg"), needles)["magic"] == "jpeg"
    found = rel.scan_file(str(tmp_path / "spool.tmp"), needles)
    assert found["magic"] is None and found["needles"] == {"tag": 1}
    assert rel.scan_file(str(tmp_path / "new.jpg"), needles, max_bytes=4)["skipped"] == "too large to read"
    assert rel.scan_file(str(tmp_path / "gone"), needles)["skipped"] == "FileNotFoundError"

    capped, truncated = rel.snapshot(tmp_path, limit=2)
    assert truncated and len(capped) == 2


def test_written_fds_sees_files_open_for_writing(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"x")
    with open(path, "rb"):
        assert str(path) not in rel.written_fds(os.getpid())  # read-only: not reported
    with open(path, "ab"):
        assert str(path) in rel.written_fds(os.getpid())
    with open(tmp_path / "gone.bin", "wb"):
        os.unlink(tmp_path / "gone.bin")
        assert f"{tmp_path / 'gone.bin'} (deleted)" in rel.written_fds(os.getpid())
    assert rel.written_fds(2**22 + 12345) == set()  # no such process


def test_verdict_order_and_marks():
    vs = [rel.verdict("3d. Logs", "a", "0", "0", True), rel.verdict("1. Load", "b", "0", "1", False)]
    vs.append(rel.verdict("2c. Nothing lost (API restart)", "c", "", "", None))
    assert [v["section"] for v in rel.sorted_verdicts(vs)] == ["1. Load", "2c. Nothing lost (API restart)", "3d. Logs"]
    table = rel.verdict_table(rel.sorted_verdicts(vs))
    assert "**FAIL**" in table and "| pass |" in table and "| info |" in table
