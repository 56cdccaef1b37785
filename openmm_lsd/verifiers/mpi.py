"""Verification on MPI ranks: rank 0 drafts and decides, ranks 1..K evaluate the target.

Launch the *same* script on every rank (``mpiexec -n K+1 python script.py``).
Every rank builds the target System by running the user's code (this is how
openmm-ml models inside a ``PythonForce`` are cloned); on ranks > 0 the
``SpeculativeSimulation`` constructor creates a target Context, serves force
requests until rank 0 is done, and ends the process.  Without ``mpiexec`` (or
with one rank) the script runs in-process.

Idle ranks never spin: they poll with ``Iprobe`` and sleep with a backoff from
50 microseconds to 0.5 ms, because MPICH's blocking receive busy-polls and, on a
machine with fewer cores than ranks, steals the CPU that the draft and the
other ranks need (DESIGN.md section 8).  Rank 0 waits the same way with a
shorter ceiling (20 to 50 microseconds): it is one process, and every result it
notices late delays the whole pipeline.

The box of a periodic System comes with every job, and the target Context's
global parameters with the first job after they change, so what a script sets on
``simulation.context`` reaches every rank (per-particle parameters and a
``PythonForce``'s own state cannot: the simulation checks for that).

Faults: an exception on a verifier rank is sent to rank 0, which raises
``RuntimeError`` naming the rank and the step when that evaluation is asked for
(an error at a drafted position that was discarded first does not stop the run,
as it would not in-process); a rank that sends nothing for
``timeout`` seconds while holding a job makes rank 0 raise ``RuntimeError``
naming it.  An uncaught exception on rank 0 aborts the whole MPI job after the
traceback is printed, so no rank is left hanging.
"""

import collections
import logging
import os
import sys
import time

from .base import Evaluation, Verifier, createContext, evaluate

logger = logging.getLogger(__name__)

_JOB, _RESULT, _ERROR, _STOP = 11, 12, 13, 14
_MPI_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS")

DEFAULT_TIMEOUT = 600.0


def launchedUnderMPI():
    """Whether this process looks like one of several MPI ranks (checked without importing mpi4py)."""
    for name in _MPI_SIZE_VARIABLES:
        try:
            if int(os.environ.get(name, "1")) > 1:
                return True
        except ValueError:
            pass
    return False


_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID")


def launchRank():
    """This process's MPI rank as the launcher announced it (0 when not launched by MPI)."""
    for name in _RANK_VARIABLES:
        if name in os.environ:
            try:
                return int(os.environ[name])
            except ValueError:
                pass
    return 0


def deviceList(variable):
    """The comma-separated device names in environment variable ``variable`` (empty list if unset)."""
    return [d.strip() for d in os.environ.get(variable, "").split(",") if d.strip()]


def assignDevice(devices=None):
    """Give this rank one GPU by setting ``CUDA_VISIBLE_DEVICES``, before any model is loaded.

    Call it at the top of a script launched with ``mpiexec -n K+1``, before
    torch, openmm-ml or a CUDA Context is created: verifier rank r (1..K) gets
    ``devices[(r - 1) % len(devices)]``, rank 0 (the draft) gets ``devices[0]``.
    Every process then sees exactly one GPU, so OpenMM's ``DeviceIndex`` and
    torch's ``cuda:0`` both mean that GPU.

    Parameters
    ----------
    devices : list of str or int, optional
        The GPUs to spread over; by default ``OPENMM_LSD_DEVICES``, else the
        ``CUDA_VISIBLE_DEVICES`` the job was started with (comma-separated).

    Returns
    -------
    str or None
        The device given to this rank, or None when no device list is known
        (nothing is changed then).
    """
    if devices is None:
        devices = deviceList("OPENMM_LSD_DEVICES") or deviceList("CUDA_VISIBLE_DEVICES")
    devices = [str(d) for d in devices]
    if not devices:
        return None
    rank = launchRank()
    chosen = devices[0] if rank == 0 else devices[(rank - 1) % len(devices)]
    os.environ["CUDA_VISIBLE_DEVICES"] = chosen
    # The one visible device is index 0 now: the DeviceIndex spreading of OPENMM_LSD_DEVICES no longer applies.
    os.environ.pop("OPENMM_LSD_DEVICES", None)
    return chosen


