"""Parallel verification on MPI ranks: same seed, same trajectory for any rank count; faults end clearly.

Each case launches ``mpiexec -n K+1 python tests/mpi_run.py`` as a subprocess with a time limit.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="MPI tests need mpi4py (pip install 'openmm-lsd[mpi]')")

HERE = Path(__file__).parent
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (the 'mpich' wheel provides one)")


def launch(ranks, out, *extra, limit=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    command = [MPIEXEC, "-n", str(ranks), sys.executable, str(HERE / "mpi_run.py"), str(out), *extra]
    if ranks == 0:
        command = command[3:]
    return subprocess.run(command, capture_output=True, text=True, timeout=limit, env=env)


def test_same_trajectory_for_1_2_4_verifier_ranks(tmp_path):
    reference = launch(0, tmp_path / "inprocess.npy")
    assert reference.returncode == 0, reference.stderr
    assert "InProcessVerifier" in reference.stdout
    expected = np.load(tmp_path / "inprocess.npy")
    for verifiers in (1, 2, 4):
        run = launch(verifiers + 1, tmp_path / f"k{verifiers}.npy", "--window", str(2 * verifiers))
        assert run.returncode == 0, run.stdout + run.stderr
        assert "MPIVerifier" in run.stdout
        np.testing.assert_array_equal(np.load(tmp_path / f"k{verifiers}.npy"), expected)


@pytest.mark.parametrize("correction", ["extrapolate-quadratic", "refit", "learned"])
def test_corrections_give_the_in_process_trajectory_on_ranks(tmp_path, correction):
    """A refitted draft on rank 0, original drafts on the ranks: still the in-process trajectory, bit for bit."""
    reference = launch(0, tmp_path / "inprocess.npy", "--correction", correction)
    assert reference.returncode == 0, reference.stderr
    run = launch(3, tmp_path / "k2.npy", "--correction", correction, "--window", "5")
    assert run.returncode == 0, run.stdout + run.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "k2.npy"), np.load(tmp_path / "inprocess.npy"))


def test_checkpoint_resumes_exactly_under_another_rank_count(tmp_path):
    """Interrupted after 25 steps on 1 verifier rank, resumed on 3: the uninterrupted 2-rank trajectory."""
    whole = launch(3, tmp_path / "whole.npy")
    assert whole.returncode == 0, whole.stdout + whole.stderr
    out, checkpoint = tmp_path / "parts.npy", tmp_path / "c.lsd"
    first = launch(2, out, "--checkpoint", str(checkpoint), "--stop-after", "5")
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(np.load(out)) == 5
    second = launch(4, out, "--resume", str(checkpoint), "--window", "6")
    assert second.returncode == 0, second.stdout + second.stderr
    np.testing.assert_array_equal(np.load(out), np.load(tmp_path / "whole.npy"))


def test_barostat_same_trajectory_on_ranks_and_resumed_across_rank_counts(tmp_path):
    """NPT (tests/npt.py, a move attempted every 2 steps): in-process, on 3 verifier ranks, and interrupted after
    15 steps on 1 rank then resumed on 2, the same trajectory and box, bit for bit."""
    reference = launch(0, tmp_path / "inprocess.npy", "--system", "npt")
    assert reference.returncode == 0, reference.stderr
    accepted = int(reference.stdout.split("volume moves ")[1].split()[0])
    assert 5 <= accepted < 30, reference.stdout  # 30 attempts in 60 steps; some accepted, not all
    run = launch(4, tmp_path / "k3.npy", "--system", "npt", "--window", "6")
    assert run.returncode == 0, run.stdout + run.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "k3.npy"), np.load(tmp_path / "inprocess.npy"))
    out, checkpoint = tmp_path / "parts.npy", tmp_path / "c.lsd"
    first = launch(2, out, "--system", "npt", "--checkpoint", str(checkpoint), "--stop-after", "3")
    assert first.returncode == 0, first.stdout + first.stderr
    second = launch(3, out, "--system", "npt", "--resume", str(checkpoint), "--window", "3")
    assert second.returncode == 0, second.stdout + second.stderr
    np.testing.assert_array_equal(np.load(out), np.load(tmp_path / "inprocess.npy"))


def test_hung_rank_leaves_a_checkpoint_that_resumes_exactly(tmp_path):
    """Rank 2 hangs (the others take 50 ms per call): rank 0 names it after the 1 s timeout, keeps the last
    accepted step, exits non-zero;
    resuming that checkpoint in one process reproduces the uninterrupted trajectory."""
    whole = launch(0, tmp_path / "whole.npy")
    assert whole.returncode == 0, whole.stderr
    out, checkpoint = tmp_path / "parts.npy", tmp_path / "last.lsd"
    hung = launch(3, out, "--hang-rank", "2", "--timeout", "1", "--delay", "0.05", "--checkpoint-on-failure",
                  str(checkpoint), limit=60)
    assert hung.returncode != 0
    assert "verifier rank 2 returned nothing" in hung.stdout + hung.stderr
    assert "stopped at step" in hung.stdout and checkpoint.exists()
    resumed = launch(0, out, "--resume", str(checkpoint))
    assert resumed.returncode == 0, resumed.stderr
    np.testing.assert_array_equal(np.load(out), np.load(tmp_path / "whole.npy"))


def test_exception_on_a_verifier_rank_is_reported_by_rank_0(tmp_path):
    run = launch(3, tmp_path / "x.npy", "--fail-rank", "2", limit=60)
    assert run.returncode != 0
    assert "verifier rank 2 failed to evaluate the target" in run.stdout + run.stderr
    assert "model exploded" in run.stdout + run.stderr


def test_hung_verifier_rank_is_named_within_the_timeout(tmp_path):
    run = launch(3, tmp_path / "x.npy", "--hang-rank", "1", "--timeout", "3", limit=60)
    assert run.returncode != 0
    assert "verifier rank 1 returned nothing" in run.stdout + run.stderr


def test_dead_verifier_rank_ends_the_job(tmp_path):
    """MPICH's launcher ends every rank when one dies; what matters is that nothing hangs."""
    run = launch(3, tmp_path / "x.npy", "--die-rank", "1", limit=60)
    assert run.returncode != 0
    assert not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize("rank, expected", [("0", "4"), ("1", "4"), ("2", "5"), ("3", "7"), ("5", "5")])
