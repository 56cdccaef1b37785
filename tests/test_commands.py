"""``openmm-lsd run / estimate / validate``, the example systems and the examples/ scripts.

The default run is the offline GFN2-xTB water system (openmm-ml + tblite); these
tests need the 'xtb' and 'analysis' extras, which the 'test' extra installs.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openmmml", reason="needs openmm-ml (extra 'xtb')")
pytest.importorskip("tblite", reason="needs tblite (extra 'xtb')")
mdtraj = pytest.importorskip("mdtraj", reason="needs mdtraj (extra 'analysis')")

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, OMP_NUM_THREADS="1")  # one xTB thread: in-process and MPI runs compute the same bits


def cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "openmm_lsd.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=cwd)


def test_default_run_writes_a_trajectory_mdtraj_reads(tmp_path):
    out = tmp_path / "run"
    done = cli("run", "--steps", "60", "--output", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    for name in ("topology.pdb", "trajectory.dcd", "log.csv", "statistics.csv", "summary.json", "acceptance.png"):
        assert (out / name).is_file(), name
    traj = mdtraj.load(str(out / "trajectory.dcd"), top=str(out / "topology.pdb"))
    assert traj.n_atoms == 24 and traj.n_frames == 6 and traj.topology.n_residues == 8
    summary = json.loads((out / "summary.json").read_text())
    assert {"acceptance_rate", "steps_per_round", "steps", "seed", "settings"} <= set(summary)
    assert summary["steps"] == 60 and summary["seed"] == 1
    assert summary["settings"]["target"] == "gfn2-xtb" and summary["settings"]["window"] == 8
    assert len((out / "statistics.csv").read_text().splitlines()) == 7
    # The same command again refuses to overwrite the finished run.
    again = cli("run", "--steps", "60", "--output", str(out), "--no-progress")
    assert again.returncode != 0 and "already holds" in again.stderr


@pytest.mark.skipif(shutil.which("mpiexec", path=str(Path(sys.executable).parent)) is None and
                    shutil.which("mpiexec") is None, reason="no mpiexec")
def test_run_under_mpi_gives_the_in_process_trajectory(tmp_path):
    # Reference platform: bitwise-deterministic force sums (the CPU platform agrees in law only).
    args = ("--steps", "40", "--window", "4", "--no-progress", "--report-interval", "5", "--platform", "Reference")
    one = cli("run", *args, "--output", str(tmp_path / "one"))
    two = cli("run", *args, "--output", str(tmp_path / "two"), "--verifiers", "2")
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    a = mdtraj.load(str(tmp_path / "one" / "trajectory.dcd"), top=str(tmp_path / "one" / "topology.pdb"))
    b = mdtraj.load(str(tmp_path / "two" / "trajectory.dcd"), top=str(tmp_path / "two" / "topology.pdb"))
    assert np.array_equal(a.xyz, b.xyz)
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["verifiers"] == 2


@pytest.mark.parametrize("args, message", [
    (("--timestep", "-2"), "--timestep must be a positive number"),
    (("--timestep", "2000"), "femtoseconds"),
    (("--friction", "0"), "--friction must be a positive number"),
    (("--window", "0"), "--window must be between"),
    (("--window", "1000000000"), "--window must be between"),
    (("--steps", "0"), "--steps must be at least 1"),
    (("--pdb", "/no/such/file.pdb"), "no such PDB file"),
    (("--target", "no-such-model"), "no-such-model"),
    (("--system", "water", "--pdb", "x.pdb"), "either --system or --pdb"),
    (("--waters", "40"), "numWaters must be between 1 and 27"),
])
def test_run_bad_input_is_named_before_any_output(tmp_path, args, message):
    out = tmp_path / "out"
    done = cli("run", "--steps", "10", "--output", str(out), "--no-progress", *args)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert not (out / "summary.json").exists() and not (out / "trajectory.dcd").exists()


def test_run_refuses_a_malformed_pdb_and_an_unwritable_folder(tmp_path):
    bad = tmp_path / "bad.pdb"
    bad.write_text("ATOM      1  O   HOH A   1     garbage\nEND\n")
    done = cli("run", "--pdb", str(bad), "--output", str(tmp_path / "o"), "--no-progress")
    assert done.returncode != 0 and "bad.pdb" in done.stderr
    # A folder that cannot be made (a file stands in its way): refused as root too.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = cli("run", "--output", str(blocker / "sub"), "--no-progress")
    assert done.returncode != 0 and "cannot create output folder" in done.stderr
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        done = cli("run", "--output", str(locked / "sub"), "--no-progress")
        assert done.returncode != 0 and "cannot create output folder" in done.stderr
    finally:
        locked.chmod(0o700)


def test_run_from_a_pdb_file(tmp_path):
    from openmm_lsd.systems import alanineDipeptidePDB

    pdb = tmp_path / "ala.pdb"
    from openmm import app

    source = alanineDipeptidePDB()
    with open(pdb, "w") as f:
        app.PDBFile.writeFile(source.topology, source.positions, f)
    done = cli("run", "--pdb", str(pdb), "--forcefield", "amber14-all.xml", "--steps", "20", "--timestep", "1",
               "--friction", "10", "--output", str(tmp_path / "o"), "--no-progress")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["settings"]["atoms"] == 22 and summary["steps"] == 20


RESUMABLE = ("run", "--steps", "300", "--window", "4", "--report-interval", "10", "--checkpoint-interval", "50",
             "--platform", "Reference", "--no-progress")


def _columns(path, n):
    return [line.split(",")[:n] for line in Path(path).read_text().splitlines()]


def test_killed_run_resumes_without_gaps_or_duplicates(tmp_path):
    """SIGKILL mid-run, then the same command with --resume: files equal the uninterrupted run's."""
    import signal
    import time

    whole = cli(*RESUMABLE, "--output", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "openmm_lsd.cli", *RESUMABLE, "--output", str(out)],
                               env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        log = out / "log.csv"
        if (out / "checkpoint.lsd").exists() and log.exists() and len(log.read_text().splitlines()) > 17:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "summary.json").exists()
    resumed = cli(*RESUMABLE, "--output", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at step" in resumed.stderr
    a = mdtraj.load(str(tmp_path / "whole" / "trajectory.dcd"), top=str(tmp_path / "whole" / "topology.pdb"))
    b = mdtraj.load(str(out / "trajectory.dcd"), top=str(out / "topology.pdb"))
    assert a.n_frames == b.n_frames == 30
    assert np.array_equal(a.xyz, b.xyz)
    assert _columns(tmp_path / "whole" / "log.csv", 3) == _columns(out / "log.csv", 3)  # step, time, energy
    assert _columns(tmp_path / "whole" / "statistics.csv", 3) == _columns(out / "statistics.csv", 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"] and summary["steps"] == 300
    assert summary["acceptance_rate"] == json.loads((tmp_path / "whole" / "summary.json").read_text())["acceptance_rate"]
    again = cli(*RESUMABLE, "--output", str(out), "--resume")
    assert again.returncode != 0 and "already complete" in again.stderr


def test_resume_and_checkpoint_options_are_checked(tmp_path):
    done = cli("run", "--output", str(tmp_path / "none"), "--resume")
    assert done.returncode != 0 and "no checkpoint" in done.stderr
    done = cli("run", "--output", str(tmp_path / "x"), "--checkpoint-interval", "15", "--report-interval", "10")
    assert done.returncode != 0 and "multiple of --report-interval" in done.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.lsd").write_bytes(b"not a zip")
    done = cli("run", "--output", str(tmp_path / "bad"), "--resume")
    assert done.returncode != 0 and "not an openmm-lsd checkpoint" in done.stderr


def test_run_that_fails_stops_with_a_checkpoint_and_names_the_step(tmp_path, monkeypatch, capsys):
    """A target force that turns NaN: exit code 3, the step and atoms named, a checkpoint to resume from."""
    from openmm_lsd import cli as command
    from openmm_lsd import systems
    sys.path.insert(0, str(ROOT / "tests"))
    from systems import poisonedForce

    real = systems.EXAMPLES["water"]

    def water(model="gfn2-xtb", numWaters=8):
        example = real(numWaters=numWaters, model=model)
        example.target.addForce(poisonedForce(24, after=45, atom=7, value=np.inf))
        return example

    monkeypatch.setitem(systems.EXAMPLES, "water", water)
    with pytest.raises(SystemExit) as stop:
        command.main(["run", "--steps", "200", "--output", str(tmp_path / "o"), "--no-progress", "--platform",
                      "Reference", "--checkpoint-interval", "10"])
    assert stop.value.code == 3
    message = capsys.readouterr().err
    assert "stopped at step" in message and "target force is not finite" in message and "atoms [7" in message
    assert (tmp_path / "o" / "checkpoint.lsd").exists() and not (tmp_path / "o" / "summary.json").exists()


def test_estimate_predicts_and_compares(tmp_path):
    run = cli("run", "--steps", "60", "--output", str(tmp_path / "r"), "--no-progress")
    assert run.returncode == 0, run.stderr
    out = tmp_path / "e.json"
    done = cli("estimate", "--steps", "60", "--json", str(out), "--compare", str(tmp_path / "r" / "summary.json"))
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert len(result["predicted_acceptance_by_position"]) == 8
    assert set(result["predicted_speedup"]) == {"1", "2", "4", "8", "16"}
    assert result["predicted_steps_per_round"] >= 1 and "relative_error_steps_per_round" in result
    assert "prediction off by" in done.stdout


VALIDATE = ("validate", "--replicas", "16", "--replica-steps", "60", "--equilibrate", "50", "--platform", "Reference")


def test_validate_agrees_and_writes_its_report_and_plots(tmp_path):
    """16 independent replicas of 60 steps per method, KS + Welch at family-wise 0.01 (fixed seed 1)."""
    done = cli(*VALIDATE, "--output", str(tmp_path / "v"))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert result["verdict"] == "AGREE" and result["replicas"] == 16
    assert set(result["tests"]) == {"potential energy (kJ/mol)", "mean O-O distance (nm)"}
    for name in ("energy.png", "observables.png", "rdf.png"):
        assert (tmp_path / "v" / name).is_file()
    assert "AGREE" in done.stdout


def test_validate_rejects_a_broken_lsd(tmp_path):
    """Negative control: the same validation of LSD with every draft accepted (the draft's law) must fail."""
    done = cli(*VALIDATE, "--output", str(tmp_path / "v"), "--control", "accept_always")
    assert done.returncode == 1, done.stdout + done.stderr
    result = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert result["verdict"] == "DISAGREE"
    assert min(t["p"] for t in result["tests"].values()) < 1e-6


def test_compare_samples_accepts_the_same_law_and_rejects_a_shift():
    """compareSamples on AR(1) series (phi = 0.9, g ~ 19): 20,000 samples each, fixed seeds.

    Same law: p > 0.01 (the validate threshold is 0.005). Negative control: a mean
    shift of 0.3 standard deviations: p < 1e-6.
    """
    pytest.importorskip("scipy")
    from openmm_lsd.analysis import compareSamples, statisticalInefficiency

    def ar1(seed, n=20000, phi=0.9):
        rng = np.random.default_rng(seed)
        e = rng.normal(size=n)
        x = np.empty(n)
        x[0] = e[0] / np.sqrt(1 - phi**2)
        for i in range(1, n):
            x[i] = phi * x[i - 1] + e[i]
        return x * np.sqrt(1 - phi**2)

    a, b = ar1(1), ar1(2)
    assert 12 < statisticalInefficiency(a) < 30
    assert compareSamples(a, b)["p"] > 0.01
    assert compareSamples(a + 0.3, b)["p"] < 1e-6


def test_statistics_reporter_writes_csv():
    import io

    from openmm_lsd import SpeculativeSimulation, StatisticsReporter
    sys.path.insert(0, str(ROOT / "tests"))
    import systems as toy

    target = toy.toy()
    draft = toy.toy(k=(250.0, 400.0, 450.0), shift=0.3)
    sim = SpeculativeSimulation(None, target, draft, 300, 1.0, 0.002, window=4, platform="Reference", seed=3)
    sim.context.setPositions(toy.startPositions())
    buffer = io.StringIO()
    sim.reporters.append(StatisticsReporter(buffer, 5))
    sim.step(20)
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("step,acceptance_rate,steps_per_round")
    assert [line.split(",")[0] for line in lines[1:]] == ["5", "10", "15", "20"]
    assert float(lines[-1].split(",")[1]) == pytest.approx(sim.statistics.acceptanceRate)


def test_systems_helpers_refuse_inconsistent_input():
    import openmm

    from openmm_lsd import systems

    topology, _ = systems.waterCluster(2)
    with pytest.raises(ValueError, match="unknown xTB method"):
        systems.xtbCalculator("gfn3-xtb")
    with pytest.raises(ValueError, match="both mmSystem and mlAtoms"):
        systems.createTarget(topology, mlAtoms=[0])
    with pytest.raises(ValueError, match="cannot load force field"):
        systems.createDraft(topology, openmm.System(), forcefield=("no-such-forcefield.xml",))
    target = systems.createTarget(topology)
    draft = systems.createDraft(topology, target, forcefield=("amber14/tip3p.xml",))
    cmm = [f for f in draft.getForces() if isinstance(f, openmm.CMMotionRemover)]
    assert len(cmm) == 1  # openmm-ml's target has one, so the draft gets one
    systems.constrainLike(target, draft)
    assert target.getNumConstraints() == draft.getNumConstraints() == 6
    extra = openmm.System()
    for _ in range(6):
        extra.addParticle(1.0)
    extra.addConstraint(0, 5, 0.3)
    with pytest.raises(ValueError, match="constraints the draft lacks"):
        systems.constrainLike(extra, draft)


EXAMPLES = [("water_xtb.py", "30"), ("alanine_dipeptide_xtb.py", "30"), ("alanine_dipeptide_water_mlmm.py", "10"),
            ("ani2x.py", "10"), ("mpi_launch.py", "20"), ("alanine_dipeptide.py", "40"), ("copper_cluster.py", "20"),
            ("copper_cluster.py", "10 sevennet-0"),
            ("water_box_npt.py", "26 0.7"), ("openmm_script_alanine_xtb.py", "10")]


@pytest.mark.parametrize("script, steps", EXAMPLES)
def test_example_runs(tmp_path, script, steps):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), *steps.split()], capture_output=True,
                          text=True, timeout=300, env=ENV, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    if script == "ani2x.py" and "SKIPPED" in done.stdout:
        pytest.skip(done.stdout.strip())
    assert "acceptance" in done.stdout
    if script == "water_box_npt.py":
        assert " of 1 volume moves accepted" in done.stdout  # 26 steps: one move, before step 25


