"""Post-processing of a raw completion: one module per stage; `chain` runs them in order."""
