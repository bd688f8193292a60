"""One module per command group; ``hyac_cli.main`` registers them."""
