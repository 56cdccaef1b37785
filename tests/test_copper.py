"""The copper system (issue #9): Sutton-Chen EAM draft, GFN1-xTB target, the CMMotionRemover rule."""

import numpy as np
import openmm
import pytest

pytest.importorskip("tblite", reason="needs tblite (extra 'xtb')")

from openmm_lsd import SpeculativeSimulation, systems  # noqa: E402


def energyAndForces(system, positions, box=None):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy()._value, state.getForces(asNumpy=True)._value


@pytest.mark.parametrize("kind, size", [("cluster", 13), ("cluster", 55), ("bulk", 32)])
def test_sutton_chen_forces_match_finite_differences(kind, size):
    example = systems.copper(kind, size)
    rng = np.random.default_rng(0)
    x = example.positions + rng.normal(scale=0.01, size=example.positions.shape)
    box = example.topology.getPeriodicBoxVectors()
    e0, f = energyAndForces(example.draft, x, box)
    assert np.isfinite(e0) and e0 < 0
    h = 1e-5
    for atom, axis in [(0, 0), (1, 2), (size - 1, 1)]:
        xp, xm = x.copy(), x.copy()
        xp[atom, axis] += h
        xm[atom, axis] -= h
        numeric = -(energyAndForces(example.draft, xp, box)[0] - energyAndForces(example.draft, xm, box)[0]) / (2 * h)
        assert numeric == pytest.approx(f[atom, axis], rel=1e-5, abs=1e-3)


def test_sutton_chen_energy_of_the_ideal_cluster_by_hand():
    x = systems.icosahedron(1)
    p = systems.SUTTON_CHEN_CU
    r = np.linalg.norm(x[:, None] - x[None], axis=-1)
    off = ~np.eye(len(x), dtype=bool)
    pair = 0.5 * ((p["a"] / r[off]) ** p["n"]).sum()
    rho = np.array([((p["a"] / r[i][off[i]]) ** p["m"]).sum() for i in range(len(x))])
    expected = p["eps"] * (pair - p["c"] * np.sqrt(rho).sum())
    system = openmm.System()
    force = systems.suttonChenForce()
    for _ in x:
        system.addParticle(63.546)
        force.addParticle([])
    system.addForce(force)
    assert energyAndForces(system, x)[0] == pytest.approx(expected, rel=1e-12)


def test_target_and_draft_agree_and_the_cmmotionremover_rule():
    example = systems.copper("cluster", 13)
    target, draft = example.target, example.draft
    assert target.getNumParticles() == draft.getNumParticles() == 13
    for i in range(13):
        assert target.getParticleMass(i) == draft.getParticleMass(i)
    frequencies = [[f.getFrequency() for f in s.getForces() if isinstance(f, openmm.CMMotionRemover)]
                   for s in (target, draft)]
    assert frequencies[0] == frequencies[1] == [1]  # openmm-ml's, copied exactly
    bare = openmm.System()
    for i in range(13):
        bare.addParticle(draft.getParticleMass(i))
    bare.addForce(openmm.XmlSerializer.clone(draft.getForce(0)))
    with pytest.raises(ValueError, match="CMMotionRemover"):
        SpeculativeSimulation(example.topology, target, bare, 300, 1.0, 0.002)


def test_short_lsd_run_on_cu13_accepts_most_drafts():
    """60 steps at 300 K, 1/ps, 2 fs, default correction: acceptance above 0.5 (measured 0.9 over 200 steps)."""
    example = systems.copper("cluster", 13)
    sim = SpeculativeSimulation(example.topology, example.target, example.draft, 300, 1.0, 0.002, window=8,
                                platform="Reference", seed=1)
    sim.context.setPositions(example.positions)
    sim.context.setVelocitiesToTemperature(300, 1)
    sim.step(60)
    assert sim.statistics.steps == 60
    assert sim.statistics.acceptanceRate > 0.5, sim.statistics


def test_builder_refuses_unknown_sizes():
    with pytest.raises(ValueError, match="13, 55 or 147"):
        systems.copper("cluster", 20)
    with pytest.raises(ValueError, match="32, 108 or 256"):
        systems.copper("bulk", 40)
    with pytest.raises(ValueError, match="'cluster' or 'bulk'"):
        systems.copper("wire", 13)


def test_cli_runs_the_copper_cluster(tmp_path):
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "openmm_lsd.cli", "run", "--system", "copper-cluster", "--steps", "20",
                           "--output", str(tmp_path / "cu"), "--no-progress"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "cu" / "summary.json").read_text())
    assert summary["settings"]["atoms"] == 13 and summary["steps"] == 20
    assert "gfn1-xtb" in summary["settings"]["description"]


def test_copper_bench_case_writes_its_figures(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "cu.json"
    done = subprocess.run([sys.executable, "-m", "openmm_lsd.cli", "bench", "--case", "copper", "--latency-ms", "5",
                           "--verifiers", "0", "--window", "4", "--steps", "12", "--serial-steps", "4", "--json",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    for key in ("speedup", "bound", "efficiency", "steps_per_round", "acceptance_by_position", "throughput_cap",
                "steps_per_target_latency"):
        assert key in result
    assert result["case"] == "copper" and result["latency_ms"] == 5 and result["size"] == 13
