"""bAbI data: parsing, vocabulary and tensors for the memory network."""
