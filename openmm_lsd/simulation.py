"""``SpeculativeSimulation``: a ``Simulation`` whose steps are drafted and verified."""

import atexit
import logging
import re
import secrets

import numpy as np
import openmm
from openmm import unit

from . import compatibility
from ._units import positive
from .barostat import VolumeMoves, boxVolume, findBarostat
from .controller import SpeculativeController
from .statistics import Statistics
from .corrections import makeCorrection
from .integrators import Coefficients, canonical_scheme, draftIntegrator, replayIntegrator, serialIntegrator
from .verifiers import InProcessVerifier, Verifier
from .verifiers import mpi as _mpi
from .verifiers.base import asEvaluation, createContext, stateArray

logger = logging.getLogger(__name__)

MAX_WINDOW = 100_000


def _platform(platform):
    if platform is None or isinstance(platform, openmm.Platform):
        return platform
    if isinstance(platform, str):
        try:
            return openmm.Platform.getPlatformByName(platform)
        except Exception:
            names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
            raise ValueError(f"unknown OpenMM platform {platform!r}; available: {names}") from None
    raise TypeError(f"platform must be an openmm.Platform or its name, got {type(platform).__name__}")


def _checkedSeed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _fromIntegrator(integrator, frictionCoeff, stepSize, scheme, seed):
    """(temperature, friction, step size, scheme, seed) of the serial integrator a script would have run."""
    from .integrators import LeapfrogLangevinIntegrator

    if isinstance(integrator, openmm.LangevinMiddleIntegrator):  # LangevinIntegrator is one since OpenMM 8.5
        own = "LangevinMiddle"
    elif isinstance(integrator, LeapfrogLangevinIntegrator):
        own = "leapfrog"
    else:
        raise ValueError(f"speculative dynamics reproduces LangevinMiddleIntegrator, LangevinIntegrator or "
                         f"openmm_lsd.LeapfrogLangevinIntegrator, not a {type(integrator).__name__}")
    if frictionCoeff is not None or stepSize is not None:
        raise TypeError("with an integrator, its friction and step size are used: do not also give frictionCoeff "
                        "or stepSize")
    if scheme is not None and canonical_scheme(scheme) != own:
        raise ValueError(f"scheme {scheme!r} disagrees with the integrator given, a {type(integrator).__name__}")
    if seed is None and integrator.getRandomNumberSeed() != 0:  # OpenMM's 0 means "pick one": so does seed=None
        seed = integrator.getRandomNumberSeed()
    return integrator.getTemperature(), integrator.getFriction(), integrator.getStepSize(), own, seed


def _reportInfo(reporter, simulation):
    """OpenMM 8's dict form of ``describeNextReport``, from either the dict or the tuple form."""
    info = reporter.describeNextReport(simulation)
    if isinstance(info, dict):
        return {"steps": info["steps"], "periodic": info.get("periodic"), "include": set(info.get("include", ()))}
    include = {name for name, flag in zip(("positions", "velocities", "forces", "energy"), info[1:5]) if flag}
    return {"steps": info[0], "periodic": info[5] if len(info) > 5 else None, "include": include}


