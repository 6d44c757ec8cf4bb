"""How domain state is stored: what a recovery snapshot pickles, and how fast."""
