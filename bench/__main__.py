"""`python -m bench [--scale 0.02] [--reuse] [--only ROW]`: see infra/cli/bench.py."""

from infra.cli.bench import main

if __name__ == "__main__":
    main()
