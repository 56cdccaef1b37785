"""The command line: bench runs side by side and writes the documented JSON keys."""

import json
import subprocess
import sys

import pytest

KEYS = {"speedup", "bound", "efficiency", "acceptance_by_position", "steps_per_round", "serial_seconds_per_step",
        "lsd_seconds_per_step", "target_seconds", "draft_seconds", "overhead_seconds", "verifiers", "window"}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "openmm_lsd.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("verifiers", [0, 2])
def test_bench_writes_json(tmp_path, verifiers):
    if verifiers:
        pytest.importorskip("mpi4py", reason="needs mpi4py")
    out = tmp_path / "b.json"
    run = cli("bench", "--case", "emulated", "--latency-ms", "2", "--verifiers", str(verifiers), "--window", "4",
              "--steps", "40", "--serial-steps", "20", "--json", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert KEYS <= set(result)
    assert result["verifiers"] == max(verifiers, 1) and result["window"] == 4
    assert result["speedup"] > 0 and result["steps"] == 42
    assert "speedup" in run.stdout


def test_bench_refuses_unwritable_json():
    run = cli("bench", "--json", "/nonexistent/folder/out.json")
    assert run.returncode != 0
    assert "not a writable folder" in run.stderr
