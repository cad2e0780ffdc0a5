"""`referrals checkpoint | verify | proof | export-bundle | verify-bundle | verify-receipt |
witness | add-cosignature | audit-trail | log-public-key | log-keygen`.

`verify-bundle`, `verify-receipt` and `witness keygen | cosign` never read settings nor open a
database: an inspector or another agency runs them with the package and public keys
only. Every other command builds the process's container from settings.
"""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import typer

EXIT_TAMPERED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


def _instant(text: str | None, option: str) -> datetime | None:
    """An ISO date (midnight, Vietnam time) or date-time (Vietnam time if no offset)."""
    if text is None:
        return None
    from domain.calendar import VIETNAM_TZ

    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), VIETNAM_TZ)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _err(f"{option}: không phải ngày/giờ ISO 8601 / not an ISO 8601 date or date-time: {text}")
        raise typer.Exit(code=EXIT_USAGE) from None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=VIETNAM_TZ)


def _container() -> Any:
    from infra.bootstrap import build_container
    from infra.cli.core import settings_from_env

    settings = settings_from_env()
    # a command applies pending events itself (catch_up): never a second in-process runner
    return build_container(settings.model_copy(update={"projections_in_process": False}))


def _http(method: str, url: str, body: str | None = None) -> str:
    from urllib.error import HTTPError
    from urllib.request import Request, urlopen

    data = body.encode("utf-8") if body is not None else None
    request = Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "text/plain; charset=utf-8"} if data else {},
    )
    try:
        with urlopen(request, timeout=30) as response:  # noqa: S310 - operator-given URL
            return response.read().decode("utf-8")
    except HTTPError as error:
        detail = error.read().decode("utf-8", "replace")[:500]
        _err(f"{method} {url}: HTTP {error.code} {detail}")
        raise typer.Exit(code=EXIT_USAGE) from None


def _read_proof(path: Path) -> list[bytes]:
    from services.transparency.bundle import unb64

    document = json.loads(path.read_text(encoding="utf-8"))
    hashes = document.get("proof") if isinstance(document, dict) else document
    return [unb64(h) for h in hashes or []]


