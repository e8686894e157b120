"""Bench power: a real station would drive a supply through a plug."""

import time


def power_on(log, unit):
    log.info(f"Powering unit {unit.serial_number} at 12.0 V, current limit 0.5 A")
    time.sleep(0.05)


def power_off(log, run):
    log.info("Output disabled")
    run.metadata["bench"] = "sample-bench"
