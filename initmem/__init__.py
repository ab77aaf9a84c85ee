"""initmem: Keras-faithful packed training of many CIFAR-10 runs per device (see README)."""

__version__ = "0.1.0"
