"""Catch a Qt platform that cannot load before Qt aborts the process.

Qt 6 needs a few X11 libraries for its `xcb` platform (a desktop X11 session) that a minimal
Debian lacks; it then prints a hint and calls abort(), which a user sees as a crash. Checking the
plugin's links first lets `lensroute gui` say in one line which Debian packages to install.
"""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

# shared object → Debian package, for the libraries Qt's xcb plugin links or loads at start
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0", "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0", "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0", "libxcb-render.so.0": "libxcb-render0",
    "libxcb-util.so.1": "libxcb-util1", "libX11-xcb.so.1": "libx11-xcb1", "libxcb.so.1": "libxcb1",
}


def uses_xcb(environ: dict[str, str] | None = None) -> bool:
    """Whether Qt will pick its X11 platform: on Linux, none chosen explicitly, an X display and
    no Wayland one (Qt prefers Wayland when both are there)."""
    env = os.environ if environ is None else environ
    chosen = env.get("QT_QPA_PLATFORM", "")
    if chosen:  # "xcb", "xcb:options" or a fallback list "wayland;xcb" (Qt tries the first)
        return chosen.split(";")[0].split(":")[0] == "xcb"
    return sys.platform.startswith("linux") and bool(env.get("DISPLAY")) and not env.get("WAYLAND_DISPLAY")


def _qt_dir() -> Path | None:
    try:
        import PySide6
    except ImportError:
        return None
    return Path(PySide6.__file__).resolve().parent / "Qt"


def unresolved_libraries(library: Path, search: Path) -> list[str]:
    """The shared objects `ldd` cannot find for `library` (with Qt's own lib folder searchable)."""
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(search), os.environ.get("LD_LIBRARY_PATH")]))}
    try:
        done = subprocess.run(["ldd", str(library)], capture_output=True, text=True, timeout=10, env=env)
    except (OSError, subprocess.SubprocessError):
        return []  # no ldd: let Qt speak for itself
    return sorted({line.split("=>")[0].strip() for line in done.stdout.splitlines() if "not found" in line})


def missing_xcb_packages() -> list[str]:
    """Debian packages (or bare library names) the xcb platform lacks here; [] when it can load."""
    qt = _qt_dir()
    if qt is None:
        return []
    plugin = qt / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file():
        return []
    missing = set(unresolved_libraries(plugin, qt / "lib"))  # ldd follows the links of libQt6XcbQpa too
    if ctypes.util.find_library("xcb-cursor") is None:  # loaded at start since Qt 6.5, not linked
        missing.add("libxcb-cursor.so.0")
    return sorted(DEBIAN_PACKAGES.get(name, name) for name in missing)


def x_display_error(display: str) -> str | None:
    """Why the X display cannot be opened (Qt aborts on that too), or None when it can."""
    name = ctypes.util.find_library("xcb")
    if name is None:
        return None  # no libxcb at all: missing_xcb_packages names it
    try:
        xcb = ctypes.CDLL(name)
    except OSError:
        return None
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)
    try:
        failed = xcb.xcb_connection_has_error(connection)
    finally:
        xcb.xcb_disconnect(connection)
    return f"cannot open the X display {display!r} (is the X server running, and may this user use it?)" if failed else None
