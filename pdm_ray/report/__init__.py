"""The HTML run report."""
