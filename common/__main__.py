"""`python -m common` is the `nia` command."""
from common.cli import main

if __name__ == "__main__":
    main()
