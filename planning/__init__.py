"""Planning through contact with smoothed quasi-dynamic models (seed 003)."""
