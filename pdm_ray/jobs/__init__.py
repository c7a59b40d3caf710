"""Entry points for ``ray job submit`` (composition root; may import Ray)."""
