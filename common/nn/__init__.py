"""Network building blocks that more than one test's model uses."""
