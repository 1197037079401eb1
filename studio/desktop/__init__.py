"""The desktop side of the app, without Qt: launcher install, start-up checks, doctor, logging."""
