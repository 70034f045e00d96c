"""`scryon-dagster`: the operator's command line (migrate, enqueue, simulator, demo, api, restore, call-cost,
embedded db)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from uuid import UUID

from scryon_dagster.domain.calls import Direction
from scryon_dagster.settings import Settings, SettingsError, load_settings


class CliError(Exception):
    """A one-line error for the operator; the command exits non-zero."""


def _database_url(settings: Settings) -> str:
    from scryon_dagster.adapters.db.embedded import resolve_database_url

    return resolve_database_url(settings.scryon_database_url, settings.scryon_embedded_pg_dir)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> None:
    from scryon_dagster.adapters.db.migrate import upgrade_to_head

    print(f"schema at revision {upgrade_to_head(_database_url(settings))}")


def _parse_recorded_at(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an ISO-8601 timestamp, e.g. 2026-11-28T10:15:00Z") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("the timestamp needs a time zone, e.g. 2026-11-28T10:15:00Z")
    return parsed


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> None:
    from scryon_dagster.adapters.audio_probe import AudioProbe
    from scryon_dagster.adapters.db.records import NewCall
    from scryon_dagster.adapters.db.repository import CallDatabase
    from scryon_dagster.adapters.object_store import build_object_store
    from scryon_dagster.pipeline.intake import enqueue_call

    path: Path = args.audio_file
    if not path.is_file():
        raise CliError(f"no such audio file: {path}")
    call = NewCall(
        title=args.title,
        contact_name=args.contact_name,
        phone_number=args.phone_number,
        direction=Direction(args.direction),
        recorded_at=args.recorded_at,
    )
    with CallDatabase(_database_url(settings), timeout_seconds=5, retry_seconds=5) as db, path.open("rb") as audio:
        record = enqueue_call(
            db,
            build_object_store(settings),
            audio=audio,
            filename=path.name,
            user_reference=args.user_id,
            user_display_name=args.user_display_name,
            call=call,
            max_bytes=settings.max_file_size,
            audio_probe=AudioProbe.from_settings(settings),
        )
    print(record.id)


def cmd_simulator(args: argparse.Namespace, settings: Settings) -> None:
    from scryon_dagster.simulator import run_simulator

    run_simulator(host=args.host, port=args.port, profile=args.profile)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> None:
    from scryon_dagster.demo import DemoError, run_demo

    try:
        run_demo(settings, ui_port=args.port, open_ui=not args.no_ui)
    except DemoError as exc:
        raise CliError(str(exc)) from None


def cmd_api(args: argparse.Namespace, settings: Settings) -> None:
    from scryon_dagster.api import ApiConfigurationError
    from scryon_dagster.api.serve import serve

    try:
        serve(settings, host=args.host, port=args.port, local_dev=args.local_dev or settings.scryon_api_local_dev)
    except ApiConfigurationError as exc:
        raise CliError(str(exc)) from None


def cmd_db(args: argparse.Namespace, settings: Settings) -> None:
    from scryon_dagster.adapters.db.embedded import start_embedded_postgres, stop_embedded_postgres

    if args.action == "stop":
        stopped = stop_embedded_postgres(settings.scryon_embedded_pg_dir, force=args.force)
        print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    else:
        print(start_embedded_postgres(settings.scryon_embedded_pg_dir))


def cmd_restore(args: argparse.Namespace, settings: Settings) -> None:
    from datetime import timedelta

    from psycopg.conninfo import conninfo_to_dict

    from scryon_dagster.adapters.db.backup import PostgresToolError
    from scryon_dagster.adapters.object_store import build_object_store
    from scryon_dagster.pipeline import backups

    store = build_object_store(settings)
    if args.list:
        for stored in backups.list_backups(store):
            print(f"{stored.key}  {stored.size} bytes  taken {stored.taken_at.isoformat()}")
        return
    database_url = _database_url(settings)
    target = conninfo_to_dict(database_url).get("dbname")
    if args.confirm_database != target:
        raise CliError(
            f"type the target database's name after --confirm-database (it is {target!r}): "
            "the restore writes every table of that database"
        )
    try:
        chosen = backups.choose_backup(store, args.dump)
        report = backups.restore_database(
            database_url,
            store,
            chosen,
            retry_policy=settings.retry_policy,
            temp_audio_ttl=timedelta(hours=settings.object_storage_temp_audio_ttl_hours),
        )
    except (backups.BackupError, PostgresToolError) as exc:
        raise CliError(str(exc)) from None
    reconcile = report.reconcile
    print(f"restored {report.key} ({report.compressed_bytes} bytes) in {report.duration_seconds:.1f} s")
    print(f"schema at revision {report.schema_revision}")
    print(
        f"calls in flight at backup time: {len(report.requeued)} re-queued for a retry, "
        f"{len(report.failed)} failed (no retry left); {len(report.released)} queued calls handed to the pickup"
    )
    print(
        f"reconcile: {len(reconcile.missing_artifacts)} artifact rows without their object, "
        f"{len(reconcile.orphan_objects)} orphan objects, {len(reconcile.untracked_objects)} untracked objects, "
        f"{len(reconcile.expired_temp_audio)} expired temp audio; {len(reconcile.rederivable)} re-derivable, "
        f"{len(reconcile.reprocessable)} reprocessable, {len(reconcile.underivable)} not derivable calls"
    )
    if any(
        (
            reconcile.missing_artifacts,
            reconcile.orphan_objects,
            reconcile.expired_temp_audio,
            reconcile.untracked_objects,
        )
    ):
        print("next: launch the reconcile_storage job with repair: true (docs/runbook.md, Restore from a backup)")


def cmd_call_cost(args: argparse.Namespace, settings: Settings) -> None:
    from scryon_dagster.adapters.db.cost_queries import CostQueries
    from scryon_dagster.adapters.db.repository import CallDatabase

    with CallDatabase(_database_url(settings), timeout_seconds=5, retry_seconds=5) as db:
        cost = CostQueries(db).call_cost(args.call_id)
        if not cost.entries and db.get_call(args.call_id) is None:
            raise CliError(f"no call {args.call_id} (a deleted call's spend stays in the ledger, unlinked)")
    print(f"call {cost.call_id}: {len(cost.entries)} paid requests, estimated {cost.estimated_cost_usd:.6f} USD")
    for entry in cost.entries:
        if entry.prompt_tokens is not None:
            units = f"{entry.prompt_tokens} prompt + {entry.completion_tokens} completion tokens"
        else:
            units = f"{entry.audio_seconds or 0:.1f} s audio, {entry.billed_audio_seconds or 0:.1f} s billed"
        when = entry.created_at.isoformat(timespec="seconds")
        print(f"  {when}  {entry.provider:<8}  {entry.stage:<20}  {units}  {entry.estimated_cost_usd:.6f} USD")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scryon-dagster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="apply missing database migrations").set_defaults(handler=cmd_migrate)

    enqueue = commands.add_parser("enqueue", help="store a recording and queue its call; prints the call id")
    enqueue.add_argument("audio_file", type=Path)
    enqueue.add_argument("--user-id", default="local-user", help="user id (UUID) or external user id")
    enqueue.add_argument("--user-display-name", default=None, help="the user's name, used by speaker naming")
    enqueue.add_argument("--title")
    enqueue.add_argument("--direction", choices=[d.value for d in Direction], default=Direction.UNKNOWN.value)
    enqueue.add_argument("--contact-name")
    enqueue.add_argument("--phone-number")
    enqueue.add_argument("--recorded-at", type=_parse_recorded_at)
    enqueue.set_defaults(handler=cmd_enqueue)

    simulator = commands.add_parser("simulator", help="run the provider SIMULATOR (Lemonfox, pyannoteAI, LLM)")
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=8765)
    simulator.add_argument("--profile", choices=["fast", "realistic"], default="fast")
    simulator.set_defaults(handler=cmd_simulator)

    demo = commands.add_parser("demo", help="embedded database + simulator + sample calls + Dagster UI")
    demo.add_argument("--port", type=int, default=3000, help="Dagster UI port (default 3000; must be free)")
    demo.add_argument("--no-ui", action="store_true", help="process the samples without the UI, then exit")
    demo.set_defaults(handler=cmd_demo)

    api = commands.add_parser("api", help="serve the HTTP API (health, calls, transcripts, callback webhook)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8080)
    api.add_argument(
        "--local-dev",
        action="store_true",
        help="without an identity provider, act for the fixed local-dev user (a developer's machine only)",
    )
    api.set_defaults(handler=cmd_api)

    restore = commands.add_parser(
        "restore",
        help="load a db-backups/ dump into the EMPTY database of SCRYON_DATABASE_URL, migrate, reconcile",
    )
    restore.add_argument("--dump", help="the dump's key or file name (default: the newest)")
    restore.add_argument(
        "--confirm-database", metavar="NAME", help="the target database's name, typed again (required to restore)"
    )
    restore.add_argument("--list", action="store_true", help="list the stored dumps, oldest first, and exit")
    restore.set_defaults(handler=cmd_restore)

    call_cost = commands.add_parser(
        "call-cost", help="a call's provider spend: each paid request (retries included) and the total"
    )
    call_cost.add_argument("call_id", type=UUID)
    call_cost.set_defaults(handler=cmd_call_cost)

    db = commands.add_parser("db", help="the embedded default PostgreSQL server")
    db.add_argument("action", choices=["start", "stop"])
    db.add_argument("--force", action="store_true", help="stop even while a demo or API process uses the server")
    db.set_defaults(handler=cmd_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args, load_settings())
    except (CliError, SettingsError) as exc:
        print(f"scryon-dagster: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # Expected failures of intake, storage and the database carry a clean message; nothing else
        # (no stack trace with call data) reaches the operator's terminal.
        from scryon_dagster.adapters.db.embedded import EmbeddedPostgresError
        from scryon_dagster.adapters.db.repository import DatabaseError
        from scryon_dagster.adapters.object_store import ObjectStoreError
        from scryon_dagster.pipeline.intake import IntakeError

        if isinstance(exc, IntakeError | DatabaseError | ObjectStoreError | EmbeddedPostgresError):
            print(f"scryon-dagster: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
