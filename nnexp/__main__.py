"""Allow ``python -m nnexp``."""

from nnexp.cli import main

if __name__ == "__main__":
    main()
