"""Plugs (§5) with real plug processes: start, RPC through the proxy, scopes, teardown, failures."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.procedure.conftest import MakeProcedure
from tofu_tui.procedure.load import LoadedProcedure, load_procedure
from tofu_tui.procedure.plughost import PlugError, PlugProxy, make_proxy
from tofu_tui.procedure.plugs import PlugManager, PlugStartError, StationPlugs

pytestmark = pytest.mark.timeout(120)

BANK = """
import os, threading, time
from pathlib import Path

_active = 0
_lock = threading.Lock()

class Bank:
    def __init__(self, port, marker=None, delay=0):
        time.sleep(delay)
        print("constructing on", port)
        self.port = port
        self.marker = marker
        self.peak = 0

    def read(self, channel):
        return {"port": self.port, "channel": channel, "pid": os.getpid()}

    def pair(self, a, b):
        return (a, b)

    def boom(self, why):
        raise ValueError(f"bank refused: {why}")

    def unserialisable(self):
        return object()

    def name(self):
        return "method called name"

    def slow(self, seconds):
        global _active
        with _lock:
            _active += 1
            self.peak = max(self.peak, _active)
        time.sleep(seconds)
        with _lock:
            _active -= 1
        return self.peak

    def die(self):
        os._exit(3)

    def __del__(self):
        if self.marker:
            Path(self.marker).write_text(f"deleted {self.port}")

class Broken:
    def __init__(self):
        raise RuntimeError("no instrument on /dev/ttyUSB9")

class Sleepy:
    def __init__(self):
        time.sleep(60)