def world():
    """``MPI.COMM_WORLD``, importing mpi4py with a clear error if it is missing."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("parallel verification needs mpi4py: pip install 'openmm-lsd[mpi]'") from exc
    return MPI.COMM_WORLD


class _Backoff:
    """Sleep between polls: short right after traffic, growing to ``longest`` when idle."""

    def __init__(self, shortest, longest):
        self.shortest, self.longest = shortest, longest
        self.delay = shortest

    def reset(self):
        self.delay = self.shortest

    def wait(self):
        time.sleep(self.delay)
        self.delay = min(2 * self.delay, self.longest)


def _probe(comm, source, tag, status):
    """``Iprobe`` twice: a message that landed while this rank slept is often matched only by the
    second call (the first one runs the progress engine that receives it). Measured with the MPICH
    wheel on 2 cores: the sleep-poll-receive latency halves, from ~1.1 to ~0.6 ms per round trip."""
    return comm.Iprobe(source=source, tag=tag, status=status) or comm.Iprobe(source=source, tag=tag, status=status)


def _abort(comm, message, more=None):
    """End the whole MPI job, ``message`` first (the launcher may cut the output short once the abort starts),
    then whatever ``more()`` prints, half a second for the output to get out, MPI_Abort."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    if more is not None:
        more()
        sys.stderr.flush()
    time.sleep(0.5)
    comm.Abort(1)


def _abortOnUncaughtException(comm):
    previous = sys.excepthook

    def hook(kind, value, traceback):
        _abort(comm, f"openmm-lsd rank 0: {kind.__name__}: {value}", lambda: previous(kind, value, traceback))

    sys.excepthook = hook


class MPIVerifier(Verifier):
    """Rank 0's side: dispatch drafted positions to idle ranks, collect forces by key.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The communicator; ranks 1..size-1 must be serving (:func:`serve`).
    timeout : float
        Seconds rank 0 waits for a result before it declares the rank holding
        that job dead or hung.
    """

    providesDraftForces = True
    supportsVolumeMoves = True
    separateTarget = True

    def __init__(self, comm, timeout=DEFAULT_TIMEOUT):
        if comm.Get_size() < 2:
            raise ValueError("MPIVerifier needs at least 2 ranks (rank 0 drafts, ranks 1.. verify)")
        self.comm = comm
        self.timeout = float(timeout)
        self.ranks = list(range(1, comm.Get_size()))
        self._idle = collections.deque(self.ranks)
        self._busy = {}
        self._queue = collections.deque()
        self._wanted = set()
        self._results = {}
        self._draftResults = {}
        self._energies = {}
        self._errors = {}
        self._parameters = None
        self._parametersVersion = 0
        self._rankVersion = {}
        self._sends = []
        self._closed = False
        self._failed = None  # a rank found dead or hung: close() then aborts at once instead of waiting again
        self.numEvaluations = 0
        self.targetSeconds = 0.0
        #: seconds each dispatched job waited on rank 0 for an idle rank
        self.queueWaits = []
        self._status = None
        _abortOnUncaughtException(comm)

    @property
    def numVerifiers(self):
        return len(self.ranks)

    @property
    def concurrency(self):
        return len(self.ranks)

    def setParameters(self, parameters):
        parameters = dict(parameters)
        if parameters != self._parameters:
            self._parameters = parameters
            self._parametersVersion += 1

    def submit(self, key, positions, box=None, energy=False, urgent=False):
        self._wanted.add(key)
        job = (key, (positions, box, energy), time.perf_counter())
        if urgent:
            self._queue.appendleft(job)
        else:
            self._queue.append(job)
        self._dispatch()

    def cancel(self, predicate):
        self._wanted = {key for key in self._wanted if not predicate(key)}
        for key in [key for key in self._results if predicate(key)]:
            del self._results[key]
            self._draftResults.pop(key, None)
            self._energies.pop(key, None)
        for key in [key for key in self._errors if predicate(key)]:
            del self._errors[key]
        self._queue = collections.deque(item for item in self._queue if not predicate(item[0]))

    def _dispatch(self):
        while self._idle and self._queue:
            key, job, queued = self._queue.popleft()
            rank = self._idle.popleft()
            now = time.perf_counter()
            self.queueWaits.append(now - queued)
            self._busy[rank] = (key, now)
            parameters = None
            if self._rankVersion.get(rank) != self._parametersVersion:
                parameters = self._parameters
                self._rankVersion[rank] = self._parametersVersion
            self._sends.append(self.comm.isend((key, *job, parameters), dest=rank, tag=_JOB))
        if len(self._sends) > 64:
            self._sends = [request for request in self._sends if not request.Test()]

    def _progress(self):
        """Receive whatever has arrived; return whether anything did."""
        from mpi4py import MPI

        status = self._status or MPI.Status()
        self._status = status
        received = False
        while _probe(self.comm, MPI.ANY_SOURCE, MPI.ANY_TAG, status):
            rank, tag = status.Get_source(), status.Get_tag()
            message = self.comm.recv(source=rank, tag=tag)
            received = True
            key, payload, seconds, draftForces, energy = message
            self._busy.pop(rank, None)
            self._idle.append(rank)
            if tag == _ERROR:
                if key in self._wanted:  # raised when asked for: the position may yet be discarded
                    self._errors[key] = f"verifier rank {rank} failed to evaluate the target at step {key[1]}: {payload}"
                continue
            self.numEvaluations += 1
            self.targetSeconds += seconds
            if key in self._wanted:
                self._results[key] = payload
                self._draftResults[key] = draftForces
                if energy is not None:
                    self._energies[key] = energy
        if received:
            self._dispatch()
        return received

    def _checkTimeouts(self):
        now = time.perf_counter()
        for rank, (held, since) in self._busy.items():
            if now - since > self.timeout:
                self._failed = rank
                raise RuntimeError(
                    f"verifier rank {rank} returned nothing for {now - since:.0f} s while evaluating step "
                    f"{held[1]} (timeout {self.timeout:g} s): the rank died or hangs")

    def result(self, key):
        backoff = _Backoff(2e-5, 5e-5)
        while key not in self._results:
            if key in self._errors:
                self._wanted.discard(key)
                raise RuntimeError(self._errors.pop(key))
            if key not in self._wanted:
                raise KeyError(f"no evaluation was submitted for {key}")
            # Checked even while other ranks answer: a hung rank holding a discarded job must show too.
            self._checkTimeouts()
            if self._progress():
                backoff.reset()
            else:
                backoff.wait()
        self._wanted.discard(key)
        return Evaluation(self._results.pop(key), self._draftResults.pop(key, None), self._energies.pop(key, None))

    def close(self):
        """Let busy ranks finish (at most ``timeout`` s), then tell every verifier rank to stop.

        A rank that is still busy after the timeout cannot take the stop message, and MPI's
        finalisation would wait for it forever: the job is aborted instead, naming the rank.
        """
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._wanted.clear()
        if self._failed is not None:
            _abort(self.comm, f"openmm-lsd: verifier rank {self._failed} did not answer; aborting the MPI job")
        backoff = _Backoff(2e-5, 1e-3)
        try:
            while self._busy:
                self._checkTimeouts()
                if not self._progress():
                    backoff.wait()
            from mpi4py import MPI

            MPI.Request.Waitall(self._sends)
            self._sends = []
        except RuntimeError as exc:
            _abort(self.comm, f"openmm-lsd: {exc}; aborting the MPI job")
        for rank in self.ranks:
            self.comm.send(None, dest=rank, tag=_STOP)


