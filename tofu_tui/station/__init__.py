"""The station: enrollment, deployments from Git, the upload queue, presence, the
control socket and the daemon that ties them together (DESIGN.md, issue 5).

What front ends use:
- `paths.station_paths()`: every folder of this station (`TOFU_TUI_HOME` overrides).
- `daemon.StationDaemon(paths, handle_signals=False)`: the engine in process (the
  console without a daemon): `await run()`; `started` event; `status()`,
  `subscribe()`/`unsubscribe()`, `await handle_command(cmd)`, `request_stop(reason)`.
- `control.ControlClient(paths)`: attach to a running daemon (`connect`, `status`,
  `command`, `subscribe` + `events()`); `control.request_status`, `send_command`,
  `daemon_running` for the CLI; `NoDaemon` when none runs.
- `remote_run.run_via_daemon(paths, RunCommand, on_event)` for `tofu-tui run
  --procedure`, and `remote_run.queue_local_run(paths, RunCreate, files)` for
  `tofu-tui run --upload`.
- `snapshot.offline_status(paths)`: the status from state.db when no daemon runs.
- `daemon.EXIT_REVOKED` (75): the daemon's exit status when the key was revoked or
  the station is not enrolled: a supervisor must not restart it. Under launchd (which
  cannot exempt one status) the job sets `service.REVOKED_EXIT_ENV` and the process
  exits 0 instead.
"""
