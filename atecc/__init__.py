"""Driver for the Microchip ATECC608 secure element, and a byte-faithful emulator of the chip.

``atecc`` never imports ``cryptoki``, ``fleet`` or ``cffi`` (tests/unit/test_layers.py checks);
``atecc.i2c`` is the only importer of ``smbus2``.
"""

__version__ = "0.1.0"
