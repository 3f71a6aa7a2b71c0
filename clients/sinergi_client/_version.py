__title__ = "sinergi-client"
__version__ = "0.3.0"
