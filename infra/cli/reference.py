"""`referrals reference show|history|diff|publish` (issue 14; docs/adr/0009): the recorded
reference versions, and publishing a new one without a release."""

from __future__ import annotations

import difflib
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer


def _out(text: str) -> None:
    print(text)


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True).splitlines()


def admin_principal(container: Any, principal_id: str) -> str:
    """The principal id when it is an admin with a valid token (the role that may publish);
    raises NotAuthorisedError otherwise."""
    from domain.errors import NotAuthorisedError

    now = datetime.now(UTC)
    for record in container.tokens.list():
        if (
            record.principal.principal_id == principal_id
            and record.principal.role == "admin"
            and record.status(now) == "active"
        ):
            return principal_id
    raise NotAuthorisedError(
        "NOT_AUTHORISED",
        "by",
        rule_vi=f"«{principal_id}» không phải chủ thể quản trị (admin) có mã truy cập còn hiệu "
        "lực; chỉ quản trị viên được công bố dữ liệu tham chiếu",
        rule_en=f"'{principal_id}' is not an admin principal with a valid token; only an admin "
        "may publish reference data",
    )


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Dữ liệu tham chiếu đã ghi (lịch, cơ quan, diện, thời hạn): show, "
        "history, diff, publish.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="reference")

    @group.command("show")
    def show(
        ref: str = typer.Argument(None, help="văn bản, ví dụ holidays/2026; bỏ trống: tất cả"),
        as_of: str = typer.Option(None, "--as-of", help="ngày YYYY-MM-DD (mặc định: hôm nay)"),
        as_json: bool = typer.Option(False, "--json", help="JSON"),
        list_name: str | None = typer.Option(
            None,
            "--list",
            help="the code list as GET /v1/reference?list= answers it, e.g. "
            "stages, procedural_roles, categories (JSON)",
        ),
    ) -> None:
        """The versions in force on a day (one document's content when REF is given); with
        --list, one code list exactly as `GET /v1/reference?list=NAME` answers it."""
        from infra.bootstrap import build_container
        from infra.cli.core import settings_from_env

        if list_name is not None:
            from infra.http.routes.reference import LIST_NAMES, reference_document
            from infra.reference_data import load_reference

            if list_name not in LIST_NAMES:
                print(
                    f"--list: «{list_name}» không phải danh mục; có: {', '.join(LIST_NAMES)}\n"
                    f"--list: '{list_name}' is not a list; lists: {', '.join(LIST_NAMES)}",
                    file=sys.stderr,
                )
                raise typer.Exit(code=2)
            document = reference_document(
                load_reference(settings_from_env().reference_data_dir), list_name
            )
            print(json.dumps(document, ensure_ascii=False, indent=1))
            return

        container = build_container(settings_from_env())
        try:
            state = container.reference_state
            day = date.fromisoformat(as_of) if as_of else state._today()
            if ref:
                record = state.refs.in_force(ref, day)
                if record is None:
                    print(f"Không có văn bản / no document {ref} on {day}", file=sys.stderr)
                    raise typer.Exit(1)
                print(json.dumps(record.as_dict(), ensure_ascii=False, indent=2))
                return
            records = state.refs.current(day)
            if as_json:
                print(
                    json.dumps(
                        [r.as_dict(content=False) for r in records], ensure_ascii=False, indent=2
                    )
                )
                return
            _out(f"Dữ liệu tham chiếu có hiệu lực ngày / in force on {day:%d/%m/%Y}:")
            for r in records:
                _out(
                    f"  {r.ref:28} v{r.version:<3} sha256 {r.sha256[:16]}…  "
                    f"{r.published_by}  {r.source[:60]}"
                )
        finally:
            container.close()

    @group.command("history")
    def history(ref: str = typer.Argument(None, help="văn bản; bỏ trống: tất cả")) -> None:
        """Every published version (who, when, effective dates, legal source)."""
        from infra.bootstrap import build_container
        from infra.cli.core import settings_from_env

        container = build_container(settings_from_env())
        try:
            refs = container.reference_state.refs
            for name in [ref] if ref else refs.refs():
                for r in refs.history(name):
                    _out(
                        f"{r.label:32} {r.published_at:%Y-%m-%d %H:%M}Z  {r.published_by}  "
                        f"hiệu lực / effective {r.effective_from or '-'}..{r.effective_to or '-'}"
                        f"  sha256 {r.sha256[:16]}…  nguồn / source: {r.source}"
                    )
        finally:
            container.close()

    @group.command("diff")
    def diff(
        ref: str = typer.Argument(..., help="văn bản, ví dụ holidays/2026"),
        old: int = typer.Option(None, "--from", help="phiên bản cũ (mặc định: áp chót)"),
        new: int = typer.Option(None, "--to", help="phiên bản mới (mặc định: mới nhất)"),
        file: Path = typer.Option(None, "--file", help="so với tệp công bố (chưa công bố)"),
    ) -> None:
        """A unified diff of two versions' contents (or of the latest and a publication file)."""
        from infra.bootstrap import build_container
        from infra.cli.core import settings_from_env

        container = build_container(settings_from_env())
        try:
            refs = container.reference_state.refs
            versions = refs.history(ref)
            if not versions:
                print(f"Không có văn bản / no document {ref}", file=sys.stderr)
                raise typer.Exit(1)
            if file is not None:
                a, a_name = versions[-1].content, versions[-1].label
                b, b_name = json.loads(file.read_text(encoding="utf-8"))["content"], str(file)
            else:
                b_rec = refs.version(ref, new) if new else versions[-1]
                a_rec = (
                    refs.version(ref, old)
                    if old
                    else (refs.version(ref, b_rec.version - 1) if b_rec else None)
                )
                if a_rec is None or b_rec is None:
                    print("Không có phiên bản / no such version", file=sys.stderr)
                    raise typer.Exit(1)
                a, a_name, b, b_name = a_rec.content, a_rec.label, b_rec.content, b_rec.label
            for line in difflib.unified_diff(_pretty(a), _pretty(b), a_name, b_name, lineterm=""):
                _out(line)
        finally:
            container.close()

    @group.command("publish")
    def publish(
        file: Path = typer.Argument(
            ...,
            exists=True,
            dir_okay=False,
            help='JSON {"ref", "content", "source", "effective_from"?, "effective_to"?}',
        ),
        by: str = typer.Option(..., "--by", help="chủ thể quản trị (admin) công bố"),
    ) -> None:
        """Validates, signs and records a new version; re-judges the verdicts it touches and
        prints the publication and every verdict that moved (JSON)."""
        from domain.errors import DomainError
        from infra.bootstrap import build_container
        from infra.cli.core import settings_from_env
        from infra.reference_state import parse_publication
        from services.wire import loads_strict

        container = build_container(settings_from_env())
        try:
            try:
                principal = admin_principal(container, by)
                body = parse_publication(loads_strict(file.read_bytes()))
                container.projections.process_pending()  # judge what is recorded first
                result = container.reference_state.publish(
                    body["ref"],
                    body["content"],
                    effective_from=body["effective_from"],
                    effective_to=body["effective_to"],
                    source=body["source"],
                    published_by=principal,
                )
            except DomainError as error:
                print(json.dumps(error.as_dict(), ensure_ascii=False), file=sys.stderr)
                raise typer.Exit(1) from None
            print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
        finally:
            container.close()
