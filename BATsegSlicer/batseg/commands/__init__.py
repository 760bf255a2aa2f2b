"""Sub-commands of the `batseg` command line, one module each (see `batseg.cli`)."""