def serve(comm, context, draftContext=None):
    """Verifier ranks: evaluate target forces on ``context`` for rank 0 until told to stop.

    With ``draftContext``, the draft forces at the same positions go back too (for the offset
    correction), so that rank 0 need not read them out of its draft integrator.
    """
    from mpi4py import MPI

    status = MPI.Status()
    backoff = _Backoff(5e-5, 5e-4)
    rank = comm.Get_rank()
    while True:
        if not _probe(comm, 0, MPI.ANY_TAG, status):
            backoff.wait()
            continue
        backoff.reset()
        tag = status.Get_tag()
        message = comm.recv(source=0, tag=tag)
        if tag == _STOP:
            return
        key, positions, box, wantEnergy, parameters = message
        start = time.perf_counter()
        try:
            for name, value in (parameters or {}).items():
                if context.getParameter(name) != value:
                    context.setParameter(name, value)
            forces, energy = evaluate(context, positions, box, wantEnergy)
        except Exception as exc:  # report any failure to rank 0 rather than dying silently
            logger.error("rank %d: target evaluation failed: %s", rank, exc)
            comm.send((key, f"{type(exc).__name__}: {exc}", 0.0, None, None), dest=0, tag=_ERROR)
            continue
        seconds = time.perf_counter() - start
        draftForces = None
        if draftContext is not None:
            try:
                draftForces = evaluate(draftContext, positions, box)[0]
            except Exception as exc:  # the controller then reads the draft force itself
                logger.warning("rank %d: draft force evaluation failed: %s", rank, exc)
        comm.send((key, forces, seconds, draftForces, energy), dest=0, tag=_RESULT)


def serveAndExit(comm, targetSystem, draftSystem, stepSize, platform=None, properties=None):
    """Verifier ranks 1..K: build a target Context (and a draft one), serve rank 0 until it stops, end the process.

    ``SpeculativeSimulation``'s constructor calls this on every rank but 0, so that the same
    script runs on K + 1 ranks.  The rank's Contexts use ``properties`` with ``DeviceIndex`` =
    rank - 1 modulo the devices in ``OPENMM_LSD_DEVICES`` where that is set, the platform has
    the property and ``properties`` does not set it.
    """
    import openmm

    rank = comm.Get_rank()
    properties = dict(properties or {})
    devices = deviceList("OPENMM_LSD_DEVICES")
    if platform is not None and devices and "DeviceIndex" in platform.getPropertyNames():
        properties.setdefault("DeviceIndex", devices[(rank - 1) % len(devices)])
    context = createContext(targetSystem, openmm.VerletIntegrator(stepSize), platform, properties)
    # The draft forces at the same positions, for the offset correction (rank 0's draft runs on the
    # Platform the target Context gets, so these are the same numbers).
    draftContext = createContext(draftSystem, openmm.VerletIntegrator(stepSize), context.getPlatform(), properties)
    serve(comm, context, draftContext)
    del context, draftContext
    sys.exit(0)
