"""Entry script of the bundled desktop app (the `studio-gui` command, frozen)."""

from studio.ui.app import main

raise SystemExit(main())
