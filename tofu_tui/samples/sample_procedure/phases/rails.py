"""Rail measurements. The values are simulated around their nominal levels."""

import random


def input_voltage(measurements, log):
    volts = round(random.uniform(11.9, 12.1), 3)
    log.info(f"Input at {volts} V")
    measurements.input_voltage = volts


def output_rail(measurements, run):
    measurements.rail_voltage = round(random.uniform(3.28, 3.32), 4)
    measurements.rail_ripple = round(random.uniform(8, 20), 1)
    run.metadata["probe"] = "TP4"


def load_sweep(measurements):
    loads = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    sweep = measurements.load_regulation
    sweep.x_axis = loads
    sweep.y_axis.output = [round(3.30 - 0.02 * amps, 4) for amps in loads]
