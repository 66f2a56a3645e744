"""Engine backends; each imports its heavy libraries only inside itself."""
