"""Vehicle registration data (EUCARIS): plates, VINs, holders over time, signals."""
