"""labpowerd: the labpower daemon."""
