"""The checkpoint file: a versioned zip archive that loading cannot execute.

Members (DESIGN.md section 8): ``state.xml``, the accepted target State as OpenMM
XML (positions, velocities, box, step, time; portable across platforms, unlike
OpenMM's binary checkpoints); ``controller.json``, the controller's counters and
settings; ``arrays.npz``, the arrays that decide the future (accepted state, the
draft's own state, the correction's inputs, drafted-ahead records), read with
``allow_pickle=False``; ``manifest.json``, the format version and a SHA-256 of
each other member.  No pickle and no System XML (with a ``PythonForce`` it would
hold one).  Writes go to a temporary file that replaces the old one only when
complete, so a crash leaves the previous checkpoint intact.
"""

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "openmm-lsd-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, of another version, or for another simulation."""


def write(file, stateXML, controller, arrays):
    """Write a checkpoint to ``file`` (a path, written atomically, or a binary file object)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(a, dtype=np.float64) for name, a in arrays.items()})
    members = {"state.xml": stateXML.encode(), "controller.json": json.dumps(controller).encode(),
               "arrays.npz": buffer.getvalue()}
    manifest = {"format": FORMAT, "version": VERSION,
                "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            archive.writestr(name, data)
    data = out.getvalue()
    if hasattr(file, "write"):
        file.write(data)
        return
    path = Path(file)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read(file):
    """``(stateXML, controller dict, arrays dict)`` from a checkpoint, checked; :class:`CheckpointError` if not."""
    name = getattr(file, "name", file)
    try:
        data = file.read() if hasattr(file, "read") else Path(file).read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {name}: {exc.strerror}") from None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            members = {member: archive.read(member) for member in ("state.xml", "controller.json", "arrays.npz")}
    except Exception as exc:  # BadZipFile, a failed CRC, zlib errors, a missing member, bad JSON...
        raise CheckpointError(f"{name} is not an openmm-lsd checkpoint or is truncated or corrupt "
                              f"({type(exc).__name__}: {exc})") from None
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{name} is not an openmm-lsd checkpoint")
    if manifest.get("version") != VERSION:
        raise CheckpointError(f"{name} has checkpoint format version {manifest.get('version')}; this openmm-lsd "
                              f"reads version {VERSION}")
    digests = manifest.get("sha256")
    if not isinstance(digests, dict) or set(digests) != set(members):
        raise CheckpointError(f"{name} is corrupt: its manifest does not list the members' checksums")
    for member, digest in digests.items():
        if hashlib.sha256(members[member]).hexdigest() != digest:
            raise CheckpointError(f"{name} is corrupt: the checksum of {member} does not match")
    try:
        with np.load(io.BytesIO(members["arrays.npz"]), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        return members["state.xml"].decode(), json.loads(members["controller.json"]), arrays
    except Exception as exc:
        raise CheckpointError(f"{name} is corrupt ({type(exc).__name__}: {exc})") from None
