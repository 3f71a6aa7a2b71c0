__title__ = "sinergi-client"
__version__ = "0.2.0"
