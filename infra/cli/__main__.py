"""`python -m infra.cli`: the same as the `referrals` console script."""

from infra.cli import main

main()
