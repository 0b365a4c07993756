"""masivo-device-sync: move push device tokens from legacy exports into Masivo."""

__version__ = "0.1.0"
