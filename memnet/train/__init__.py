"""Training and evaluation of the memory network on bAbI."""
