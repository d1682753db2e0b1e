# Sourced by setup.sh and install.sh: the Debian libraries Qt needs, installed when missing.
# shellcheck shell=bash
# Debian libraries Qt needs even offscreen (glib is libglib2.0-0t64 on Debian 13).
# A caller may add its own in `extra_packages` (setup.sh --dev: binutils, which PyInstaller needs).
missing=()
for pkg in libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libgl1 ${extra_packages[@]+"${extra_packages[@]}"}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ! dpkg -s libglib2.0-0 >/dev/null 2>&1 && ! dpkg -s libglib2.0-0t64 >/dev/null 2>&1; then
  if apt-cache show libglib2.0-0t64 >/dev/null 2>&1; then missing+=(libglib2.0-0t64); else missing+=(libglib2.0-0); fi
fi
# Qt's X11 platform (the window on a desktop X11 session) needs a few more; without them Qt
# aborts at start. Headless use and the tests do not need them, so a failure to install them is
# a warning, not a failed set-up (`lensroute gui` then names what is missing).
x11_missing=()
for pkg in libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-randr0 \
           libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0; do
  dpkg -s "$pkg" >/dev/null 2>&1 || x11_missing+=("$pkg")
done
sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
if [ ${#missing[@]} -gt 0 ] || [ ${#x11_missing[@]} -gt 0 ]; then
  $sudo_cmd apt-get update -qq >/dev/null || true
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ${#x11_missing[@]} -gt 0 ]; then
  echo "installing Debian packages for the X11 window: ${x11_missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${x11_missing[@]}" >/dev/null \
    || echo "warning: could not install ${x11_missing[*]}; the CLI and the tests do not need them" >&2
fi

