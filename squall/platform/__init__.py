"""Integration of Squall's event loop with the platform's event loops."""