def register(app: typer.Typer) -> None:
    """Adds the transparency area's commands to the `referrals` CLI."""

    @app.command("checkpoint")
    def checkpoint(
        catch_up: bool = typer.Option(True, help="apply pending events to the audit trail first"),
    ) -> None:
        """Signs and stores a checkpoint of the log now; prints the signed note."""
        from infra.transparency.service import transparency_log

        container = _container()
        try:
            log = transparency_log(container)
            if catch_up:
                log.catch_up()
            _out(log.publish_checkpoint().cosigned_note)
        finally:
            container.close()

    @app.command("add-cosignature")
    def add_cosignature(
        size: int = typer.Argument(..., min=0, help="the cosigned checkpoint's tree size"),
        line_file: Path = typer.Argument(
            ..., exists=True, dir_okay=False, help="the witness's cosignature line"
        ),
    ) -> None:
        """Stores a witness's cosignature (from `witness cosign --checkpoint`) once it verifies
        under a key of REFERRALS_LOG_WITNESS_KEYS; prints the cosigned checkpoint."""
        from domain.errors import DomainError
        from infra.transparency.service import transparency_log

        container = _container()
        try:
            stored = transparency_log(container).add_cosignature(
                size, line_file.read_text(encoding="utf-8")
            )
        except DomainError as error:
            _err(f"{error.message_vi}\n{error.message_en}")
            raise typer.Exit(code=EXIT_REFUSED) from None
        finally:
            container.close()
        _out(stored.cosigned_note)

    @app.command("log-public-key")
    def log_public_key() -> None:
        """Prints the log's public (verifier) key, what inspectors pass as --log-key."""
        from infra.transparency.service import transparency_log

        container = _container()
        try:
            _out(transparency_log(container).public_key)
        finally:
            container.close()

    @app.command("log-keygen")
    def log_keygen(
        out: Path = typer.Option(..., "--out", "-o", help="private key file to create (0600)"),
        origin: str | None = typer.Option(None, help="default: REFERRALS_LOG_ORIGIN"),
    ) -> None:
        """Creates a log signing key named after the origin (production: keep it secret)."""
        from infra.cli.core import settings_from_env
        from infra.transparency.service import write_log_key
        from services.transparency.note import generate_signer

        name = origin or settings_from_env().log_origin
        if out.exists():
            _err(f"{out} đã tồn tại / already exists")
            raise typer.Exit(code=EXIT_USAGE)
        signer = generate_signer(name)
        write_log_key(out, signer)
        _out(signer.verifier().key_text)

    @app.command("verify")
    def verify(
        log_key: str | None = typer.Option(
            None,
            help="log public key to check checkpoints with (default: the configured signing key's)",
        ),
        catch_up: bool = typer.Option(True, help="apply pending events to the audit trail first"),
        as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    ) -> None:
        """Recomputes every leaf and both hash chains from the event store; checks the audit
        trail and every signed checkpoint; names the first altered/removed/inserted event."""
        from infra.transparency.service import transparency_log
        from services.transparency.note import verifier_from_key_text
        from services.transparency.verify import verify_log

        container = _container()
        try:
            log = transparency_log(container)
            if catch_up:
                log.catch_up()
            verifier = verifier_from_key_text(log_key) if log_key else log.signer.verifier()
            report = verify_log(container.referrals, log.view, verifier)
        finally:
            container.close()
        if as_json:
            _out(json.dumps(report.as_dict(), ensure_ascii=False))
        elif report.ok:
            _out(
                f"HỢP LỆ: {report.events_checked} sự kiện và {report.checkpoints_checked} "
                f"điểm kiểm đã ký khớp với kho sự kiện ({report.pending} sự kiện chưa vào sổ "
                "kiểm toán)."
            )
            _out(
                f"OK: {report.events_checked} events and {report.checkpoints_checked} signed "
                f"checkpoints match the event store ({report.pending} events not yet in the "
                "audit trail)."
            )
        else:
            assert report.finding is not None
            _out(report.finding.message_vi)
            _out(report.finding.message_en)
        if not report.ok:
            raise typer.Exit(code=EXIT_TAMPERED)

    proof = typer.Typer(
        help="Bằng chứng Merkle (RFC 9162): inclusion, consistency.", no_args_is_help=True
    )
    app.add_typer(proof, name="proof")

    @proof.command("inclusion")
    def proof_inclusion(
        case_id: str = typer.Argument(...),
        version: int = typer.Argument(..., min=1),
        size: int | None = typer.Option(None, min=1, help="checkpoint size (default: latest)"),
    ) -> None:
        """Prints (JSON) the inclusion proof of one case event against a signed checkpoint."""
        from infra.transparency.service import transparency_log

        container = _container()
        try:
            _out(
                json.dumps(
                    transparency_log(container).inclusion(case_id, version, size),
                    ensure_ascii=False,
                    indent=1,
                )
            )
        finally:
            container.close()

    @proof.command("consistency")
    def proof_consistency(
        old: int = typer.Argument(..., min=0),
        new: int | None = typer.Argument(None, min=0, help="default: the latest checkpoint"),
    ) -> None:
        """Prints (JSON) the consistency proof between two tree sizes."""
        from infra.transparency.service import transparency_log

        container = _container()
        try:
            _out(json.dumps(transparency_log(container).consistency(old, new), indent=1))
        finally:
            container.close()

    @app.command("export-bundle")
    def export_bundle(
        case_id: str | None = typer.Argument(None, help="the case (or use --province)"),
        output: Path = typer.Option(..., "--output", "-o", dir_okay=False),
        province: str | None = typer.Option(None, help="province code: a province bundle"),
        date_from: str | None = typer.Option(None, "--from", help="occurred from (ISO date)"),
        date_to: str | None = typer.Option(None, "--to", help="occurred before (ISO date)"),
        since: list[int] = typer.Option(
            [], help="include a consistency proof from this checkpoint size (repeatable)"
        ),
        at: str | None = typer.Option(None, help="evaluate the time limits at (default: now)"),
    ) -> None:
        """Exports a case bundle (or a province bundle) for offline verification."""
        from infra.transparency.service import transparency_log

        if (case_id is None) == (province is None):
            _err("Cần đúng một trong CASE_ID hoặc --province / give CASE_ID or --province")
            raise typer.Exit(code=EXIT_USAGE)
        start, end = _instant(date_from, "--from"), _instant(date_to, "--to")
        if province is not None and (start is None or end is None):
            _err("--province cần --from và --to / --province needs --from and --to")
            raise typer.Exit(code=EXIT_USAGE)
        from domain.errors import DomainError, LogIntegrityError

        moment = _instant(at, "--at")
        container = _container()
        try:
            log = transparency_log(container)
            if case_id is not None:
                bundle = log.case_bundle(case_id, at=moment, since=since)
            else:
                bundle = log.province_bundle(province, start, end, since=since)  # type: ignore[arg-type]
        except LogIntegrityError as error:  # the store was altered: as `verify`, exit 1
            _err(f"{error.code}: {error.message_vi} / {error.message_en}")
            raise typer.Exit(code=EXIT_TAMPERED) from None
        except DomainError as error:  # an unknown case, no checkpoint yet, ...
            _err(f"{error.code}: {error.message_vi} / {error.message_en}")
            raise typer.Exit(code=EXIT_USAGE) from None
        finally:
            container.close()
        output.write_text(json.dumps(bundle, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        _out(
            json.dumps(
                {
                    "output": str(output),
                    "leaves": len(bundle["leaves"]),
                    "checkpoint_size": int(bundle["checkpoint"].split("\n")[1]),
                }
            )
        )

    @app.command("verify-bundle")
    def verify_bundle_command(
        file: Path = typer.Argument(..., exists=True, dir_okay=False),
        log_key: str = typer.Option(..., help="the log's public key, as published"),
        witness_key: list[str] = typer.Option(
            [], help="a witness's cosignature key that must have cosigned (repeatable)"
        ),
        trusted_checkpoint: Path | None = typer.Option(
            None,
            exists=False,
            dir_okay=False,
            help="a checkpoint you trusted earlier: the bundle must extend it",
        ),
        save_trusted: bool = typer.Option(
            False,
            help="on success, save the bundle's checkpoint "
            "as the trusted one (--trusted-checkpoint)",
        ),
        at: str | None = typer.Option(
            None, help="evaluate the time limits at this instant (default: the bundle's as_of)"
        ),
        clock: str = typer.Option(
            "recorded",
            help="a case bundle: recorded (the case as the "
            "ledger knew it at --at) or occurred (as it happened by --at: "
            "every event in the bundle that occurred by then)",
        ),
    ) -> None:
        """OFFLINE: checks a bundle with public keys only and recomputes its figures."""
        if clock not in ("recorded", "occurred"):
            _err(f"--clock: recorded hoặc occurred / recorded or occurred: {clock}")
            raise typer.Exit(code=EXIT_USAGE)
        from infra.reference_data import load_calendar, load_reference, load_time_limits
        from services.transparency.bundle import verify_bundle
        from services.transparency.note import NoteError

        try:
            bundle = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as error:  # UnicodeDecodeError too
            _err(f"Tệp không phải JSON / not JSON: {error}")
            raise typer.Exit(code=EXIT_USAGE) from None
        if not isinstance(bundle, dict):
            _err(
                "Tệp không phải gói chứng cứ (cần một đối tượng JSON) / not a bundle (a JSON "
                "object is expected)"
            )
            raise typer.Exit(code=EXIT_USAGE)
        trusted = None
        if trusted_checkpoint is not None and trusted_checkpoint.exists():
            trusted = trusted_checkpoint.read_text(encoding="utf-8")
        try:
            report = verify_bundle(
                bundle,
                log_key,
                witness_key,
                trusted,
                _instant(at, "--at"),
                rules=load_time_limits(None),
                calendar=load_calendar(None),
                reference=load_reference(None),
                clock=clock,
            )
        except NoteError as error:
            _err(f"Khoá không hợp lệ / invalid key: {error}")
            raise typer.Exit(code=EXIT_USAGE) from None
        _print_bundle_report(bundle, report)
        if not report.ok:
            raise typer.Exit(code=EXIT_TAMPERED)
        if save_trusted and trusted_checkpoint is not None:
            trusted_checkpoint.write_text(bundle["checkpoint"], encoding="utf-8")
            _out(
                f"Đã lưu điểm kiểm {report.checkpoint.size} làm điểm tin cậy / saved as trusted "  # type: ignore[union-attr]
                f"checkpoint: {trusted_checkpoint}"
            )

    @app.command("verify-receipt")
    def verify_receipt_command(
        receipt_file: Path = typer.Argument(..., exists=True, dir_okay=False),
        proof_file: Path = typer.Option(
            ...,
            "--proof",
            exists=True,
            dir_okay=False,
            help="the answer of GET /v1/log/proofs/inclusion",
        ),
        log_key: str = typer.Option(..., help="the log's public key, as published"),
    ) -> None:
        """OFFLINE: checks that the log kept a receipt's promise (inclusion proof against a
        signed checkpoint; the leaf index comes from the proof answer)."""
        from services.transparency.bundle import unb64
        from services.transparency.checkpoint import MalformedCheckpointError, parse_checkpoint
        from services.transparency.note import (
            MalformedNoteError,
            NoteError,
            open_note,
            verifier_from_key_text,
        )
        from services.transparency.receipt import check_receipt_against_checkpoint, open_receipt

        # bad input (a key, a file that is not what it should be): one line, exit 2
        try:
            verifier = verifier_from_key_text(log_key)
        except NoteError as error:
            _err(f"Khoá không hợp lệ / invalid key: {error}")
            raise typer.Exit(code=EXIT_USAGE) from None
        try:
            receipt = receipt_file.read_text(encoding="utf-8")
            promised = open_receipt(receipt, [verifier])
        except (OSError, ValueError, NoteError) as error:
            _err(
                f"Biên nhận không hợp lệ hoặc không do khoá này ký / invalid receipt, or not "
                f"signed by this key ({receipt_file}): {error}"
            )
            raise typer.Exit(code=EXIT_USAGE) from None
        try:
            answer = json.loads(proof_file.read_text(encoding="utf-8"))
            proof = [unb64(h) for h in answer["proof"]]
            index, checkpoint = int(answer["leaf_index"]), answer["checkpoint"]
            # the leaf's bytes (answers since held-receipt/v1): checked against the receipt
            leaf = unb64(answer["leaf"]) if answer.get("leaf") is not None else None
            if promised.held and leaf is None:
                raise KeyError("leaf (a held-receipt/v1 is checked against the leaf's bytes)")
            if not isinstance(checkpoint, str):
                raise TypeError("checkpoint must be the signed note text")
            try:  # a note that is not even a checkpoint is bad input; a bad signature is not
                parse_checkpoint(open_note(checkpoint, [verifier])[0])
            except (MalformedNoteError, MalformedCheckpointError):
                raise
            except NoteError:
                pass
        except (
            OSError,
            KeyError,
            TypeError,
            ValueError,
            MalformedNoteError,
            MalformedCheckpointError,
        ) as error:
            _err(
                f"Tệp bằng chứng không hợp lệ / invalid proof file ({proof_file}): "
                f"{type(error).__name__}: {error}"
            )
            raise typer.Exit(code=EXIT_USAGE) from None
        if check_receipt_against_checkpoint(
            receipt, checkpoint, index, proof, [verifier], leaf=leaf
        ):
            _out(
                f"HỢP LỆ: sự kiện {promised.event_id} (vị trí {promised.position}) nằm ở chỉ số "
                f"lá {index} của điểm kiểm kích thước {answer.get('tree_size')}."
            )
            _out(
                f"VALID: event {promised.event_id} (position {promised.position}) is leaf "
                f"{index} of the checkpoint of size {answer.get('tree_size')}."
            )
            return
        _out(
            f"KHÔNG HỢP LỆ: sổ không giữ lời hứa của biên nhận cho sự kiện {promised.event_id} "
            f"(vị trí {promised.position})."
        )
        _out(
            f"INVALID: the log did not keep the receipt's promise for event "
            f"{promised.event_id} (position {promised.position})."
        )
        raise typer.Exit(code=EXIT_TAMPERED)

    witness = typer.Typer(
        help="Nhân chứng (witness) của một cơ quan khác: keygen, cosign.", no_args_is_help=True
    )
    app.add_typer(witness, name="witness")

    @witness.command("keygen")
    def witness_keygen(
        name: str = typer.Argument(
            ..., help="the witness's name, e.g. vks-lang-son.gov.vn/witness"
        ),
        out: Path | None = typer.Option(None, "--out", "-o", help="default: ./<last part>.key"),
    ) -> None:
        """Creates a witness key file (0600); prints the cosignature key to give the ledger."""
        from services.transparency.checkpoint import Cosigner
        from services.transparency.note import InvalidKeyError, generate_signer

        try:
            signer = generate_signer(name)
        except InvalidKeyError as error:
            _err(str(error))
            raise typer.Exit(code=EXIT_USAGE) from None
        path = out or Path(name.rstrip("/").rsplit("/", 1)[-1] + ".key")
        if path.exists():
            _err(f"{path} đã tồn tại / already exists")
            raise typer.Exit(code=EXIT_USAGE)
        import os

        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(signer.key_text + "\n")
        _out(Cosigner.from_signer(signer).verifier().key_text)

    @witness.command("cosign")
    def witness_cosign(
        log_key: str = typer.Option(..., help="the log's public key"),
        key_file: Path = typer.Option(..., exists=True, dir_okay=False, help="witness key file"),
        state: Path = typer.Option(..., dir_okay=False, help="the witness's state file"),
        url: str | None = typer.Option(None, help="the ledger, e.g. http://127.0.0.1:8000"),
        checkpoint_file: Path | None = typer.Option(
            None, "--checkpoint", exists=True, dir_okay=False
        ),
        proof_file: Path | None = typer.Option(
            None,
            "--proof",
            exists=True,
            dir_okay=False,
            help="consistency proof JSON from the last cosigned size",
        ),
        origin: str | None = typer.Option(None, help="default: the log key's name"),
        post: bool = typer.Option(True, help="with --url: post the cosignature to the ledger"),
    ) -> None:
        """Cosigns the log's checkpoint only if it extends the last one this witness cosigned."""
        from infra.transparency.witness import Witness, WitnessRefusal
        from services.transparency.checkpoint import parse_checkpoint
        from services.transparency.note import signer_from_key_text, split_note

        if (url is None) == (checkpoint_file is None):
            _err("Cần đúng một trong --url hoặc --checkpoint / give --url or --checkpoint")
            raise typer.Exit(code=EXIT_USAGE)
        signer = signer_from_key_text(key_file.read_text(encoding="utf-8").strip())
        keeper = Witness(signer.name, signer, log_key, state, origin=origin)
        base = url.rstrip("/") if url else None
        if base is not None:
            note = _http("GET", f"{base}/v1/log/checkpoint")
        else:
            note = checkpoint_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
        size = parse_checkpoint(split_note(note)[0]).size
        previous = keeper.state()
        proof: list[bytes] = []
        if proof_file is not None:
            proof = _read_proof(proof_file)
        elif base is not None and previous is not None and 0 < previous.size < size:
            from services.transparency.bundle import unb64

            answer = json.loads(
                _http("GET", f"{base}/v1/log/proofs/consistency?old={previous.size}&new={size}")
            )
            proof = [unb64(h) for h in answer["proof"]]
        try:
            line = keeper.cosign(note, proof)
        except WitnessRefusal as refusal:
            _err(f"TỪ CHỐI ĐỒNG KÝ / REFUSED: {refusal.reason.value}: {refusal.detail}")
            raise typer.Exit(code=EXIT_REFUSED) from None
        if base is not None and post:
            _http("POST", f"{base}/v1/log/checkpoints/{size}/cosignatures", line)
        _out(line)

    @app.command("audit-trail")
    def audit_trail(
        case_id: str | None = typer.Option(None, "--case", help="a case's timeline"),
        agency_id: str | None = typer.Option(None, "--agency", help="an agency's timeline"),
        limit: int = typer.Option(100, min=1, max=10_000),
    ) -> None:
        """Prints a case's (or an agency's) audit trail: who recorded what, when it occurred
        and when it was recorded, with leaf and chain hashes."""
        from rich.console import Console
        from rich.table import Table

        if (case_id is None) == (agency_id is None):
            _err("Cần đúng một trong --case hoặc --agency / give --case or --agency")
            raise typer.Exit(code=EXIT_USAGE)
        container = _container()
        try:
            log_view = container.projections.view("audit_trail")
            container.projections.process_pending()
            rows = (
                log_view.case_timeline(case_id)
                if case_id is not None
                else log_view.agency_timeline(agency_id, limit=limit)
            )
        finally:
            container.close()
        table = Table(title=f"Sổ kiểm toán — {case_id or agency_id}")
        for column in (
            "#",
            "vị trí",
            "vụ việc",
            "pb",
            "loại",
            "cơ quan",
            "xảy ra",
            "ghi nhận",
            "lá",
            "chuỗi vụ việc",
        ):
            table.add_column(column)
        for row in rows[:limit]:
            table.add_row(
                str(row["leaf_index"]),
                str(row["position"]),
                row["case_id"] or "—",
                str(row["version"]),
                row["type"],
                row["agency_id"] or "—",
                row["occurred_at"].isoformat() if row["occurred_at"] else "—",
                row["recorded_at"].isoformat(),
                row["leaf_hash"].hex()[:16],
                row["case_chain_hash"].hex()[:16],
            )
        Console().print(table)


def _local(text: str | None) -> str:
    """An RFC 3339 UTC instant as Vietnam time, to the minute."""
    if text is None:
        return "—"
    from domain.calendar import VIETNAM_TZ
    from services.transparency.leaves import parse_rfc3339

    return parse_rfc3339(text).astimezone(VIETNAM_TZ).strftime("%Y-%m-%d %H:%M")


def _print_bundle_report(bundle: dict[str, Any], report: Any) -> None:
    from services.transparency.bundle import b64

    checkpoint = report.checkpoint
    if checkpoint is not None:
        _out(
            f"Điểm kiểm / checkpoint: {checkpoint.origin}, kích thước / size {checkpoint.size}, "
            f"gốc / root {b64(checkpoint.root_hash)} — chữ ký của sổ hợp lệ / log signature "
            "valid"
        )
    from domain.calendar import VIETNAM_TZ

    for name, stamp in report.witnesses:
        moment = datetime.fromtimestamp(stamp, VIETNAM_TZ).isoformat()
        _out(f"Nhân chứng / witness {name}: đã đồng ký / cosigned at {moment}")
    _out(f"Lá đã kiểm / leaves verified: {report.leaves_checked}/{len(bundle.get('leaves') or [])}")
    if report.trusted_size is not None and report.ok:
        _out(
            f"Nhất quán với điểm kiểm tin cậy / consistent with the trusted checkpoint of size "
            f"{report.trusted_size}"
        )
    for document in bundle.get("reference") or [] if report.ok else []:
        _out(
            f"Dữ liệu tham chiếu / reference {document.get('ref')} v{document.get('version')} "
            f"sha256 {str(document.get('sha256'))[:16]}… — chữ ký hợp lệ / signature valid"
        )
    figures = report.figures
    if figures is not None and bundle.get("kind") == "case":
        _out(
            f"Vụ việc / case {bundle.get('case_id')}: {figures['events']} sự kiện / events, "
            f"trạng thái / status {figures['status']}"
        )
        if figures.get("clock") == "occurred":
            _out(
                "  như đã xảy ra / as it happened (thời điểm xảy ra / occurred_at ≤ --at, theo "
                "mọi sự kiện trong gói / every event in the bundle)"
            )
        _out("  (giờ Việt Nam / Vietnam time, UTC+7)")
        for verdict in figures["time_limits"]:
            flag = " QUÁ HẠN / OVERDUE" if verdict["outstanding"] else ""
            _out(
                f"  {verdict['rule_id']} (v{verdict['trigger_version']}): {verdict['status']}, "
                f"hạn / deadline {_local(verdict['deadline'])}, đáp ứng / met "
                f"{_local(verdict['met_at'])}, cơ quan chịu trách nhiệm / responsible "
                f"{verdict['responsible_agency_id']}{flag}"
                + (f", căn cứ / basis {' '.join(verdict['basis'])}" if verdict.get("basis") else "")
            )
    elif figures is not None:
        _out(
            f"Tỉnh / province {bundle.get('province')} [{bundle.get('from')}, {bundle.get('to')}):"
            f" {figures['events']} sự kiện / events, {figures['cases']} vụ việc / cases"
        )
        for item in figures["by_agency_and_type"]:
            _out(f"  {item['agency_id']}  {item['type']}: {item['events']}")
    for vi, en in report.notes:
        _out(f"GHI CHÚ: {vi}")
        _out(f"NOTE: {en}")
    for vi, en in report.problems:
        _out(f"LỖI: {vi}")
        _out(f"FAILED: {en}")
    _out(
        "KẾT QUẢ: HỢP LỆ / RESULT: VALID"
        if report.ok
        else "KẾT QUẢ: KHÔNG HỢP LỆ / RESULT: INVALID"
    )
