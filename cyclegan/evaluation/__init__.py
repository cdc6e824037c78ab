"""What ``evaluate.py`` runs: metrics maths, Inception loading, the validation KID callback, the report."""
