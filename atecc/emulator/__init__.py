"""Emulated ATECC608: a bus object with smbus2.SMBus\x27s i2c_rdwr interface, backed by a chip model."""