"""


def procedure(make_procedure: MakeProcedure, plugs_yaml: str) -> LoadedProcedure:
    directory = make_procedure(
        "name: P\nplugs:\n" + plugs_yaml + "main: [{name: A}]\n",
        {"plugs/bank.py": BANK},
    )
    return load_procedure(directory)


def proxy(manager: PlugManager, key: str, slot: str | None = None, deadline_s: float | None = 30) -> PlugProxy:
    """A proxy built exactly as the worker builds it: from the PlugAddress as JSON."""
    address = manager.addresses(slot)[key]
    return make_proxy(key, dataclasses.asdict(address), deadline_s)


@pytest.fixture
async def bank(make_procedure: MakeProcedure, tmp_path: Path) -> AsyncIterator[PlugManager]:
    loaded = procedure(
        make_procedure,
        f'  - {{name: Bank, python: "plugs/bank.py:Bank", scope: execution,'
        f' config: {{port: /dev/x, marker: "{tmp_path / "deleted.txt"}"}}}}\n',
    )
    manager = PlugManager(loaded, log_dir=tmp_path / "logs")
    await manager.start_execution()
    yield manager
    await manager.close()


async def test_call_with_config_and_json_results(bank: PlugManager) -> None:
    plug = proxy(bank, "bank")
    reply = plug.read(2)
    assert reply["port"] == "/dev/x" and reply["channel"] == 2
    assert reply["pid"] != os.getpid()  # it ran in the plug's own process
    assert plug.pair(1, [2]) == [1, [2]]  # tuples come back as lists


async def test_remote_error_names_plug_method_and_traceback(bank: PlugManager) -> None:
    plug = proxy(bank, "bank")
    with pytest.raises(PlugError) as caught:
        plug.boom("overload")
    message = str(caught.value)
    assert message.startswith("plug bank.boom() raised ValueError: bank refused: overload")
    assert "Remote traceback" in message and 'in boom\n    raise ValueError(f"bank refused: {why}")' in message
    assert plug.read(1)["channel"] == 1  # the plug survives its method's exception


async def test_positional_json_arguments_only(bank: PlugManager) -> None:
    plug = proxy(bank, "bank")
    with pytest.raises(TypeError, match="positional arguments only"):
        plug.read(channel=1)
    with pytest.raises(TypeError, match="must be JSON-serialisable"):
        plug.read({1, 2})
    with pytest.raises(TypeError, match="must be JSON-serialisable"):
        plug.read(float("nan"))
    with pytest.raises(PlugError, match=r"TypeError: the result of unserialisable\(\) is not JSON-serialisable"):
        plug.unserialisable()
    with pytest.raises(PlugError, match="AttributeError"):
        plug.no_such_method()


async def test_reserved_names_and_call(bank: PlugManager) -> None:
    plug = proxy(bank, "bank")
    assert plug.name == "bank"
    assert plug.deadline is not None
    assert plug.call("name") == "method called name"
    assert plug.call("read", [7])["channel"] == 7


async def test_one_call_at_a_time(bank: PlugManager) -> None:
    peaks: list[int] = []

    def caller() -> None:
        peaks.append(proxy(bank, "bank").slow(0.2))

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(peaks) == [1, 1, 1]  # never two calls inside the plug at once


async def test_call_bounded_by_phase_deadline(bank: PlugManager) -> None:
    plug = proxy(bank, "bank", deadline_s=0.3)
    with pytest.raises(TimeoutError, match="before the phase deadline"):
        plug.slow(1.5)
    late = proxy(bank, "bank", deadline_s=0)
    with pytest.raises(TimeoutError, match="deadline has passed"):
        late.read(1)


async def test_plug_process_killed_mid_run(bank: PlugManager) -> None:
    plug = proxy(bank, "bank")
    assert plug.read(1)
    pid = bank.addresses(None)["bank"].extra["pid"]
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(PlugError, match="bank"):
        plug.read(2)
    with pytest.raises(PlugError, match=r"plug bank(.read\(\))?: (cannot reach its process|the plug process)"):
        proxy(bank, "bank").read(3)


async def test_plug_process_dies_during_call(bank: PlugManager) -> None:
    with pytest.raises(PlugError, match=r"plug bank.die\(\): the plug process ended during the call"):
        proxy(bank, "bank").die()


async def test_teardown_runs_del_and_ends_process(bank: PlugManager, tmp_path: Path) -> None:
    pid = bank.addresses(None)["bank"].extra["pid"]
    await bank.stop_execution()
    assert (tmp_path / "deleted.txt").read_text() == "deleted /dev/x"
    assert bank.addresses(None) == {}
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_plug_output_goes_to_plug_log(bank: PlugManager, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    await bank.stop_execution()
    assert "constructing on /dev/x" in (tmp_path / "logs" / "bank.log").read_text()
    assert "constructing" not in capfd.readouterr().out


async def test_constructor_failure_names_the_plug(make_procedure: MakeProcedure, tmp_path: Path) -> None:
    loaded = procedure(
        make_procedure,
        '  - {name: Bank, python: "plugs/bank.py:Bank", scope: execution, config: {port: a}}\n'
        '  - {name: Load Bank, python: "plugs/bank.py:Broken", scope: all}\n',
    )
    manager = PlugManager(loaded, log_dir=tmp_path / "logs")
    try:
        with pytest.raises(PlugStartError) as caught:
            await manager.start_execution()
        assert str(caught.value) == (
            "Plug 'Load Bank' (load_bank) failed to start: RuntimeError: no instrument on /dev/ttyUSB9"
        )
        assert "in __init__" in caught.value.details
        assert list(manager.addresses(None)) == ["bank"]  # started before the failure; stopped by close()
    finally:
        await manager.close()


async def test_bad_config_and_missing_class(make_procedure: MakeProcedure, tmp_path: Path) -> None:
    loaded = procedure(
        make_procedure,
        '  - {name: Bank, python: "plugs/bank.py:Bank", config: {port: a, volts: 5}}\n'
        '  - {name: Ghost, python: "plugs/bank.py:Ghost"}\n',
    )
    manager = PlugManager(loaded, log_dir=tmp_path / "logs")
    try:
        with pytest.raises(PlugStartError, match=r"Plug 'Bank' \(bank\) for slot default failed to start: TypeError: .*volts"):
            await manager.start_slot("default")
        loaded.spec.plugs.pop(0)
        with pytest.raises(PlugStartError, match="has no class 'Ghost'"):
            await manager.start_slot("default")
    finally:
        await manager.close()


async def test_constructor_budget(make_procedure: MakeProcedure, tmp_path: Path) -> None:
    loaded = procedure(make_procedure, '  - {name: Sleepy, python: "plugs/bank.py:Sleepy", scope: execution}\n')
    manager = PlugManager(loaded, log_dir=tmp_path / "logs", construct_budget_s=0.5)
    try:
        with pytest.raises(PlugStartError, match=r"the constructor did not finish within 0.5 s"):
            await manager.start_execution()
    finally:
        await manager.close()


async def test_scopes(make_procedure: MakeProcedure, tmp_path: Path) -> None:
    loaded = procedure(
        make_procedure,
        '  - {name: Per Slot, python: "plugs/bank.py:Bank", config: {port: s}}\n'
        '  - {name: Shared, python: "plugs/bank.py:Bank", scope: run, config: {port: e}}\n'
        '  - {name: Bench, python: "plugs/bank.py:Bank", scope: station, config: {port: st}}\n',
    )
    manager = PlugManager(loaded, log_dir=tmp_path / "logs")
    try:
        await manager.start_execution()
        await manager.start_slot("left")
        await manager.start_slot("right")
        assert sorted(manager.addresses(None)) == ["bench", "shared"]  # execution-wide: no slot plugs (Q5)
        assert sorted(manager.addresses("left")) == ["bench", "per_slot", "shared"]
        left = proxy(manager, "per_slot", "left").read(0)["pid"]
        right = proxy(manager, "per_slot", "right").read(0)["pid"]
        assert left != right  # one instance per slot
        assert proxy(manager, "shared", "left").read(0)["pid"] == proxy(manager, "shared", "right").read(0)["pid"]
        await manager.stop_slot("left")
        assert "per_slot" not in manager.addresses("left")
        assert proxy(manager, "per_slot", "right").read(1)["channel"] == 1
    finally:
        await manager.close()
    assert manager.addresses("right") == {}


async def test_station_plugs_kept_across_runs(make_procedure: MakeProcedure, tmp_path: Path) -> None:
    station = StationPlugs(log_dir=tmp_path / "station-logs")
    try:
        loaded = procedure(make_procedure, '  - {name: Bench, python: "plugs/bank.py:Bank", scope: station, config: {port: a}}\n')
        pids = []
        for _ in range(2):
            manager = PlugManager(loaded, log_dir=tmp_path / "logs", station=station)
            await manager.start_execution()
            pids.append(proxy(manager, "bench").read(0)["pid"])
            await manager.close()
        assert pids[0] == pids[1]  # the same instance served both runs
        changed = dataclasses.replace(loaded)
        changed.spec.plugs[0].config = {"port": "b"}
        manager = PlugManager(changed, log_dir=tmp_path / "logs", station=station)
        await manager.start_execution()
        reply = proxy(manager, "bench").read(0)
        assert reply["port"] == "b" and reply["pid"] != pids[0]  # config changed: a new instance
        await manager.close()
        os.kill(reply["pid"], 0)  # still alive after the run
        plug_file = loaded.directory / "plugs" / "bank.py"
        plug_file.write_text(plug_file.read_text() + "\n# edited\n")
        os.utime(plug_file, ns=(time.time_ns(), time.time_ns() + 10**9))
        manager = PlugManager(changed, log_dir=tmp_path / "logs", station=station)
        await manager.start_execution()
        edited = proxy(manager, "bench").read(0)["pid"]
        await manager.close()
        assert edited != reply["pid"]  # the plug file changed: a new instance
        with pytest.raises(ProcessLookupError):
            os.kill(reply["pid"], 0)
        reply["pid"] = edited
        changed.spec.plugs.clear()
        manager = PlugManager(changed, log_dir=tmp_path / "logs", station=station)
        await manager.start_execution()  # no longer declared: stopped
        await manager.close()
        time.sleep(0.1)
        with pytest.raises(ProcessLookupError):
            os.kill(reply["pid"], 0)
    finally:
        station.close()


async def test_plug_exits_when_engine_goes_away(bank: PlugManager, tmp_path: Path) -> None:
    running = bank._execution["bank"]
    assert running.process.stdin is not None
    running.process.stdin.close()  # what the OS does when the engine dies
    assert running.process.wait(10) == 0
    assert (tmp_path / "deleted.txt").read_text() == "deleted /dev/x"


# ---------------------------------------------------------------- through the real `tofu-tui run`

E2E_PHASES = """
import os, signal

