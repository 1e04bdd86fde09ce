"""The `flowhook` command: serve, worker, map, bench."""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

EXIT_OK, EXIT_MAPPING_FAILED, EXIT_BAD_INPUT = 0, 1, 2
#: What a shell reports for a command killed by SIGPIPE (128 + 13), which Python ignores for its own.
EXIT_BROKEN_PIPE = 141


def _read_json(path: str, what: str) -> Any:
    try:
        return orjson.loads(Path(path).read_bytes())
    except OSError as error:
        raise SystemExit(_fail(f"cannot read {what} {path}: {error.strerror}")) from None
    except orjson.JSONDecodeError as error:
        raise SystemExit(_fail(f"{what} {path} is not valid JSON: {error}")) from None


def _fail(message: str) -> int:
    print(f"flowhook: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def command_map(args: argparse.Namespace) -> int:
    """Run one mapping on one sample; print the MappingResult as JSON."""
    from mapper import Limits, MappingSpecError, SampleError, compile_mapping, request_from_file

    spec = _read_json(args.mapping, "mapping")
    sample = _read_json(args.sample, "sample")
    variables = _read_json(args.variables, "variables") if args.variables else None
    try:
        limits = Limits(time_ms=args.time_limit_ms) if args.time_limit_ms is not None else None
    except ValueError as error:
        return _fail(f"--time-limit-ms: {error}")
    try:
        mapping = compile_mapping(spec, variables=variables, limits=limits)
    except MappingSpecError as error:
        print(orjson.dumps({"ok": False, "specError": error.to_dict()}, option=orjson.OPT_INDENT_2).decode())
        return EXIT_BAD_INPUT
    try:
        request = request_from_file(sample)
    except SampleError as error:
        return _fail(f"sample {args.sample}: {error}")
    result = mapping.run(request)
    print(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    return EXIT_OK if result.ok else EXIT_MAPPING_FAILED


def command_bench(args: argparse.Namespace) -> int:
    from flowhook.bench import run_bench

    run_bench(seconds=args.seconds, include_ingest=not args.mapping_only)
    return EXIT_OK


def _database_url(database: str | None, data_dir: str, *, create: bool = True) -> URL:
    """The database `--database` names, once its dialect and driver load.

    Checked before anything starts, so a URL flowhook cannot use is one line
    on stderr rather than SQLAlchemy's traceback, and only the driver's
    import can be blamed on the URL. Messages never show the password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from store import database_url

    try:
        url = database_url(database, Path(data_dir))
    except (ArgumentError, ValueError):
        raise SystemExit(
            _fail("--database is not a database URL (e.g. postgresql://user:password@host/name)")
        ) from None
    given = make_url(database) if database else url  # as the user wrote it, not with the driver filled in
    try:
        url.get_dialect().import_dbapi()
    except (ArgumentError, ModuleNotFoundError) as error:  # ArgumentError: no such dialect (NoSuchModuleError)
        driver = getattr(error, "name", None) or given.drivername
        raise SystemExit(
            _fail(f"unsupported database URL {_shown(given)}: no driver {driver} (use sqlite:// or postgresql://)")
        ) from None
    if create:
        _sqlite_directory(url)
    else:
        with _connecting_to(given):
            _made_by_serve(url, given)
    return given


def _port(text: str) -> int:
    """A TCP port to listen on (uvicorn would take 99999 as 99999 mod 65536 and say 99999)."""
    if not text.isdecimal() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65535")
    return int(text)


def _process_count(text: str) -> int:
    """At least one (uvicorn quietly ran one process for `--workers 0`)."""
    if not text.isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1 or more)")
    return int(text)


def _seconds(text: str) -> float:
    """A positive, finite time (`nan` would make every measurement loop forever)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _sqlite_directory(url: URL) -> None:
    """An SQLite database's directory, created if missing: one that cannot be is a line on stderr, not a traceback.

    An in-memory database is refused: it would vanish with the process, and every process has its own.
    """
    if url.get_backend_name() != "sqlite":
        return
    if not url.database or url.database == ":memory:":
        raise SystemExit(_fail("an SQLite --database must name a file (sqlite:///path/flowhook.db)"))
    directory = Path(url.database).parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SystemExit(_fail(f"cannot keep the database in {directory}: it is not a directory")) from None
    except OSError as error:
        raise SystemExit(_fail(f"cannot keep the database in {directory}: {error.strerror}")) from None


def _made_by_serve(url: URL, given: URL) -> None:
    """A worker only works on a database `serve` made: a mistyped --data-dir, or database name on a PostgreSQL
    server, would otherwise get a new, empty database (and on PostgreSQL a schema) that no server ever writes
    to, and the worker would wait on it forever."""
    if url.get_backend_name() == "sqlite":
        made, where = url.database is not None and Path(url.database).is_file(), str(url.database)
    else:
        made, where = _has_schema(url), _shown(given)
    if not made:
        raise SystemExit(_fail(f"no flowhook database at {where}: start `flowhook serve` on it first"))


def _has_schema(url: URL) -> bool:
    import sqlalchemy as sa

    from store.tables import schema_migrations

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sa.inspect(conn).has_table(schema_migrations.name)
    finally:
        engine.dispose()


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


@contextmanager
def _connecting_to(url: URL) -> Iterator[None]:
    """A database that cannot be reached ends the command with the driver's one-line reason, not a traceback."""
    from sqlalchemy.exc import OperationalError

    try:
        yield
    except OperationalError as error:
        reason = str(error.orig or error).strip().splitlines()[0]
        if url.password:
            reason = reason.replace(url.password, "***")
        raise SystemExit(_fail(f"cannot connect to the database at {_shown(url)}: {reason}")) from None


def _check_settings(args: argparse.Namespace) -> None:
    """FLOWHOOK_* variables that do not parse are a line on stderr before anything starts."""
    from ingress.settings import Settings

    try:
        Settings.from_env(data_dir=Path(args.data_dir), database=args.database)
    except ValueError as error:
        raise SystemExit(_fail(str(error))) from None


def _check_listening(host: str, port: int) -> None:
    """An address that cannot be listened on is a line on stderr before first-start set-up: otherwise the
    generated admin token is printed, once, above uvicorn's error, and a later start never shows it again."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn decides
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            raise SystemExit(_fail(f"cannot listen on {host}:{port}: {error.strerror or error}")) from None


def command_serve(args: argparse.Namespace) -> int:
    from ingress.serve import serve

    _check_settings(args)
    _check_listening(args.host, args.port)
    with _connecting_to(_database_url(args.database, args.data_dir)):
        serve(host=args.host, port=args.port, data_dir=args.data_dir, database=args.database, workers=args.workers)
    return EXIT_OK


def command_worker(args: argparse.Namespace) -> int:
    from flowhook.worker import run_worker

    _check_settings(args)
    with _connecting_to(_database_url(args.database, args.data_dir, create=False)):
        run_worker(data_dir=args.data_dir, database=args.database)
    return EXIT_OK


DEFAULT_DATA_DIR = "flowhook-data"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowhook", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run ingress, APIs and executor")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8080)
    serve.add_argument("--data-dir", help="where the SQLite database lives (FLOWHOOK_DATA_DIR, else flowhook-data)")
    serve.add_argument("--database", help="database URL (FLOWHOOK_DATABASE, else SQLite in --data-dir)")
    serve.add_argument("--workers", type=_process_count, default=1, help="server processes")
    serve.set_defaults(handler=command_serve)

    worker = commands.add_parser("worker", help="run the flow executor alone (no HTTP)")
    worker.add_argument("--data-dir", help="where the SQLite database lives (FLOWHOOK_DATA_DIR, else flowhook-data)")
    worker.add_argument("--database", help="database URL (FLOWHOOK_DATABASE, else SQLite in --data-dir)")
    worker.set_defaults(handler=command_worker)

    map_ = commands.add_parser("map", help="run one mapping on one sample and print the result")
    map_.add_argument("--mapping", required=True, help="mapping spec JSON file")
    map_.add_argument("--sample", required=True, help="sample request JSON file")
    map_.add_argument("--variables", help="flow variable declarations JSON file")
    map_.add_argument("--time-limit-ms", type=int, default=None)
    map_.set_defaults(handler=command_map)

    bench = commands.add_parser("bench", help="print mapping and ingestion throughput on this machine")
    bench.add_argument("--seconds", type=_seconds, default=1.0, help="time per measurement")
    bench.add_argument("--mapping-only", action="store_true", help="skip the end-to-end ingestion figure")
    bench.set_defaults(handler=command_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("serve", "worker"):  # a flag wins over its variable, as every other setting's does
        args.data_dir = args.data_dir or os.environ.get("FLOWHOOK_DATA_DIR") or DEFAULT_DATA_DIR
        args.database = args.database or os.environ.get("FLOWHOOK_DATABASE") or None
    try:
        code: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`flowhook map … | head`): stop quietly, like a command killed by SIGPIPE.
        # stdout is pointed at /dev/null so that the interpreter's own flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


if __name__ == "__main__":
    raise SystemExit(main())
