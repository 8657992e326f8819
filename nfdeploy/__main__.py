"""`python -m nfdeploy` (used by torchrun for multi-process training)."""

from nfdeploy.cli import main

if __name__ == "__main__":
    main()