def read(bank, measurements):
    reply = bank.read(3)
    measurements.channel = reply["channel"]
    measurements.port = reply["port"]

def boom(bank):
    bank.boom("overload")

def kill_plug(bank):
    os.kill(bank.read(0)["pid"], signal.SIGKILL)

def after_kill(bank, measurements):
    measurements.after = 1
    bank.read(1)

def still_runs(measurements):
    measurements.still = 1
"""


def run_json(directory: Path) -> tuple[int, list[dict[str, object]], str]:
    import json

    from tests.conftest import run_cli

    done = run_cli(["run", "--json", "--serial", "SN1", "--part", "PN1", str(directory)], timeout=90)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, events, done.stderr


def test_cli_run_with_plug(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: Plugged
        plugs:
          - {name: Bank, python: "plugs/bank.py:Bank", config: {port: /dev/ttyUSB3}}
        main:
          - name: Read
            python: phases/steps.py:read
            measurements:
              - {name: Channel, validators: [{operator: "==", expected_value: 3}]}
              - {name: Port, validators: [{operator: matches, expected_value: "ttyUSB[0-9]$"}]}
          - {name: Boom, python: "phases/steps.py:boom", depends_on: [read]}
          - {name: Kill Plug, python: "phases/steps.py:kill_plug", depends_on: [boom]}
          - {name: After Kill, python: "phases/steps.py:after_kill", depends_on: [kill_plug]}
          - {name: Still Runs, python: "phases/steps.py:still_runs", depends_on: [after_kill]}
        execution: {on_first_failure: continue}
        """,
        {"plugs/bank.py": BANK, "phases/steps.py": E2E_PHASES},
    )
    code, events, stderr = run_json(directory)
    finished = {e["phase_key"]: e for e in events if e["type"] == "phase_finished"}
    assert finished["read"]["outcome"] == "PASS", stderr
    assert finished["boom"]["outcome"] == "ERROR"
    assert "plug bank.boom() raised ValueError: bank refused: overload" in str(finished["boom"]["error"])
    assert "Remote traceback" in str(finished["boom"]["error"])
    assert finished["kill_plug"]["outcome"] == "PASS"
    assert finished["after_kill"]["outcome"] == "ERROR"  # the dead plug fails that phase...
    assert "plug bank" in str(finished["after_kill"]["error"])
    assert finished["still_runs"]["outcome"] == "PASS"  # ...not the station or the run's other phases
    run = next(e for e in events if e["type"] == "run_finished")["run"]
    assert isinstance(run, dict)
    read_phase = next(p for p in run["phases"] if p["name"] == "Read")
    assert [(m["name"], m["outcome"]) for m in read_phase["measurements"]] == [("channel", "PASS"), ("port", "PASS")]
    after = next(p for p in run["phases"] if p["name"] == "After Kill")
    assert [m["name"] for m in after["measurements"]] == ["after"]  # recorded before the failure: kept
    assert code == 3 and run["outcome"] == "ERROR"