@pytest.mark.parametrize("model", ["ani2x", "mace-off23-small", "aimnet2"])
def test_downloaded_ml_targets_build_or_skip_with_the_reason(model):
    """openmm-ml potentials whose weights download at run time: built where possible, else skipped, saying why."""
    from openmm_lsd import systems

    pdb = systems.alanineDipeptidePDB()
    try:
        target = systems.createTarget(pdb.topology, model)
    except (ImportError, ValueError) as exc:
        pytest.skip(f"{model} is not available here: {exc}")
    draft = systems.createDraft(pdb.topology, target, forcefield=("amber14-all.xml",))
    systems.constrainLike(target, draft)
    from openmm_lsd import SpeculativeSimulation

    sim = SpeculativeSimulation(pdb.topology, target, draft, 300, 10.0, 0.001, window=4, seed=1)
    sim.context.setPositions(pdb.positions)
    sim.step(5)
    assert sim.currentStep == 5


def test_torchforce_target_where_openmmtorch_imports(tmp_path):
    """An openmm-torch TorchForce target (optional extra): skipped where openmmtorch does not import."""
    torch = pytest.importorskip("torch", reason="needs torch")
    openmmtorch = pytest.importorskip("openmmtorch", reason="openmmtorch does not import here (it needs a CUDA-12 "
                                                            "torch build)")
    sys.path.insert(0, str(ROOT / "tests"))
    import systems as toy

    from openmm_lsd import SpeculativeSimulation

    class Wells(torch.nn.Module):
        def forward(self, positions):
            return 200.0 * torch.sum((positions - 0.1) ** 2)

    path = str(tmp_path / "wells.pt")
    torch.jit.script(Wells()).save(path)
    target = toy.toy()
    target.addForce(openmmtorch.TorchForce(path))
    sim = SpeculativeSimulation(None, target, toy.toy(), 300, 1.0, 0.002, window=4, platform="Reference", seed=1)
    sim.context.setPositions(toy.startPositions())
    sim.step(10)
    assert sim.statistics.steps == 10


