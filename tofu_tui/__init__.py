"""tofu-tui: a terminal station console for hardware test benches."""

__version__ = "0.1.0"
