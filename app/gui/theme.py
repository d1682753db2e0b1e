"""Light or dark, following the system: Qt reports the platform's colour scheme, and the Fusion
style with a matching palette renders it the same way on every platform (and re-renders when the
user switches while the app runs)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

DARK = {
    QPalette.ColorRole.Window: "#2b2b2b", QPalette.ColorRole.WindowText: "#e6e6e6",
    QPalette.ColorRole.Base: "#1f1f1f", QPalette.ColorRole.AlternateBase: "#2a2a2a",
    QPalette.ColorRole.Text: "#e6e6e6", QPalette.ColorRole.Button: "#353535",
    QPalette.ColorRole.ButtonText: "#e6e6e6", QPalette.ColorRole.Highlight: "#3d7ab8",
    QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#353535",
    QPalette.ColorRole.ToolTipText: "#e6e6e6", QPalette.ColorRole.PlaceholderText: "#8a8a8a",
}


def dark_palette() -> QPalette:
    palette = QPalette()
    for role, colour in DARK.items():
        palette.setColor(role, QColor(colour))
    return palette


def apply_scheme(app: QApplication, scheme: Qt.ColorScheme | None = None) -> str:
    """Apply the given (default: the system's) scheme; returns "dark" or "light"."""
    scheme = scheme if scheme is not None else QGuiApplication.styleHints().colorScheme()
    app.setStyle("Fusion")
    if scheme == Qt.ColorScheme.Dark:
        app.setPalette(dark_palette())
        return "dark"
    app.setPalette(app.style().standardPalette())
    return "light"


def follow_system(app: QApplication) -> str:
    app.styleHints().colorSchemeChanged.connect(lambda scheme: apply_scheme(app, scheme))
    return apply_scheme(app)
