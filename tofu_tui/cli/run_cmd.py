"""`tofu-tui run PATH`: one procedure run, per spec/run-protocol.md."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Any

import click

from tofu_tui.procedure.jsontext import loads as json_loads

EXIT_USAGE = 2


def register(group: click.Group) -> None:
    """Add this module's commands to the root group."""
    group.add_command(run)


def _load_ui_values(path: str | None, label: str = "--ui-values") -> dict[str, dict[str, Any]] | None:
    if path is None:
        return None
    try:
        data = json_loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.UsageError(f"{label}: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise click.UsageError(f"{label}: {path} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise click.UsageError(
            f'{label}: {path} must be a JSON object like {{"<phase_key>": {{"<component_key>": value}}}}.'
        )
    return data


def _procedure_ui_json(path: Path) -> str | None:
    """§9: in --json mode without --ui-values, `ui.json` in the procedure directory
    pre-answers prompts."""
    directory = path if path.is_dir() else path.parent
    candidate = directory / "ui.json"
    return str(candidate) if candidate.is_file() else None


@click.command()
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option("--procedure", "procedure", metavar="ID_OR_NAME",
              help="Run the active deployment of a linked procedure instead of PATH (through the daemon when it runs).")
@click.option("--json", "as_json", is_flag=True, help="Newline-delimited JSON events on stdout.")
@click.option(
    "--ui-values",
    "ui_values",
    metavar="FILE",
    help="JSON file pre-answering operator prompts (with --json, default: the procedure's ui.json if any).",
)
@click.option("--ui-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Seconds to wait for an operator answer; then the phase is TIMEOUT.")
@click.option("--serial", help="Unit serial number (answers the identify prompt).")
@click.option("--part", help="Unit part number.")
@click.option("--revision", help="Unit revision.")
@click.option("--batch", help="Unit batch number.")
@click.option("--upload/--no-upload", default=False, help="Queue the run for upload (needs a registered station).")
@click.option("--procedure-id", metavar="ID", help="TofuPilot procedure id for the payload.")
@click.option("--headless", is_flag=True, help="Never wait for an operator: unanswered prompts fail fast.")
@click.option("--tui", is_flag=True, help="Show the run in the operator console (prompts answered there).")
def run(
    path: Path | None,
    procedure: str | None,
    as_json: bool,
    ui_values: str | None,
    ui_timeout: float | None,
    serial: str | None,
    part: str | None,
    revision: str | None,
    batch: str | None,
    upload: bool,
    procedure_id: str | None,
    headless: bool,
    tui: bool,
) -> None:
    """Run the procedure at PATH (a directory holding procedure.yaml, or a .yaml file),
    or with --procedure the active deployment of a procedure linked to this station.

    \b
    Exit status: 0 PASS, 1 FAIL, 2 usage or load error (nothing ran),
    3 ERROR, 4 TIMEOUT, 5 ABORTED (stopped, SIGINT/SIGTERM).
    Ctrl-C once stops the run (teardown still runs); twice kills it.

    Attachments stay in CACHE/attachments/EXECUTION_ID (CACHE: ~/.cache/tofu-tui on Linux, TOFU_TUI_HOME/cache if set); old ones are pruned (TOFU_TUI_ATTACHMENTS_KEEP_DAYS, _KEEP_RUNS, _MAX_MB).
    """
    unit = {
        "serial_number": serial,
        "part_number": part,
        "revision_number": revision,
        "batch_number": batch,
    }
    if (path is None) == (procedure is None):
        click.echo("tofu-tui run: give either a procedure PATH or --procedure ID_OR_NAME (see --help).", err=True)
        sys.exit(EXIT_USAGE)
    if procedure is not None:
        from tofu_tui.cli.station_cmd import run_linked_procedure

        # A linked procedure's run always goes through the station's queue: --upload is implied.
        sys.exit(run_linked_procedure(procedure, unit=unit, ui_values=_load_ui_values(ui_values), as_json=as_json))
    assert path is not None
    if tui and (as_json or headless or upload):
        raise click.UsageError("--tui shows the run in the console: it does not go with --json, --headless or --upload.")
    upload_to = _upload_target(procedure_id, path) if upload else None
    if ui_values is None and as_json and (found := _procedure_ui_json(path)) is not None:
        values = _load_ui_values(found, "ui.json")
    else:
        values = _load_ui_values(ui_values)
    if tui:
        from tofu_tui.procedure.execute import RunOptions as ConsoleRunOptions
        from tofu_tui.tui.run_backend import run_in_console

        sys.exit(run_in_console(path, ConsoleRunOptions(
            ui_values=values, ui_timeout_s=ui_timeout, procedure_id=procedure_id,
            unit={k: v for k, v in unit.items() if v is not None})))
    # The first worker's interpreter starts while this process imports and loads.
    prestarted, interpreter = _prestart(path)
    # Importing and loading build many long-lived objects and few cycles: collecting
    # meanwhile is wasted work (~7 % of a one-phase run); run_procedure turns it back on.
    gc.disable()

    from tofu_tui.procedure.execute import RunOptions

    options = RunOptions(
        ui_values=values,
        ui_timeout_s=ui_timeout,
        headless=headless,
        unit={k: v for k, v in unit.items() if v is not None},
        procedure_id=procedure_id,
        prestarted=prestarted,
    )
    sys.exit(run_procedure(path, options, as_json=as_json, interpreter=interpreter, upload=upload_to))


def _upload_target(procedure_id: str | None, path: Path) -> Any:
    """Check before running that `--upload` can work: an enrolled station. Returns its paths."""
    from tofu_tui.station.config import ConfigError, load_config
    from tofu_tui.station.paths import station_paths

    paths = station_paths()
    try:
        load_config(paths)
    except ConfigError as exc:
        click.echo(f"tofu-tui run --upload: uploading needs an enrolled station. {exc}", err=True)
        sys.exit(EXIT_USAGE)
    del procedure_id, path  # the id is resolved after loading (flag, tofupilot.json, environment)
    return paths


def _prestart(path: Path) -> tuple[Any, Path | None]:
    """Start the first worker for the procedure at `path` (§1 interpreter), if it looks
    runnable; loading reports any problem with it, so failures here are silent."""
    directory = path if path.is_dir() else path.parent
    if not directory.is_dir():
        return None, None
    from tofu_tui.procedure.interpreter import find_interpreter
    from tofu_tui.procedure.workerstart import prestart_worker

    try:
        interpreter = find_interpreter(directory)
        return prestart_worker(directory, interpreter), interpreter
    except Exception:
        return None, None


def run_procedure(path: Path, options: Any, *, as_json: bool, interpreter: Path | None = None,
                  upload: Any = None) -> int:
    """Load and run one procedure; returns the exit status of run-protocol.md."""
    from tofu_tui.models.events import ErrorEvent
    from tofu_tui.procedure.load import ProcedureLoadError, load_procedure

    try:
        loaded = load_procedure(path, interpreter=interpreter)
    except ProcedureLoadError as exc:
        if options.prestarted is not None:
            options.prestarted.discard()
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        if as_json:
            import uuid

            event = ErrorEvent(message=str(exc), seq=1, execution_id=str(uuid.uuid4()))
            sys.stdout.write(event.model_dump_json() + "\n")
            sys.stdout.flush()
        return EXIT_USAGE
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    _warn_unknown_answer_keys(options.ui_values, loaded.spec)
    stdin_tty = _isatty(sys.stdin)
    if not as_json and not stdin_tty:
        options.headless = True  # nobody can answer a prompt
    import asyncio

    gc.freeze()  # what import and load built stays: later collections skip it
    gc.enable()
    if upload is not None and not (options.procedure_id or loaded.procedure_id or os.environ.get("TOFUPILOT_PROCEDURE_ID")):
        # run-protocol: an upload may take its procedure id from procedure.yaml's `id`, which
        # procedure-format §1 otherwise ignores; the flag, link file and environment come first.
        yaml_id = loaded.spec.id
        if isinstance(yaml_id, str | int) and not isinstance(yaml_id, bool) and str(yaml_id).strip():
            options.procedure_id = str(yaml_id).strip()
        else:
            click.echo(
                "tofu-tui run --upload: the run needs a procedure id to be uploaded. Pass --procedure-id ID, "
                "put tofupilot.json ({\"procedureId\": ...}) in the procedure folder, or set `id:` in procedure.yaml.",
                err=True,
            )
            return EXIT_USAGE
    return asyncio.run(_drive(loaded, options, as_json=as_json, stdin_tty=stdin_tty, upload=upload))


def _warn_unknown_answer_keys(values: dict[str, Any] | None, spec: Any) -> None:
    """A --ui-values entry no phase reads is most likely a typo: say so rather than wait."""
    keys = [phase.key for stage in (spec.setup, spec.main, spec.teardown) for phase in stage]
    for key in values or {}:
        if key != "identify" and key not in keys:
            click.echo(
                f"warning: --ui-values has an entry {key!r}, but no enabled phase of this procedure has that key "
                f"(phase keys: {', '.join(dict.fromkeys(keys))}); the entry is ignored.",
                err=True,
            )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (ValueError, OSError):
        return False


async def _drive(loaded: Any, options: Any, *, as_json: bool, stdin_tty: bool, upload: Any = None) -> int:
    import asyncio
    import signal
    import threading

    from tofu_tui.procedure.execute import start_run
    from tofu_tui.procedure.outcomes import EXIT_CODES

    loop = asyncio.get_running_loop()
    if as_json:
        from tofu_tui.procedure.render import JsonView

        view: Any = JsonView(sys.stdout)
    else:
        from tofu_tui.procedure.render import HumanView

        view = HumanView(sys.stdout, color=_isatty(sys.stdout), interactive=stdin_tty and not options.headless)
    handle = await start_run(loaded, options, view.on_event)
    view.attach(handle, loop)

    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            view.notice(f"{signal.Signals(signum).name}: stopping the run (teardown still runs); again to kill.")
            handle.stop()
        else:
            view.notice("Killing the run now.")
            handle.kill()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError):
            pass

    if as_json and not options.headless:
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def reader() -> None:
            # A daemon thread: a blocked read never keeps the process alive at exit.
            try:
                for line in sys.stdin:
                    loop.call_soon_threadsafe(lines.put_nowait, line)
            except (OSError, ValueError):
                pass
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=reader, name="stdin-answers", daemon=True).start()
        answers = asyncio.ensure_future(_answer_lines(lines, handle))
    else:
        answers = None
    try:
        result = await handle.wait()
    finally:
        if answers is not None:
            answers.cancel()
    view.finish(result)
    if upload is not None and result.runs:
        _queue_for_upload(upload, result)
    if not result.runs and result.outcome == "ERROR":
        return EXIT_USAGE  # nothing ran (identify refused, workers could not start)
    return EXIT_CODES[result.outcome]


