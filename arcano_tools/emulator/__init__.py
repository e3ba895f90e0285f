"""A local stand-in for RunningHub, so the product runs and is tested without the real service.

``create_emulator_app(data_dir, control=None)`` builds the ASGI app (mount it anywhere);
``EmulatorControl`` holds the fault-injection settings also exposed at ``/_control``.
"""

from arcano_tools.emulator.app import create_emulator_app, serve
from arcano_tools.emulator.control import ControlError, EmulatorControl
from arcano_tools.emulator.runtime import EmulatorRuntime

__all__ = ["ControlError", "EmulatorControl", "EmulatorRuntime", "create_emulator_app", "serve"]
