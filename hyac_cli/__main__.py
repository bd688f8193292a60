from hyac_cli.fast import run

if __name__ == "__main__":
    run()
