"""`python -m bench [--scale 0.02] [--reuse] [--only ROW]`: see bench/commands.py."""

from bench.commands import main

if __name__ == "__main__":
    main()
