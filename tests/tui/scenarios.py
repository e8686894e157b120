"""Station states and event sequences the console tests and snapshots replay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.tui.scripted import NOW, days_back, ts
from tofu_tui.models.events import (
    Event,
    MeasurementEvent,
    PhaseFinished,
    PhaseLog,
    PhaseStarted,
    ProcedureRef,
    RunFinished,
    RunStarted,
    UiRequest,
)
from tofu_tui.models.status import (
    DeploymentInfo,
    LinkedProcedure,
    QueueCounts,
    QueueEntry,
    StationStatus,
    Uptime,
    UptimeDay,
)

EXEC = "3f2a9c1e-0000-4000-8000-000000000001"


def procedures() -> list[LinkedProcedure]:
    return [
        LinkedProcedure(
            id="proc-charger",
            name="Charger Board EOL",
            identifier="charger-eol",
            active=DeploymentInfo(
                id="dep-12",
                sha="9c41e0d7a2b5c3f1e8d9",
                branch="main",
                message="Raise output current limit to 2.1 A\n\nPer ECO-118.",
                deployed_at=NOW - timedelta(hours=3, minutes=12),
            ),
            staged=DeploymentInfo(
                id="dep-13",
                sha="b7e2f90a11c3d4e5f6a7",
                branch="main",
                message="Add LED colour check",
                deployed_at=NOW - timedelta(minutes=4),
                status="staged",
            ),
            runs_today=37,
        ),
        LinkedProcedure(
            id="proc-flash",
            name="Firmware Flash",
            active=DeploymentInfo(
                id="dep-7",
                sha="41d0aa3e9f2b7c6d5e4f",
                branch="release/2.x",
                message="Pin bootloader 1.4.2",
                deployed_at=NOW - timedelta(days=6, hours=2),
            ),
            runs_today=112,
        ),
        LinkedProcedure(id="proc-burnin", name="Burn-in 48h", active=None, runs_today=0),
    ]


def full_uptime() -> Uptime:
    return Uptime(
        days=[UptimeDay(date=day, uptime=1.0) for day in days_back(90, NOW.date())],
        last_24h=1.0,
        last_7d=1.0,
        last_90d=1.0,
    )


def outage_uptime() -> Uptime:
    """The first 30 days before the station existed, then a few outage days,
    among them one of 20 minutes that an average would hide."""
    dips = {40: 0.986, 41: 0.42, 55: 0.9986, 63: 0.0, 64: 0.63, 80: 0.995, 88: 0.93}
    days = []
    for index, day in enumerate(days_back(90, NOW.date())):
        if index < 12:
            days.append(UptimeDay(date=day, uptime=None))
        else:
            days.append(UptimeDay(date=day, uptime=dips.get(index, 1.0)))
    return Uptime(days=days, last_24h=0.93, last_7d=0.9892, last_90d=0.9612)


def idle_status(**changes: Any) -> StationStatus:
    status = StationStatus(
        station_id="st_8f3k2",
        station_name="Bench 07 · Charger line",
        server_url="https://tofupilot.example.com",
        enrolled=True,
        connected=True,
        last_contact_at=NOW - timedelta(seconds=4),
        daemon_started_at=NOW - timedelta(days=2, hours=4, minutes=31),
        procedures=procedures(),
        queue=QueueCounts(),
        queue_entries=[],
        uptime=full_uptime(),
    )
    return status.model_copy(update=changes)


def backlog_entries() -> list[QueueEntry]:
    return [
        QueueEntry(
            id=41,
            client_run_ref="ref-41",
            procedure_id="proc-charger",
            serial_number="CB-2611-0391",
            outcome="PASS",
            state="parked",
            attempts=3,
            last_error="422 Unprocessable: procedure_version '2.4.0' unknown to the server",
            created_at=NOW - timedelta(hours=2),
        ),
        QueueEntry(
            id=42,
            client_run_ref="ref-42",
            procedure_id="proc-charger",
            serial_number="CB-2611-0392",
            outcome="FAIL",
            state="backoff",
            attempts=5,
            next_attempt_at=NOW + timedelta(seconds=95),
            last_error="connect timeout to tofupilot.example.com:443",
            created_at=NOW - timedelta(minutes=50),
        ),
        QueueEntry(id=43, client_run_ref="ref-43", serial_number="CB-2611-0393", outcome="PASS", state="pending", created_at=NOW - timedelta(minutes=20)),
        QueueEntry(id=44, client_run_ref="ref-44", serial_number="CB-2611-0394", outcome="PASS", state="pending", created_at=NOW - timedelta(minutes=8)),
    ]


def offline_status() -> StationStatus:
    return idle_status(
        connected=False,
        last_contact_at=NOW - timedelta(minutes=52),
        queue=QueueCounts(pending=2, backoff=1, parked=1),
        queue_entries=backlog_entries(),
        uptime=outage_uptime(),
    )


def run_started(serial: str = "CB-2611-0400") -> RunStarted:
    return RunStarted(
        execution_id=EXEC,
        seq=1,
        ts=ts(0),
        procedure=ProcedureRef(name="Charger Board EOL", version="2.4.0"),
        unit={"serial_number": serial, "part_number": "CB-100", "revision_number": "C"},
    )


def run_in_progress() -> list[Event]:
    events: list[Event] = [run_started()]
    seq = 2

    def nxt() -> int:
        nonlocal seq
        seq += 1
        return seq - 1

    events += [
        PhaseStarted(execution_id=EXEC, seq=nxt(), ts=ts(0.1), phase_key="power_on", phase_name="Power On"),
        PhaseLog(execution_id=EXEC, seq=nxt(), ts=ts(0.2), phase_key="power_on", message="Enabling 12 V rail on load bank /dev/ttyUSB3"),
        MeasurementEvent(
            execution_id=EXEC, seq=nxt(), ts=ts(1.1), phase_key="power_on", key="input_voltage", name="Input Voltage",
            value=12.04, unit="V", outcome="PASS",
            validators=[{"operator": ">=", "expected_value": 11.5}, {"operator": "<=", "expected_value": 12.5}],
        ),
        PhaseFinished(execution_id=EXEC, seq=nxt(), ts=ts(1.2), phase_key="power_on", outcome="PASS", duration_ms=1104),
        PhaseStarted(execution_id=EXEC, seq=nxt(), ts=ts(1.3), phase_key="output_check", phase_name="Output Check"),
        PhaseLog(execution_id=EXEC, seq=nxt(), ts=ts(1.4), phase_key="output_check", level="DEBUG", message="load step 0.5 A → 2.0 A"),
        MeasurementEvent(
            execution_id=EXEC, seq=nxt(), ts=ts(3.0), phase_key="output_check", key="output_current", name="Output Current",
            value=1.96, unit="A", outcome="PASS",
            validators=[{"operator": ">=", "expected_value": 1.9}],
        ),
        PhaseLog(execution_id=EXEC, seq=nxt(), ts=ts(3.1), phase_key="output_check", level="WARNING", message="ripple 48 mV close to the 50 mV limit"),
        MeasurementEvent(
            execution_id=EXEC, seq=nxt(), ts=ts(3.2), phase_key="output_check", key="ripple", name="Ripple",
            value=48.2, unit="mV", outcome="PASS",
            validators=[{"operator": "<=", "expected_value": 50}],
        ),
        PhaseStarted(execution_id=EXEC, seq=nxt(), ts=ts(3.3), phase_key="thermal", phase_name="Thermal Soak"),
        PhaseLog(execution_id=EXEC, seq=nxt(), ts=ts(3.4), phase_key="thermal", message="soaking 30 s at 2.0 A"),
    ]
    return events


def run_failed() -> list[Event]:
    events = run_in_progress()
    seq = len(events) + 1
    events += [
        MeasurementEvent(
            execution_id=EXEC, seq=seq, ts=ts(33.0), phase_key="thermal", key="board_temperature", name="Board Temperature",
            value=91.3, unit="°C", outcome="FAIL",
            validators=[{"operator": "<=", "expected_value": 85}],
        ),
        PhaseLog(execution_id=EXEC, seq=seq + 1, ts=ts(33.1), phase_key="thermal", level="ERROR", message="board temperature 91.3 °C above 85 °C"),
        PhaseFinished(execution_id=EXEC, seq=seq + 2, ts=ts(33.2), phase_key="output_check", outcome="PASS", duration_ms=1950),
        PhaseFinished(execution_id=EXEC, seq=seq + 3, ts=ts(33.3), phase_key="thermal", outcome="FAIL", duration_ms=29950),
        PhaseStarted(execution_id=EXEC, seq=seq + 4, ts=ts(33.4), phase_key="power_off", phase_name="Power Off"),
        PhaseFinished(execution_id=EXEC, seq=seq + 5, ts=ts(33.6), phase_key="power_off", outcome="PASS", duration_ms=210),
        RunFinished(execution_id=EXEC, seq=seq + 6, ts=ts(33.7), outcome="FAIL", run={}),
    ]
    return events


# One prompt with every component type of procedure-format §2.5.
ALL_COMPONENTS: list[dict[str, Any]] = [
    {"type": "text", "key": "intro", "default_value": "Inspect the board under the lamp, then answer.", "color": "sky"},
    {"type": "image", "key": "photo", "label": "Reference board, LED side", "default_value": "media/led_reference.png"},
    {"type": "progress", "key": "soak", "label": "Soak", "default_value": 40, "max": 100},
    {"type": "text_input", "key": "operator", "label": "Operator badge", "required": True},
    {"type": "number_input", "key": "ripple", "label": "Scope ripple", "suffix": "mV", "min": 0, "max": 100},
    {"type": "switch", "key": "fan_ok", "label": "Fan spins"},
    {"type": "textarea", "key": "notes", "label": "Notes", "rows": 2},
    {"type": "radio", "key": "led", "label": "LED colour", "required": True,
     "options": [{"value": "green", "label": "Green"}, {"value": "red", "label": "Red"}]},
    {"type": "select", "key": "fixture", "label": "Fixture",
     "options": [{"value": "f1", "label": "Fixture 1"}, {"value": "f2", "label": "Fixture 2"}]},
    {"type": "multiselect", "key": "defects", "label": "Defects seen",
     "options": [{"value": "scratch", "label": "Scratch"}, {"value": "bent_pin", "label": "Bent pin"}, {"value": "solder", "label": "Solder bridge"}]},
    {"type": "checklist", "key": "checks", "label": "Visual checks", "required": True,
     "options": [{"value": "label", "label": "Label present"}, {"value": "screws", "label": "Screws tight"}]},
    {"type": "slider", "key": "brightness", "label": "LED brightness", "min": 0, "max": 10, "step": 1},
]


def prompt_request(components: list[dict[str, Any]] | None = None, request_id: str = "req-1", phase_key: str = "led_check") -> UiRequest:
    return UiRequest(
        execution_id=EXEC, seq=100, ts=ts(5), request_id=request_id, phase_key=phase_key,
        components=components if components is not None else ALL_COMPONENTS,
    )


def led_prompt() -> list[Event]:
    """A run waiting on the LED check, with a smaller prompt that fits 80×24."""
    events = run_in_progress()
    events += [
        PhaseStarted(execution_id=EXEC, seq=90, ts=ts(4.0), phase_key="led_check", phase_name="LED Check"),
        prompt_request(
            [
                {"type": "text", "key": "intro", "default_value": "Look at LED D4 on the front edge."},
                {"type": "radio", "key": "led", "label": "LED colour", "required": True,
                 "options": [{"value": "green", "label": "Green"}, {"value": "red", "label": "Red"}, {"value": "off", "label": "Off"}]},
                {"type": "number_input", "key": "flicker", "label": "Flicker rate", "suffix": "Hz", "min": 0, "max": 50},
            ]
        ),
    ]
    return events


def picture_prompt() -> list[Event]:
    """A run waiting on a prompt with a reference picture and picture options."""
    events = run_in_progress()
    events += [
        PhaseStarted(execution_id=EXEC, seq=90, ts=ts(4.0), phase_key="led_check", phase_name="LED Check"),
        prompt_request(
            [
                {"type": "image", "key": "reference", "label": "LED D4, lit", "default_value": "media/led_d4_lit.png"},
                {"type": "radio", "key": "led", "label": "Which colour is D4?", "required": True,
                 "options": [
                     {"value": "green", "label": "Green", "image": "media/led_green.png"},
                     {"value": "red", "label": "Red", "image": "media/led_red.png"},
                     {"value": "off", "label": "Off", "image": "media/led_off.png"},
                 ]},
            ]
        ),
    ]
    return events
