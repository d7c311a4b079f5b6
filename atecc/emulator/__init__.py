"""Emulated ATECC608: a bus with smbus2.SMBus's i2c_rdwr interface, backed by a chip model."""