def test_assign_device_spreads_ranks_over_gpus(monkeypatch, rank, expected):
    from openmm_lsd import assignDevice

    for name in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "OPENMM_LSD_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PMI_RANK", rank)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,7")
    monkeypatch.setenv("OPENMM_LSD_DEVICES", "4,5,7")
    assert assignDevice() == expected
    assert os.environ["CUDA_VISIBLE_DEVICES"] == expected
    assert "OPENMM_LSD_DEVICES" not in os.environ


def test_assign_device_without_devices_changes_nothing(monkeypatch):
    from openmm_lsd import assignDevice

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("OPENMM_LSD_DEVICES", raising=False)
    assert assignDevice() is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert assignDevice(devices=[2]) == "2"


@pytest.mark.parametrize("change", [["--set-box", "0.95"], ["--set-parameter", "1.6"]], ids=["box", "parameter"])
def test_box_and_parameters_set_on_the_context_reach_the_ranks(tmp_path, change):
    """A box or global parameter set on sim.context after construction: in-process = 2 verifier ranks, bit for bit
    (and the change does change the trajectory, so the test can see a rank that ignores it)."""
    unchanged = launch(0, tmp_path / "unchanged.npy", "--system", "periodic")
    assert unchanged.returncode == 0, unchanged.stderr
    reference = launch(0, tmp_path / "inprocess.npy", "--system", "periodic", *change)
    assert reference.returncode == 0, reference.stderr
    assert not np.array_equal(np.load(tmp_path / "inprocess.npy"), np.load(tmp_path / "unchanged.npy"))
    run = launch(3, tmp_path / "k2.npy", "--system", "periodic", "--window", "5", *change)
    assert run.returncode == 0, run.stdout + run.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "k2.npy"), np.load(tmp_path / "inprocess.npy"))


def test_per_particle_change_that_cannot_reach_the_ranks_is_refused(tmp_path):
    """updateParametersInContext on rank 0's Context: in-process it is followed; on ranks a clear error."""
    inprocess = launch(0, tmp_path / "inprocess.npy", "--system", "periodic", "--update-per-particle")
    assert inprocess.returncode == 0, inprocess.stderr
    run = launch(3, tmp_path / "k2.npy", "--system", "periodic", "--update-per-particle", limit=60)
    assert run.returncode != 0
    assert "does not reach ranks that built their own System" in run.stdout + run.stderr


def test_target_error_at_a_discarded_draft_position_does_not_stop_the_run(tmp_path):
    """The ranks' target raises at every position off the accepted path (recorded in-process): those are drafts
    that get discarded, so the MPI run goes on and equals the in-process one, as the in-process run would."""
    path = tmp_path / "path.npy"
    reference = launch(0, tmp_path / "inprocess.npy", "--record-evaluations", str(path))
    assert reference.returncode == 0, reference.stderr
    run = launch(4, tmp_path / "k3.npy", "--fail-off-path", str(path), "--window", "6")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "evaluated off the accepted path" in run.stderr  # the ranks did fail at discarded drafts
    np.testing.assert_array_equal(np.load(tmp_path / "k3.npy"), np.load(tmp_path / "inprocess.npy"))
