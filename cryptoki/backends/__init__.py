"""Token backends; backends/atecc.py is the only cryptoki module that imports atecc."""