def test_cli_plug_constructor_failure_is_run_error(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: Plugged
        plugs:
          - {name: Load Bank, python: "plugs/bank.py:Broken", scope: execution}
        main:
          - {name: Still Runs, python: "phases/steps.py:still_runs"}
        """,
        {"plugs/bank.py": BANK, "phases/steps.py": E2E_PHASES},
    )
    code, events, stderr = run_json(directory)
    assert code == 3
    text = "\n".join(str(e) for e in events) + stderr
    assert "Plug 'Load Bank' (load_bank) failed to start: RuntimeError: no instrument on /dev/ttyUSB9" in text
    assert not [e for e in events if e["type"] == "phase_finished" and e["phase_key"] == "still_runs" and e["outcome"] == "PASS"]
    run = next(e for e in events if e["type"] == "run_finished")["run"]
    assert isinstance(run, dict) and run["outcome"] == "ERROR"


def test_cli_plug_call_hanging_past_phase_timeout(make_procedure: MakeProcedure) -> None:
    directory = make_procedure(
        """
        name: Plugged
        plugs:
          - {name: Bank, python: "plugs/bank.py:Bank", scope: station, config: {port: p}}
        main:
          - {name: Hang, python: "phases/steps.py:hang", timeout: 500ms}
          - {name: Read, python: "phases/steps.py:read", depends_on: [hang]}
        execution: {on_first_failure: continue}
        """,
        {"plugs/bank.py": BANK, "phases/steps.py": E2E_PHASES + "\ndef hang(bank):\n    bank.slow(2)\n"},
    )
    code, events, stderr = run_json(directory)
    finished = {e["phase_key"]: e["outcome"] for e in events if e["type"] == "phase_finished"}
    assert finished == {"hang": "TIMEOUT", "read": "PASS"}, stderr  # the plug served the next call
    assert code == 4


def test_loopback_tcp_transport(make_procedure: MakeProcedure, tmp_path: Path) -> None:
    """Where there are no Unix sockets (Windows), plugs listen on loopback TCP."""
    from tofu_tui.procedure.plugs import start_plug

    loaded = procedure(make_procedure, '  - {name: Bank, python: "plugs/bank.py:Bank", config: {port: t}}\n')
    (tmp_path / "logs").mkdir()
    running = start_plug(loaded, loaded.spec.plugs[0], slot=None, log_dir=tmp_path / "logs", socket_dir=None)
    try:
        assert running.address.startswith("tcp:127.0.0.1:")
        plug = make_proxy("bank", dataclasses.asdict(running.as_address()), 30)
        assert plug.read(5)["channel"] == 5
        assert running.alive()
    finally:
        running.stop()
    assert not running.alive()