def _queue_for_upload(paths: Any, result: Any) -> None:
    """Persist each finished run in the station's upload queue; the daemon uploads it.
    Told on stderr: `run_finished` stays the last event of the --json stream."""
    from tofu_tui.station.queue import AttachmentFile
    from tofu_tui.station.remote_run import queue_local_run

    for index, run in enumerate(result.runs):
        files = result.attachments[index] if index < len(result.attachments) else []
        queued = queue_local_run(paths, run, [AttachmentFile(a.name, Path(a.path)) for a in files],
                                 execution_id=result.execution_id)
        click.echo(f"Queued for upload as {queued.client_run_ref}: the station daemon uploads it "
                   "(`tofu-tui queue` shows it).", err=True)


async def _answer_lines(lines: Any, handle: Any) -> None:
    while True:
        line = await lines.get()
        if line is None:
            handle.no_more_answers()
            return
        if not line.strip():
            continue
        try:
            message = json_loads(line)
        except ValueError:
            handle.warn(f"Ignored a stdin line that is not JSON: {line.strip()[:200]!r}")
            continue
        if (
            not isinstance(message, dict)
            or message.get("type") != "ui_response"
            or not isinstance(message.get("request_id"), str)
            or not isinstance(message.get("values", {}), dict)
        ):
            handle.warn(
                "Ignored a stdin line: expected "
                '{"type": "ui_response", "request_id": "...", "values": {...}}, got '
                f"{line.strip()[:200]!r}"
            )
            continue
        phase_key = handle.phase_of(message["request_id"])
        refused = handle.answer(message["request_id"], message.get("values", {}))
        if refused is not None:
            handle.warn(f"Answer to {message['request_id']} refused: {refused}", phase_key)
