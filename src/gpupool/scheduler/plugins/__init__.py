"""Filter, score and GPU-picker plugins; each module has a NAME and one job."""
