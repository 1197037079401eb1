#!/usr/bin/env bash
# Build a one-folder desktop bundle in dist/DiffusionStudio and, on Linux, install the launcher.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -e . pyinstaller
python packaging/make_icon.py
pyinstaller --noconfirm packaging/studio.spec
if [ "$(uname)" = "Linux" ] && [ "${INSTALL_DESKTOP_ENTRY:-0}" = "1" ]; then
    install -Dm644 packaging/diffusion-studio.desktop ~/.local/share/applications/diffusion-studio.desktop
    install -Dm644 resources/icons/studio.png ~/.local/share/icons/hicolor/256x256/apps/diffusion-studio.png
fi
# the bundle must at least open its window (offscreen, then quits)
QT_QPA_PLATFORM=offscreen dist/DiffusionStudio/DiffusionStudio --smoke-test
echo "built dist/DiffusionStudio"
