"""A transparency-log witness that cosigns checkpoints only along one consistent history.

Behaviour follows the witness duties of c2sp.org/tlog-witness and the cosignature/v1
semantics of c2sp.org/tlog-cosignature ("the consistent tree head with the largest size
the cosigner has observed"), without the HTTP protocol:

1. the checkpoint note must carry a valid signature from the configured log key
   (otherwise BAD_SIGNATURE; an unparsable body gives MALFORMED_CHECKPOINT);
2. its origin must be the configured origin (default: the log key's name) and the
   origin recorded in the state file (otherwise WRONG_ORIGIN);
3. against the last cosigned (size, root): a smaller size is SMALLER_TREE; the same size
   with another root is SAME_SIZE_DIFFERENT_ROOT; a larger size needs an RFC 9162
   §2.1.4.2 consistency proof (otherwise INCONSISTENT). The same size and root is
   cosigned again with a fresh timestamp, whatever proof is supplied.

Trust on first use: when no state file exists, the first correctly signed checkpoint is
accepted without any consistency proof and becomes the witness's starting point. An
operator who needs stronger bootstrapping should seed the state file by hand.

The state (origin, size, base64 root) is a small JSON file replaced atomically
(temp file + fsync + rename) *before* the cosignature is returned, so a crash can never
leave a cosignature the state does not account for. A corrupt state file is an error,
never a silent return to trust-on-first-use. One Witness instance serialises its own
calls; several processes sharing one state file are not supported.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from services.transparency.checkpoint import (
    Checkpoint,
    CosignatureVerifier,
    Cosigner,
    parse_checkpoint,
)
from services.transparency.merkle import verify_consistency
from services.transparency.note import (
    NoteError,
    Signer,
    Verifier,
    open_note,
    verifier_from_key_text,
)


class RefusalReason(str, Enum):
    """Why a witness declined to cosign a checkpoint."""

    BAD_SIGNATURE = "BAD_SIGNATURE"
    MALFORMED_CHECKPOINT = "MALFORMED_CHECKPOINT"
    WRONG_ORIGIN = "WRONG_ORIGIN"
    SMALLER_TREE = "SMALLER_TREE"
    INCONSISTENT = "INCONSISTENT"
    SAME_SIZE_DIFFERENT_ROOT = "SAME_SIZE_DIFFERENT_ROOT"


class WitnessRefusal(Exception):
    """Raised when a witness refuses to cosign; ``reason`` says why (c2sp.org/tlog-witness duties)."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class WitnessStateError(Exception):
    """Raised when the witness state file exists but cannot be read as a valid state."""


@dataclass(frozen=True)
class WitnessState:
    """The last checkpoint a witness cosigned: origin, tree size and root hash."""

    origin: str
    size: int
    root_hash: bytes


class Witness:
    """Cosigns a log's checkpoints while they stay append-only (trust on first use)."""

    def __init__(
        self,
        name: str,
        signer: Signer | Cosigner,
        log_verifier_key: str | Verifier,
        state_path: str | os.PathLike[str],
        *,
        origin: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if signer.name != name:
            raise ValueError(f"witness name {name!r} differs from its key name {signer.name!r}")
        self.name = name
        self._cosigner = signer if isinstance(signer, Cosigner) else Cosigner.from_signer(signer)
        self._log_verifier = (
            log_verifier_key
            if isinstance(log_verifier_key, Verifier)
            else verifier_from_key_text(log_verifier_key)
        )
        self.origin = origin if origin is not None else self._log_verifier.name
        self._state_path = Path(state_path)
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def verifier(self) -> CosignatureVerifier:
        """The verifier clients use to check this witness's cosignatures."""
        return self._cosigner.verifier()

    def state(self) -> WitnessState | None:
        """Return the last cosigned checkpoint, or None before the first (trust-on-first-use) one."""
        try:
            raw = self._state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(raw)
            state = WitnessState(
                str(data["origin"]), data["size"], base64.b64decode(data["root"], validate=True)
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as error:
            raise WitnessStateError(
                f"unreadable witness state {self._state_path}: {error}"
            ) from None
        if type(state.size) is not int or state.size < 0 or len(state.root_hash) != 32:
            raise WitnessStateError(f"invalid witness state in {self._state_path}")
        return state

    def cosign(self, checkpoint_note: str, consistency_proof: Sequence[bytes]) -> str:
        """Return a cosignature/v1 line for the checkpoint, or raise WitnessRefusal."""
        with self._lock:
            body, checkpoint = self._open(checkpoint_note)
            previous = self.state()
            if previous is not None:
                self._check_growth(previous, checkpoint, consistency_proof)
            if previous is None or previous.size != checkpoint.size:
                self._save(WitnessState(checkpoint.origin, checkpoint.size, checkpoint.root_hash))
            return self._cosigner.cosign(body, int(self._clock()))

    def _open(self, checkpoint_note: str) -> tuple[str, Checkpoint]:
        try:
            body, _ = open_note(checkpoint_note, [self._log_verifier])
        except NoteError as error:
            raise WitnessRefusal(RefusalReason.BAD_SIGNATURE, str(error)) from None
        try:
            checkpoint = parse_checkpoint(body)
        except NoteError as error:
            raise WitnessRefusal(RefusalReason.MALFORMED_CHECKPOINT, str(error)) from None
        if checkpoint.origin != self.origin:
            raise WitnessRefusal(
                RefusalReason.WRONG_ORIGIN, f"origin {checkpoint.origin!r} is not {self.origin!r}"
            )
        return body, checkpoint

    def _check_growth(
        self, previous: WitnessState, checkpoint: Checkpoint, proof: Sequence[bytes]
    ) -> None:
        if previous.origin != checkpoint.origin:
            raise WitnessRefusal(
                RefusalReason.WRONG_ORIGIN,
                f"state is for {previous.origin!r}, not {checkpoint.origin!r}",
            )
        if checkpoint.size < previous.size:
            raise WitnessRefusal(
                RefusalReason.SMALLER_TREE,
                f"size {checkpoint.size} is below cosigned size {previous.size}",
            )
        if checkpoint.size == previous.size:
            if checkpoint.root_hash != previous.root_hash:
                raise WitnessRefusal(
                    RefusalReason.SAME_SIZE_DIFFERENT_ROOT, f"fork at size {checkpoint.size}"
                )
            return
        if not verify_consistency(
            previous.size, checkpoint.size, previous.root_hash, checkpoint.root_hash, proof
        ):
            raise WitnessRefusal(
                RefusalReason.INCONSISTENT,
                f"size {checkpoint.size} is not proven consistent with cosigned size {previous.size}",
            )

    def _save(self, state: WitnessState) -> None:
        payload = json.dumps(
            {
                "origin": state.origin,
                "size": state.size,
                "root": base64.b64encode(state.root_hash).decode("ascii"),
            },
            sort_keys=True,
        )
        _write_atomically(self._state_path, payload.encode("utf-8"))


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` via a synced temp file and rename (POSIX atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    try:
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)
