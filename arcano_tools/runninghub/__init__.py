"""RunningHub: the HTTP client and its error tree."""

from arcano_tools.runninghub.client import (
    CreatedTask,
    OutputFile,
    RunningHubClient,
    TaskOutputs,
    parse_outputs_envelope,
)

__all__ = [
    "CreatedTask",
    "OutputFile",
    "RunningHubClient",
    "TaskOutputs",
    "parse_outputs_envelope",
]
