"""`python -m common` is the `nia` command."""
from common.cli.entry import nia

if __name__ == "__main__":
    nia()
