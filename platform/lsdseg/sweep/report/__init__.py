"""`lsdseg report`: what a sweep's trials learned, as one HTML page of figures (see build.py)."""
