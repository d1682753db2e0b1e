"""One exception hierarchy for the whole program.

Every error a user can cause derives from `LensrouteError` and carries an exit code, so the CLI
turns it into one line on stderr and a documented status, and the GUI into a dialog, without either
of them knowing the concrete kinds.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_NO_DATA = 4
EXIT_RUNTIME_UNAVAILABLE = 5
EXIT_INTERRUPTED = 130


class LensrouteError(Exception):
    """An error whose message is fit to show a user as it is."""

    exit_code = EXIT_UNEXPECTED


class UsageError(LensrouteError):
    """The request itself is malformed (bad option value, unknown format)."""

    exit_code = EXIT_USAGE


class NotFoundError(LensrouteError):
    """A file, model, dataset or source the user named does not exist."""

    exit_code = EXIT_NOT_FOUND


class NoDataError(LensrouteError):
    """The catalogue (or a file) holds too little to do what was asked."""

    exit_code = EXIT_NO_DATA


class RuntimeUnavailableError(LensrouteError):
    """A runtime the work needs (a trained model, an execution provider) is missing."""

    exit_code = EXIT_RUNTIME_UNAVAILABLE


class FormatError(LensrouteError):
    """A file could not be parsed in the format it claims (or was detected) to be."""

    exit_code = EXIT_USAGE


class StoreError(LensrouteError):
    """The database could not be opened, migrated or written."""

    exit_code = EXIT_UNEXPECTED


class CrawlError(LensrouteError):
    """A crawl could not finish; what it stored so far is kept and it resumes next time."""

    exit_code = EXIT_UNEXPECTED


class Cancelled(LensrouteError):
    """Cooperative cancellation: raised by the work itself when its token is set."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


# Modules only training and model building need. The frozen application leaves them out
# (installer/lensroute.spec), so a command that needs one says so instead of failing obscurely.
BUILD_ONLY_MODULES = {
    "torch": "PyTorch",
    "transformers": "transformers",
    "gguf": "gguf",
    "onnxscript": "onnxscript",
    "safetensors": "safetensors",
}


def missing_build_module(exc: BaseException) -> RuntimeUnavailableError | None:
    """The user-facing error for an ImportError of a build-only module, else None."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    if top not in BUILD_ONLY_MODULES:
        return None
    return RuntimeUnavailableError(
        f"this needs {BUILD_ONLY_MODULES[top]} ({top}), which this lensroute leaves out: the frozen application "
        "ranks, routes and runs ONNX models but does not train or build them; use the full install "
        "(installer/install.sh) for that"
    )


def build_tools_missing() -> RuntimeUnavailableError | None:
    """That error up front when torch is absent, for a GUI that disables a button (with the reason
    as its tooltip) instead of letting the user click and fail."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return missing_build_module(ModuleNotFoundError("No module named 'torch'", name="torch"))
    return None
