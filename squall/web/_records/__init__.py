"""Log calls made from a file named as Tornado's that makes them (see `web`)."""
