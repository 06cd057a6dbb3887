//! Launchers for real execution clients (filled in by the launcher work).
