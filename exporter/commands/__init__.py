"""The command-line commands other than running the exporter: decode, listen, check-config,
simulate, settle, addon. Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error."""

from .addon import addon_arguments, run_addon
from .check_config import run_check_config
from .decode import run_decode
from .exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError
from .listen import run_listen_command
from .settle import run_settle
from .simulate import run_simulate

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "UsageError",
    "addon_arguments",
    "run_addon",
    "run_check_config",
    "run_decode",
    "run_listen_command",
    "run_settle",
    "run_simulate",
]