class SpeculativeSimulation:
    """Langevin dynamics on a slow target System, drafted on a fast one and verified in parallel.

    The trajectory has exactly the law of the serial run of ``LangevinMiddleIntegrator``
    (``scheme='LangevinMiddle'``, alias ``'Langevin'``) or of
    :class:`~openmm_lsd.LeapfrogLangevinIntegrator` (``scheme='leapfrog'``) on the
    target System, at the same temperature, friction and step size (DESIGN.md).

    Use it as an ``openmm.app.Simulation``: set the initial state on ``context``,
    add reporters to ``reporters``, call ``step(n)``.  ``context`` holds the accepted
    target state (positions and *target* velocities) between calls.

    Parameters
    ----------
    topology : openmm.app.Topology
        The topology, for reporters.
    targetSystem : openmm.System
        The expensive System whose dynamics is reproduced exactly.
    draftSystem : openmm.System
        A cheap System over the same particles: same constraints, virtual sites,
        periodicity and CMMotionRemover frequency.  It moves with the target's masses
        (a copy is made where they differ, e.g. a draft from another force field;
        a difference beyond rounding, such as hydrogen mass repartitioning in one
        System only, is warned about); ``draftSystem`` is then that copy.
    temperature : openmm.Integrator, or float or openmm.unit.Quantity
        The serial script's integrator: a ``LangevinMiddleIntegrator``,
        ``LangevinIntegrator`` or :class:`~openmm_lsd.LeapfrogLangevinIntegrator` (not yet
        bound to a Context), whose temperature, friction, step size, constraint tolerance,
        scheme and random seed are taken (seed 0, OpenMM's "pick one", draws one; ``seed``
        overrides it); it becomes :attr:`integrator`, so its setters act as on a
        ``Simulation``.  Or the heat-bath temperature (K), with ``frictionCoeff`` and
        ``stepSize``.
    frictionCoeff : float or openmm.unit.Quantity
        Friction coefficient (1/ps), > 0 (not with an integrator).
    stepSize : float or openmm.unit.Quantity
        Time step (ps) (not with an integrator).
    window : int or 'auto'
        Maximum number of drafted steps ahead of the verified frontier (>= 1).
        It changes speed, never the trajectory. ``'auto'`` chooses it every 200
        verified steps (up to 32 and the correction's lag) to maximise the speedup
        bound of DESIGN.md section 7 for the measured acceptance by window position,
        target and draft costs and number of verifiers; the statistics' rounds then
        follow the window in force.
    scheme : str
        ``'LangevinMiddle'`` (default; ``'Langevin'`` is the same) or ``'leapfrog'``;
        with an integrator, its own.
    draftCorrection : str or correction object
        How the draft force for step j is corrected from target-minus-draft force
        differences at accepted positions (:mod:`openmm_lsd.corrections`); every
        choice is exact. ``'extrapolate-quadratic'`` (default): the difference at
        the newer of x_{j-1-L} (L = ``correctionLag``) and the position just before
        the draft's last restart, extrapolated in time by a quadratic through it and
        the two before; ``'extrapolate'``: linear; ``'offset'``: that difference as
        it is; ``'refit'``: the quadratic extrapolation with the draft's harmonic
        bonds and angles refitted every 16 steps (:mod:`openmm_lsd.refit`);
        ``'none'``; or an object such as ``corrections.ExtrapolateCorrection(lag,
        order, horizon)``. Measured in ``docs/acceptance.md``.
    correctionLag : int, optional
        Lag L of the correction (default 8).  The draft never runs more than L
        steps past the verified frontier.
    platform : openmm.Platform or str, optional
        Platform for the target and draft Contexts.
    platformProperties : dict, optional
        Properties for that platform.
    seed : int, optional
        Seed of the per-step noise; the run is a deterministic function of it
        (bitwise where target forces are bit-reproducible, e.g. the Reference
        platform).  Drawn at random when omitted; see ``seed``.
    verifier : str or openmm_lsd.verifiers.Verifier, optional
        Where target forces are evaluated: ``'inprocess'`` (on ``context``),
        ``'mpi'`` (ranks 1.. of ``mpiexec``; see below), or a Verifier object.
        By default ``'mpi'`` when the script was launched on several MPI ranks,
        else ``'inprocess'``.
    verifierTimeout : float
        Seconds rank 0 waits for one target evaluation before it declares the
        verifier rank dead or hung (default 600).

    Notes
    -----
    Constant pressure: a ``MonteCarloBarostat`` (or ``MonteCarloAnisotropicBarostat``)
    in the target System is honoured as
    OpenMM's integrator would apply it (same moves, acceptance rule and adaptive step;
    :mod:`openmm_lsd.barostat`), the law being that of the serial run with the
    barostat, made by the controller between verified steps: one serial target energy
    per attempt, and a draft restart per accepted move. Moves happen before every step
    whose index is a multiple of the barostat's frequency (OpenMM counts from the
    Context's creation: the same for a run from step 0). The draft System needs no
    barostat (one there is ignored). Needs the in-process or MPI verifier.

    Under ``mpiexec -n K+1``, every rank runs the script up to this constructor
    (so each builds its own target System).  On ranks 1..K the constructor
    creates a target Context (``DeviceIndex`` = rank - 1 modulo the number of
    devices in ``OPENMM_LSD_DEVICES``, if set and the platform has that
    property and ``platformProperties`` does not set it), serves target
    evaluations until rank 0 finishes, and then ends the process; the rest of
    the script runs on rank 0 only.  The trajectory is the same for any
    number of ranks (DESIGN.md section 9).

    Raises
    ------
    ValueError
        If the Systems do not match, a stochastic force is present, or an
        argument is out of range.

    Examples
    --------
    >>> sim = SpeculativeSimulation(topology, targetSystem, draftSystem, 300*unit.kelvin,
    ...                             1/unit.picosecond, 0.002*unit.picoseconds, window=8, seed=1)
    >>> sim.context.setPositions(positions)
    >>> sim.step(1000)
    >>> sim.statistics.acceptanceRate
    """

    def __init__(self, topology, targetSystem, draftSystem, temperature, frictionCoeff=None, stepSize=None, window=8,
                 scheme=None, draftCorrection="extrapolate-quadratic", correctionLag=None, platform=None,
                 platformProperties=None, seed=None, verifier=None, verifierTimeout=_mpi.DEFAULT_TIMEOUT,
                 _control=None):
        userIntegrator = None
        if isinstance(temperature, openmm.Integrator):
            userIntegrator = temperature
            temperature, frictionCoeff, stepSize, scheme, seed = _fromIntegrator(userIntegrator, frictionCoeff,
                                                                                 stepSize, scheme, seed)
        elif frictionCoeff is None or stepSize is None:
            raise TypeError("give the serial integrator (LangevinMiddleIntegrator, LangevinIntegrator or "
                            "LeapfrogLangevinIntegrator), or temperature, frictionCoeff and stepSize")
        temperature = positive(temperature, unit.kelvin, "temperature")
        frictionCoeff = positive(frictionCoeff, unit.picosecond**-1, "frictionCoeff")
        stepSize = positive(stepSize, unit.picosecond, "stepSize")
        scheme = "LangevinMiddle" if scheme is None else scheme
        autoWindow = isinstance(window, str) and window.lower() == "auto"
        if autoWindow:
            window = 32
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window must be an integer between 1 and {MAX_WINDOW} or 'auto', got {window!r}")
        scheme = canonical_scheme(scheme)
        correction = makeCorrection(draftCorrection, correctionLag)
        seed = _checkedSeed(secrets.randbits(63) if seed is None else seed)
        draftSystem = compatibility.withTargetMasses(targetSystem, draftSystem)
        compatibility.checkSystems(targetSystem, draftSystem)
        if topology is not None and topology.getNumAtoms() != targetSystem.getNumParticles():
            raise ValueError(f"topology has {topology.getNumAtoms()} atoms, target System has "
                             f"{targetSystem.getNumParticles()} particles")
        platform = _platform(platform)
        verifier = self._chooseVerifier(verifier)
        if verifier == "mpi":
            comm = _mpi.world()
            if comm.Get_rank() > 0:
                # Verifier ranks serve target evaluations until rank 0 is done, then end the process.
                _mpi.serveAndExit(comm, targetSystem, draftSystem, stepSize, platform, platformProperties)
            verifier = _mpi.MPIVerifier(comm, verifierTimeout)
            atexit.register(verifier.close)

        self.topology = topology
        self.system = targetSystem
        self.draftSystem = draftSystem
        self._seed = int(seed)
        self.scheme = scheme
        self.window = int(window)
        self.correction = correction
        self.reporters = []
        self._coefficients = Coefficients(scheme, temperature, frictionCoeff, stepSize)

        self.integrator = userIntegrator if userIntegrator is not None else serialIntegrator(self._coefficients)
        self._constraintTolerance = self.integrator.getConstraintTolerance()
        try:
            self.context = createContext(targetSystem, self.integrator, platform, platformProperties)
        except Exception as exc:
            if userIntegrator is not None and "bound" in str(exc):
                raise ValueError("the integrator given is already bound to a Context (a Simulation's?): pass a "
                                 "new one; SpeculativeSimulation's target Context needs its own") from None
            raise
        realPlatform = self.context.getPlatform()
        # A correction that refits the draft changes its Context's parameters: give it a copy of the System.
        # A draft's barostat would move the draft's box on its own: the copy has none.
        ownDraft = compatibility.withoutBarostat(draftSystem)
        if hasattr(correction, "extendDraft"):  # a correction that lives in the draft as forces of its own
            ownDraft = correction.extendDraft(ownDraft, targetSystem)
        elif ownDraft is draftSystem and getattr(correction, "needsOriginalDraftForces", False):
            ownDraft = openmm.XmlSerializer.clone(draftSystem)
        self._draftContext = createContext(ownDraft, draftIntegrator(self._coefficients), realPlatform,
                                      platformProperties)
        replayPlatform = realPlatform
        if realPlatform.getName() == "CPU":
            # Integration on the CPU platform is the reference code; skip its thread pool for a force-free System.
            replayPlatform = openmm.Platform.getPlatformByName("Reference")
        self._replayContext = createContext(compatibility.replaySystem(targetSystem, draftSystem),
                                       replayIntegrator(self._coefficients), replayPlatform,
                                       platformProperties if replayPlatform is realPlatform else None)
        if targetSystem.usesPeriodicBoundaryConditions():
            box = targetSystem.getDefaultPeriodicBoxVectors()
            self._draftContext.setPeriodicBoxVectors(*box)
            self._replayContext.setPeriodicBoxVectors(*box)
        self.verifier = verifier if verifier != "inprocess" else InProcessVerifier(self.context)
        barostat = findBarostat(targetSystem)
        self._volumeMoves = None
        if barostat is not None:
            # The target Context's molecules, as OpenMM's barostat on the serial run would scale them.
            box = np.array([v.value_in_unit(unit.nanometer) for v in targetSystem.getDefaultPeriodicBoxVectors()])
            self._volumeMoves = VolumeMoves(barostat, self.context.getMolecules(), targetSystem.getNumParticles(),
                                            boxVolume(box))
        self._controller = SpeculativeController(self._coefficients, self._draftContext, self._replayContext,
                                                 self.verifier, self.window, correction, self.seed,
                                                 autoWindow=autoWindow, barostat=self._volumeMoves,
                                                 platformProperties=platformProperties)
        if _control is not None:  # a negative control of the law tests (openmm_lsd.testing), never a user option
            from . import testing

            testing.install(self._controller, _control)
        self._controller.setCoefficients(self._coefficients, self._constraintTolerance)
        self._synced = None
        self._parameters = None  # the target Context's global parameters at the last step
        #: steps taken since this simulation was made: OpenMM's barostat schedules its moves by this count
        self._stepsTaken = 0

    @staticmethod
    def _chooseVerifier(verifier):
        if verifier is None:
            return "mpi" if _mpi.launchedUnderMPI() and _mpi.world().Get_size() > 1 else "inprocess"
        if isinstance(verifier, Verifier) or verifier in ("inprocess", "mpi"):
            return verifier
        raise ValueError(f"verifier must be 'inprocess', 'mpi' or a Verifier, got {verifier!r}")

    def close(self):
        """Release the verifiers (stops MPI verifier ranks).  Called at exit if not before."""
        self.verifier.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the Simulation surface --------------------------------------------------------------

    @property
    def currentStep(self):
        """The index of the current (accepted) step."""
        return self.context.getStepCount()

    @currentStep.setter
    def currentStep(self, step):
        self.context.setStepCount(int(step))

    @property
    def currentWindow(self):
        """The window in force (changes during the run with ``window='auto'``)."""
        return self._controller.window

    @property
    def coefficients(self):
        """The run's scheme coefficients in force (:class:`openmm_lsd.integrators.Coefficients`: a, b, kT, ...)."""
        return self._coefficients

    @property
    def statistics(self):
        """Counters of the run so far (:class:`openmm_lsd.statistics.Statistics`)."""
        return self._controller.statistics

    @property
    def seed(self):
        """The seed of the per-step noise.  Setting it takes effect at the next new accepted history (a new
        state set on ``context``); the run is then a deterministic function of the new seed."""
        return self._seed

    @seed.setter
    def seed(self, value):
        self._seed = _checkedSeed(value)
        self._controller.seed = self._seed

    def resetBarostat(self):
        """The barostat's adaptive volume step and its step count as a freshly made OpenMM Context has them
        (as ``Context.reinitialize`` gives the serial run), from the next step on.  No barostat: nothing."""
        if self._volumeMoves is not None:
            self._volumeMoves.resetAdaptation()
            self._stepsTaken = 0
            self._synced = None  # the count restarts with a new accepted history here

    def resetStatistics(self):
        """Start the counters afresh (after a warm-up, say); the trajectory is not affected."""
        self._controller.statistics = Statistics(self.window)

    # ---- checkpoints and states --------------------------------------------------------------

    def _settings(self):
        """What a checkpoint must agree on (the integrator's settings are restored instead, :meth:`loadCheckpoint`)."""
        return {"particles": self.system.getNumParticles(), "scheme": self._coefficients.scheme,
                "correction": self.correction.name, "lag": self.correction.lag,
                "barostat": None if self._volumeMoves is None else [self._volumeMoves.frequency,
                                                                   self._volumeMoves.rigid,
                                                                   self._volumeMoves.anisotropic]}

    def _isSynced(self):
        if self._synced is None:
            return False
        return self._sameState(self._contextState(), self._synced)

    @staticmethod
    def _sameState(state, synced):
        positions, velocities, step, _, box = state
        return (step == synced[2] and np.array_equal(positions, synced[0]) and np.array_equal(velocities, synced[1])
                and (box is None or np.array_equal(box, synced[3])))

    def saveCheckpoint(self, file, extra=None):
        """Save everything that decides the future to ``file`` (a path, written atomically, or a binary file).

        Loading it into a ``SpeculativeSimulation`` built the same way (any window, any
        number of verifier ranks) continues the run exactly: with the same seed the
        trajectory equals the uninterrupted one (bit for bit on the Reference platform).
        The format (:mod:`openmm_lsd.checkpoint`) is portable and holds no pickle.
        ``extra`` (JSON-able) is stored alongside and returned by :meth:`loadCheckpoint`.
        """
        from . import checkpoint

        state = self.context.getState(getPositions=True, getVelocities=True, getParameters=True)
        controller = {"settings": self._settings(), "seed": self.seed, "fresh": not self._isSynced(),
                      "extra": extra, "integrator": self._integratorSettings(), "stepsTaken": self._stepsTaken,
                      "barostat": None if self._volumeMoves is None else self._volumeMoves.state()}
        arrays = {}
        if not controller["fresh"]:
            meta, arrays = self._controller.checkpointState()
            controller["controller"] = meta
        checkpoint.write(file, openmm.XmlSerializer.serialize(state), controller, arrays)

    def loadCheckpoint(self, file):
        """Continue from a checkpoint written by :meth:`saveCheckpoint`.

        The integrator's settings in force when it was saved (temperature, friction, step
        size, constraint tolerance, which a script may have changed through ``integrator``)
        are restored on ``integrator``.  Raises :class:`openmm_lsd.checkpoint.CheckpointError`
        for a corrupt or truncated file, another format version, or a checkpoint of a
        different simulation (particle count, scheme, correction, barostat); nothing is
        changed then.  Returns the ``extra`` given to :meth:`saveCheckpoint`.
        """
        from . import checkpoint

        xml, controller, arrays = checkpoint.read(file)
        mine, theirs = self._settings(), controller.get("settings", {})
        differ = [f"{key} {theirs.get(key)!r} in the checkpoint, {value!r} here" for key, value in mine.items()
                  if theirs.get(key) != value]
        if differ:
            raise checkpoint.CheckpointError("the checkpoint belongs to a different simulation: " + "; ".join(differ))
        try:
            state = openmm.XmlSerializer.deserialize(xml)
        except Exception as exc:
            raise checkpoint.CheckpointError(f"the checkpoint's target state cannot be read: {exc}") from None
        self.context.setState(state)
        self.context.setStepCount(state.getStepCount())
        if "integrator" in controller:
            self._applyIntegratorSettings(*controller["integrator"])
        self._stepsTaken = int(controller.get("stepsTaken", state.getStepCount()))
        if self._volumeMoves is not None and controller.get("barostat") is not None:
            self._volumeMoves.restore(controller["barostat"])
        if self.seed != controller["seed"]:
            logger.info("continuing with the checkpoint's seed %d (this simulation was built with %d)",
                        controller["seed"], self.seed)
        self.seed = int(controller["seed"])
        if controller["fresh"]:
            self._synced = None
            return controller.get("extra")
        self._syncSettings()
        self._controller.restoreState(controller["controller"], arrays)
        positions, velocities, step, _, box = self._contextState()
        self._synced = (positions, velocities, step, box)
        return controller.get("extra")

    def saveState(self, file):
        """Save the accepted target State as OpenMM XML (like ``Simulation.saveState``).

        A state is not a checkpoint: loading it starts a new accepted history there (the
        draft resynchronises), so the continuation has the right law but is not the
        uninterrupted trajectory. Use :meth:`saveCheckpoint` to resume exactly.
        """
        xml = openmm.XmlSerializer.serialize(self.context.getState(getPositions=True, getVelocities=True,
                                                                    getParameters=True))
        if hasattr(file, "write"):
            file.write(xml)
        else:
            with open(file, "w") as f:
                f.write(xml)

    def loadState(self, file):
        """Load a State saved by :meth:`saveState` (or ``Simulation.saveState``) into the target Context."""
        xml = file.read() if hasattr(file, "read") else open(file).read()
        self.context.setState(openmm.XmlSerializer.deserialize(xml))

    def minimizeEnergy(self, tolerance=10 * unit.kilojoules_per_mole / unit.nanometer, maxIterations=0):
        """Minimize the target energy, as ``Simulation.minimizeEnergy`` does, starting with the draft.

        First OpenMM's ``LocalEnergyMinimizer`` on the draft System (no target calls), then on
        the target from the draft's minimum.  A semi-empirical target far from a minimum (or
        at the minimizer's trial steps) may fail (``SCF not converged``); from the draft's
        minimum it seldom does.  If it still fails, ``context`` keeps the draft's minimum and a
        warning says why.  ``maxIterations`` bounds the target's minimization (0: until
        converged); the draft's always runs to convergence.
        """
        state = self.context.getState(getPositions=True)
        positions = stateArray(state, "positions")
        draft = openmm.Context(self.draftSystem, openmm.VerletIntegrator(0.001),
                               openmm.Platform.getPlatformByName("Reference"))
        draft.getIntegrator().setConstraintTolerance(self.integrator.getConstraintTolerance())
        if self.system.usesPeriodicBoundaryConditions():
            draft.setPeriodicBoxVectors(*state.getPeriodicBoxVectors())
        draft.setPositions(positions)
        openmm.LocalEnergyMinimizer.minimize(draft, tolerance, 0)  # cheap: always to convergence
        drafted = stateArray(draft.getState(getPositions=True), "positions")
        del draft
        self.context.setPositions(drafted)
        try:
            openmm.LocalEnergyMinimizer.minimize(self.context, tolerance, maxIterations)
        except Exception as exc:  # the target failed at some trial position: keep the draft's minimum
            import warnings

            self.context.setPositions(drafted)
            warnings.warn(f"minimizing the target failed ({exc}); the positions are the draft's energy minimum",
                          RuntimeWarning, stacklevel=2)

    def step(self, steps):
        """Advance by ``steps`` verified target steps, calling reporters as ``Simulation.step`` does."""
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        stepsToGo = int(steps)
        while stepsToGo > 0:
            nextSteps = stepsToGo
            infos = [_reportInfo(reporter, self) for reporter in self.reporters]
            for info in infos:
                if 0 < info["steps"] <= nextSteps:
                    nextSteps = info["steps"]
            due = [(reporter, info) for reporter, info in zip(self.reporters, infos) if info["steps"] == nextSteps]
            # The energies reporters will want, asked of the verifier with the forces: the next report of each
            # and, for reporters that repeat at that interval (as OpenMM's do), the later ones that the draft can
            # reach (at most a window past this stop) before the next request.
            now, reach = self.currentStep, min(stepsToGo, nextSteps + self.window)
            energySteps = {now + info["steps"] * k for info in infos if "energy" in info["include"] and info["steps"] > 0
                           for k in range(1, reach // info["steps"] + 1)}
            self._advance(nextSteps, energySteps, horizon=stepsToGo)
            stepsToGo -= nextSteps
            if due:
                self._generateReports(due)

    def _generateReports(self, due):
        """As ``Simulation._generate_reports``: one State for the reporters that want periodic wrapping and
        one for those that do not, each with everything its reporters include.  The potential energy
        comes from the verification of the current position where the verifier computed it (no serial
        target call on this rank); the kinetic energy from the integrator, as OpenMM reports it."""
        groups = {False: [], True: []}
        for reporter, info in due:
            periodic = info["periodic"]
            groups[self.system.usesPeriodicBoundaryConditions() if periodic is None else bool(periodic)].append(
                (reporter, info))
        for periodic, group in groups.items():
            if not group:
                continue
            include = set().union(*(info["include"] for _, info in group))
            state = self._reportState(include, periodic)
            for reporter, _ in group:
                reporter.report(self, state)

    def _reportState(self, include, periodic):
        energy = self._controller.frontierEnergy() if "energy" in include and "forces" not in include else None
        if energy is not None and not self.verifier.separateTarget:
            # An in-process verifier may have evaluated x_t on ``context`` just now, at the position it was
            # submitted with (the drafted x_t^d): put back the accepted x_t the Context held. Where the two
            # differed in the last digits (the replay's constraints before it kept the draft's angles) the
            # Context read as a state the user set, and the accepted history, with a learned fit, restarted
            # at every report.
            controller = self._controller
            if controller.box is not None:
                self.context.setPeriodicBoxVectors(*controller.box)
            self.context.setPositions(controller.positions)
        options = dict(getPositions="positions" in include, getVelocities="velocities" in include,
                       getForces="forces" in include, getEnergy="energy" in include,
                       getParameters="parameters" in include, enforcePeriodicBox=periodic)
        if energy is None:
            return self.context.getState(**options)
        # Kinetic energy only (no force group evaluated: no target call), then the verifier's potential energy.
        xml = openmm.XmlSerializer.serialize(self.context.getState(**options, groups=0))
        xml = re.sub(r'PotentialEnergy="[^"]*"', f'PotentialEnergy="{energy!r}"', xml, count=1)
        return openmm.XmlSerializer.deserialize(xml)

    # ---- the bridge between context and controller ------------------------------------------

    def _checkVerifierTarget(self, positions, box):
        """Refuse a run whose verifier ranks evaluate another target than ``context`` (MPI).

        Each rank built its own target System; what a script changed on ``context`` beyond
        the box and global parameters (per-particle parameters set with
        ``updateParametersInContext``, a ``PythonForce``'s own state) cannot reach them.  The
        forces at x_t from one rank and from ``context`` must agree (to 1e-3 of the largest
        force plus 0.01 kJ/mol/nm, far above platform and SCF noise).  One target evaluation
        on each side, at each new accepted history.
        """
        key = ("check", self.context.getStepCount())
        self.verifier.submit(key, positions, box=box, energy=False, urgent=True)
        theirs = asEvaluation(self.verifier.result(key)).forces
        state = self.context.getState(getForces=True)
        mine = stateArray(state, "forces")
        error = float(np.max(np.abs(theirs - mine)))
        scale = float(np.max(np.abs(mine)))
        if not error <= 1e-3 * scale + 1e-2:
            raise RuntimeError(
                f"the verifier ranks' target gives forces that differ from this Context's by up to {error:.3g} "
                f"kJ/mol/nm at the current positions: something set on simulation.context after construction "
                f"(per-particle parameters with updateParametersInContext, a PythonForce's own state) does not "
                f"reach ranks that built their own System; make the change in the System before "
                f"SpeculativeSimulation is created, on every rank")

    def _contextState(self):
        """(positions, velocities, step, time, box or None); the box of a periodic System."""
        state = self.context.getState(getPositions=True, getVelocities=True)
        box = None
        if self.system.usesPeriodicBoundaryConditions():
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
        return (stateArray(state, "positions"), stateArray(state, "velocities"),
                self.context.getStepCount(), state.getTime().value_in_unit(unit.picosecond), box)

    def _integratorSettings(self):
        """[temperature (K), friction (1/ps), step size (ps), constraint tolerance] of ``integrator`` now."""
        i = self.integrator
        return [i.getTemperature().value_in_unit(unit.kelvin), i.getFriction().value_in_unit(unit.picosecond**-1),
                i.getStepSize().value_in_unit(unit.picosecond), i.getConstraintTolerance()]

    def _applyIntegratorSettings(self, temperature, friction, stepSize, tolerance):
        i = self.integrator
        i.setTemperature(temperature)
        i.setFriction(friction)
        i.setStepSize(stepSize)
        i.setConstraintTolerance(tolerance)

    def _syncSettings(self):
        """Follow what the script set through ``integrator`` (and the Context's parameters) since the last step.

        Returns whether the integrator's settings or the Context's parameters changed: the accepted
        history then restarts from the current state, so no step drafted (and, on MPI ranks,
        evaluated) with the old ones is used.
        """
        # The target's global parameters, for every target evaluation (MPI ranks have their own Contexts).
        parameters = dict(self.context.getParameters())
        self.verifier.setParameters(parameters)
        parametersChanged = self._parameters is not None and parameters != self._parameters
        self._parameters = parameters
        temperature, friction, stepSize, tolerance = self._integratorSettings()
        c = self._coefficients
        if (temperature, friction, stepSize, tolerance) == (c.temperature, c.gamma, c.dt, self._constraintTolerance):
            return parametersChanged
        for value, name in ((temperature, "temperature"), (friction, "friction"), (stepSize, "step size"),
                            (tolerance, "constraint tolerance")):
            if not value > 0:
                raise ValueError(f"the integrator's {name} was set to {value}; speculative dynamics needs it > 0")
        self._coefficients = Coefficients(c.scheme, temperature, friction, stepSize)
        self._constraintTolerance = tolerance
        self._controller.setCoefficients(self._coefficients, tolerance)
        return True

    def _advance(self, steps, energySteps=(), horizon=None):
        current = self._contextState()
        positions, velocities, step, time, box = current
        changed = self._syncSettings()
        if changed or self._synced is None or not self._sameState(current, self._synced):
            # A new state or new integrator settings from the user (or the first step): a new accepted
            # history starts here.
            if self.verifier.separateTarget:
                self._checkVerifierTarget(positions, box)
            if self._volumeMoves is not None:
                self._volumeMoves.startCounting(step, self._stepsTaken)
            self._controller.reset(positions, velocities, step, box)
        if self._volumeMoves is not None:
            # The Context's parameters, which a user may change between steps as with OpenMM's barostat.
            self._volumeMoves.readParameters(self.context)
        start = self._controller.step
        self._controller.requestEnergy(energySteps)
        try:
            self._controller.advance(steps, horizon)
        finally:
            self._stepsTaken += self._controller.step - start
            controller = self._controller
            if controller.box is not None:
                self.context.setPeriodicBoxVectors(*controller.box)
            self.context.setPositions(controller.positions)
            self.context.setVelocities(controller.velocities)
            self.context.setStepCount(controller.step)
            self.context.setTime(time + (controller.step - start) * self._coefficients.dt)
            positions, velocities, _, _, box = self._contextState()
            self._synced = (positions, velocities, controller.step, box)