def test_water_box_runs_at_constant_pressure_with_periodic_xtb(tmp_path):
    """The NPT example offline: 0.8 nm box (17 waters), periodic GFN2-xTB, a volume move every 2 steps."""
    out = tmp_path / "npt"
    done = cli("run", "--system", "water-box", "--box-edge", "0.8", "--barostat-frequency", "2", "--steps", "4",
               "--report-interval", "2", "--output", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["statistics"]["volumeMoves"] == 2 and " of 2 volume moves accepted" in done.stderr
    assert summary["settings"]["pressure_bar"] == 1.0 and summary["settings"]["barostat_frequency"] == 2
    assert "Density" in (out / "log.csv").read_text().splitlines()[0]
    traj = mdtraj.load(str(out / "trajectory.dcd"), top=str(out / "topology.pdb"))
    assert traj.n_frames == 2 and traj.unitcell_volumes is not None


def _cheapWaterBox():
    """A classical stand-in for validate's constant-pressure path: TIP3P draft, a target with 25% larger charges."""
    import openmm

    from openmm_lsd import systems

    topology, positions = systems.waterBoxTopology(0.9)
    target, draft = systems.tip3p(topology, 0.4, chargeScale=1.25), systems.tip3p(topology, 0.4)
    target.addForce(openmm.MonteCarloBarostat(1.0, 300.0, 5))
    positions = systems.minimizeWith(draft, topology, positions, platform="Reference")  # bitwise reproducible
    return systems.Example("cheap-water-box", topology, positions, target, draft, "TIP3P box, NPT")


NPT_VALIDATE = ("validate", "--replicas", "24", "--replica-steps", "60", "--equilibrate", "50", "--platform",
                "Reference")


def test_validate_compares_density_and_rdf_at_constant_pressure(tmp_path, monkeypatch):
    """validate with a barostat: density and the O-O coordination (the RDF's first shell) per replica, serial
    OpenMM with its own barostat (a fresh Context state per replica) against LSD; the same run with the volume
    moves decided on the draft's energies is rejected.

    24 replicas of 60 steps per method (a move every 5 steps), KS + Welch, Bonferroni at family-wise 0.01;
    Reference platform and fixed seeds (OpenMM's barostat seed too), so the outcome is deterministic: measured
    p = 1 (exact) and 7.5e-8 for the control's density (threshold 1e-6)."""
    from openmm_lsd import cli as command
    from openmm_lsd.cli import validate as validateCommand

    example = _cheapWaterBox()
    monkeypatch.setattr(validateCommand, "buildSystem", lambda args: example)
    with pytest.raises(SystemExit, match="multiples of its frequency"):
        command.main([*NPT_VALIDATE[:4], "52", *NPT_VALIDATE[5:], "--output", str(tmp_path / "bad")])
    command.main([*NPT_VALIDATE, "--output", str(tmp_path / "v")])
    result = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert result["verdict"] == "AGREE"
    assert {"density (g/mL)", "O-O coordination (r < 0.335 nm)"} <= set(result["tests"])
    assert result["volume_moves"] == 24 * 12 and 0 < result["volume_moves_accepted"] < result["volume_moves"]
    assert (tmp_path / "v" / "rdf.png").is_file()
    with pytest.raises(SystemExit):
        command.main([*NPT_VALIDATE, "--output", str(tmp_path / "c"), "--control", "barostat_draft_energy"])
    control = json.loads((tmp_path / "c" / "validation.json").read_text())
    assert control["verdict"] == "DISAGREE" and min(t["p"] for t in control["tests"].values()) < 1e-6


def test_barostat_options_are_checked(tmp_path):
    for option, value, message in (("--pressure", "-1", "--pressure must be a positive number of bar"),
                                   ("--box-edge", "0.3", "--box-edge must be between 0.6 and 10 nm"),
                                   ("--barostat-frequency", "0", "--barostat-frequency must be at least 1")):
        done = cli("run", "--system", "water-box", option, value, "--output", str(tmp_path / "x"), "--no-progress")
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert not (tmp_path / "x").exists()
